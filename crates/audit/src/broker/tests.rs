use super::*;
use crate::{AuthInfo, EntryKind, RequestInfo};
use std::io::Write;
use tresor_storage::Memory;

fn barrier() -> Arc<Barrier> {
    tresor_barrier::testing::unsealed(Arc::new(Memory::new()))
}

fn declared(dir: &Path) -> BrokerConfig {
    let mut config = BrokerConfig::new(Duration::from_secs(2), false);
    config.declared.push(DeclaredDevice {
        path: "file".into(),
        file_path: dir.join("audit.log"),
        description: "declared".into(),
    });
    config
}

fn entry(n: usize) -> AuditEntry {
    AuditEntry {
        kind: EntryKind::Request,
        auth: Some(AuthInfo::default()),
        request: RequestInfo {
            id: format!("r{n}"),
            operation: "read".into(),
            path: "secret/data/x".into(),
            ..RequestInfo::default()
        },
        response: None,
        error: None,
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// Logs `n` entries, saves the position and closes the devices.
fn write_and_save(barrier: &Arc<Barrier>, config: &BrokerConfig, n: usize) {
    let broker = AuditBroker::open(Arc::clone(barrier), config.clone()).unwrap();
    for i in 0..n {
        broker.log(&entry(i)).unwrap();
    }
    broker.save_checkpoints().unwrap();
}

#[test]
fn a_declared_device_records_from_the_first_request_and_keeps_its_salt() {
    let dir = tempfile::tempdir().unwrap();
    let barrier = barrier();
    let config = declared(dir.path());
    let broker = AuditBroker::open(Arc::clone(&barrier), config.clone()).unwrap();
    broker.log(&entry(0)).unwrap();
    let hash = broker.hash("file", "s3cret").unwrap();
    assert_eq!(lines(&dir.path().join("audit.log")).len(), 2);
    assert!(matches!(
        broker.disable("file"),
        Err(BrokerError::Declared(_))
    ));
    drop(broker);
    let again = AuditBroker::open(barrier, config).unwrap();
    assert_eq!(again.hash("file", "s3cret").unwrap(), hash);
}

#[test]
fn enabling_through_the_api_is_off_unless_configured_and_then_only_in_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let options = |path: &Path| {
        let mut options = serde_json::Map::new();
        options.insert("file_path".into(), json!(path));
        options
    };
    let off =
        AuditBroker::open(barrier(), BrokerConfig::new(Duration::from_secs(2), false)).unwrap();
    assert!(matches!(
        off.enable("file", "file", "", &options(&dir.path().join("a.log"))),
        Err(BrokerError::ApiDisabled)
    ));
    assert!(!dir.path().join("a.log").exists());

    let allowed = dir.path().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let mut config = BrokerConfig::new(Duration::from_secs(2), false);
    config.api_dir = Some(allowed.clone());
    let broker = AuditBroker::open(barrier(), config).unwrap();
    let outside = dir.path().join("elsewhere.log");
    std::os::unix::fs::symlink(dir.path(), allowed.join("escape")).unwrap();
    std::os::unix::fs::symlink(&outside, allowed.join("link.log")).unwrap();
    for bad in [
        outside.clone(),
        allowed.join("../elsewhere.log"),
        allowed.join("./x.log"),
        allowed.join("escape/x.log"),
        PathBuf::from("relative.log"),
        allowed.clone(),
    ] {
        let refused = broker.enable("file", "file", "", &options(&bad));
        assert!(refused.is_err(), "{}", bad.display());
    }
    // A link in the directory may not point the device at another file.
    let linked = broker.enable("file", "file", "", &options(&allowed.join("link.log")));
    assert!(linked.is_err(), "{linked:?}");
    assert!(!outside.exists());
    let mut extra = options(&allowed.join("x.log"));
    extra.insert("prefix".into(), json!("#!/bin/sh\n"));
    assert!(matches!(
        broker.enable("file", "file", "", &extra),
        Err(BrokerError::Invalid(_))
    ));
    broker
        .enable("file", "file", "", &options(&allowed.join("x.log")))
        .unwrap();
    broker.log(&entry(0)).unwrap();
    assert_eq!(lines(&allowed.join("x.log")).len(), 2);
    broker.disable("file").unwrap();
}

#[test]
fn a_log_cut_at_its_end_is_refused_until_the_operator_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let barrier = barrier();
    let config = declared(dir.path());
    write_and_save(&barrier, &config, 5);
    let log = dir.path().join("audit.log");
    let kept = lines(&log)[..4].join("\n") + "\n";
    std::fs::write(&log, kept).unwrap();

    let refused = AuditBroker::open(Arc::clone(&barrier), config.clone());
    let Err(BrokerError::Mismatch(why)) = refused else {
        panic!("a cut log was accepted");
    };
    assert!(why.contains("cut"), "{why}");
    // Still refused after a restart: nothing moved the saved position back.
    assert!(AuditBroker::open(Arc::clone(&barrier), config.clone()).is_err());

    let mut accepting = config.clone();
    accepting.accept_mismatch = true;
    let broker = AuditBroker::open(Arc::clone(&barrier), accepting).unwrap();
    broker.log(&entry(9)).unwrap();
    let fresh = lines(&log);
    assert!(fresh[0].contains("\"continues\""), "{}", fresh[0]);
    assert!(
        fresh[0].contains("\"seq\":5"),
        "the new chain records where the old one stood"
    );
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".mismatch-"))
        .collect();
    assert_eq!(aside.len(), 1, "the cut log is kept aside");
    broker.save_checkpoints().unwrap();
    drop(broker);
    AuditBroker::open(barrier, config).unwrap();
}

#[test]
fn a_replaced_log_is_refused_and_a_rotated_one_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let barrier = barrier();
    let config = declared(dir.path());
    write_and_save(&barrier, &config, 3);
    let log = dir.path().join("audit.log");
    std::fs::remove_file(&log).unwrap();
    assert!(matches!(
        AuditBroker::open(Arc::clone(&barrier), config.clone()),
        Err(BrokerError::Mismatch(_))
    ));

    let dir = tempfile::tempdir().unwrap();
    let barrier = tresor_barrier::testing::unsealed(Arc::new(Memory::new()));
    let config = declared(dir.path());
    let broker = AuditBroker::open(Arc::clone(&barrier), config.clone()).unwrap();
    broker.log(&entry(0)).unwrap();
    broker.save_checkpoints().unwrap();
    // logrotate: move the file, then ask the server to reopen it.
    std::fs::rename(dir.path().join("audit.log"), dir.path().join("audit.log.1")).unwrap();
    broker.reopen();
    broker.log(&entry(1)).unwrap();
    drop(broker);
    AuditBroker::open(barrier, config).unwrap();
}

#[test]
fn a_store_older_than_its_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let barrier = barrier();
    let config = declared(dir.path());
    write_and_save(&barrier, &config, 2);
    // Lines written an hour after the store last saved its position: the
    // store is an older copy than the log.
    let log = dir.path().join("audit.log");
    let last = lines(&log).pop().unwrap();
    let head: serde_json::Value = serde_json::from_str(&last).unwrap();
    let seq = head["chain"]["seq"].as_u64().unwrap();
    let mut later = head.clone();
    later["chain"]["seq"] = json!(seq + 1);
    later["chain"]["prev"] = json!(crate::chain::sha256_hex(last.as_bytes()));
    let an_hour_later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    later["time"] = json!(
        an_hour_later
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(file, "{later}").unwrap();
    let refused = AuditBroker::open(Arc::clone(&barrier), config.clone());
    let Err(BrokerError::Mismatch(why)) = refused else {
        panic!("an older store was accepted");
    };
    assert!(why.contains("older"), "{why}");
}

#[test]
fn lines_written_after_the_last_save_are_what_a_crash_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let barrier = barrier();
    let config = declared(dir.path());
    let broker = AuditBroker::open(Arc::clone(&barrier), config.clone()).unwrap();
    broker.log(&entry(0)).unwrap();
    broker.save_checkpoints().unwrap();
    broker.log(&entry(1)).unwrap();
    drop(broker);
    AuditBroker::open(barrier, config).unwrap();
}

#[test]
fn a_saved_position_never_moves_back() {
    let dir = tempfile::tempdir().unwrap();
    let barrier = barrier();
    let config = declared(dir.path());
    write_and_save(&barrier, &config, 4);
    let log = dir.path().join("audit.log");
    let chain: serde_json::Value = serde_json::from_str(&lines(&log)[0]).unwrap();
    let chain_id = chain["chain"]["id"].as_str().unwrap().to_owned();
    let saved = load_checkpoint(&barrier, &chain_id).unwrap().unwrap();
    assert_eq!(saved.seq, 4);
    // A second broker on an older copy of the file cannot save 2 over 4.
    let short = tempfile::tempdir().unwrap();
    let copy = short.path().join("audit.log");
    std::fs::write(&copy, lines(&log)[..3].join("\n") + "\n").unwrap();
    let mut other = declared(short.path());
    other.declared[0].path = "copy".into();
    let broker = AuditBroker::open(Arc::clone(&barrier), other).unwrap();
    broker.save_checkpoints().unwrap();
    assert_eq!(
        load_checkpoint(&barrier, &chain_id).unwrap().unwrap().seq,
        4
    );
}

#[tokio::test]
async fn no_device_fails_nothing_and_a_dead_one_fails_closed() {
    let none =
        AuditBroker::open(barrier(), BrokerConfig::new(Duration::from_secs(2), false)).unwrap();
    none.begin(&entry(0)).finish_async().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = AuditBroker::open(barrier(), declared(dir.path())).unwrap();
    broker.begin(&entry(0)).finish_async().await.unwrap();
    let dead = Queued {
        queued: vec![("file".into(), Err(AuditError::Closed))],
    };
    assert!(matches!(
        dead.finish_async().await,
        Err(BrokerError::NotRecorded)
    ));
}
