//! File device behaviour: secrets never reach the file, the chain stays valid across
//! threads, reopen and resume, and a stuck file fails callers within the bound.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tresor_audit::{
    AuditEntry, AuditError, AuthInfo, EntryKind, FileDevice, FileDeviceConfig, FsyncPolicy,
    RequestInfo, ResponseInfo, Salt, WrapInfo, verify, verify_with_checkpoint,
};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn device(path: &Path) -> FileDevice {
    FileDevice::open(
        FileDeviceConfig::new(path),
        Salt::new(KEY.to_vec()).unwrap(),
    )
    .unwrap()
}

fn entry(path: &str) -> AuditEntry {
    AuditEntry {
        kind: EntryKind::Request,
        auth: None,
        request: RequestInfo {
            id: "req-1".into(),
            operation: "read".into(),
            path: path.into(),
            ..RequestInfo::default()
        },
        response: None,
        error: None,
    }
}

#[test]
fn no_raw_secret_reaches_the_file_or_debug_output() {
    let secrets = [
        "hvs.CLIENTTOKENabc123",
        "accessor-XYZ-987",
        "p4ssw0rd-in-request",
        "nested-api-key-42",
        "array-secret-7",
        "response-secret-value",
        "hvs.ISSUEDchildTOKEN",
        "issued-accessor-555",
        "tvs.WRAPPINGtoken",
        "wrapping-accessor-777",
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let device = device(&path);
    let auth = AuthInfo {
        client_token: Some(secrets[0].into()),
        accessor: Some(secrets[1].into()),
        display_name: "token".into(),
        policies: vec!["default".into(), "app".into()],
        ..AuthInfo::default()
    };
    let request = RequestInfo {
        id: "9d0c".into(),
        operation: "update".into(),
        path: "secret/data/app".into(),
        client_token: Some(secrets[0].into()),
        client_token_accessor: Some(secrets[1].into()),
        data: Some(json!({
            "data": {"password": secrets[2], "db": {"key": secrets[3]}, "list": [secrets[4], 7, true]},
            "options": {"cas": 3}
        })),
        remote_address: Some("10.0.0.7".into()),
        namespace: Some("root".into()),
        ..RequestInfo::default()
    };
    let mut entry = AuditEntry {
        kind: EntryKind::Request,
        auth: Some(auth.clone()),
        request,
        response: None,
        error: None,
    };
    device.log(&entry).unwrap();
    entry.kind = EntryKind::Response;
    entry.response = Some(ResponseInfo {
        mount_type: Some("kv".into()),
        auth: Some(AuthInfo {
            client_token: Some(secrets[6].into()),
            accessor: Some(secrets[7].into()),
            ..AuthInfo::default()
        }),
        data: Some(json!({"value": secrets[5]})),
        wrap_info: Some(WrapInfo {
            token: secrets[8].into(),
            accessor: secrets[9].into(),
            ttl: 60,
            creation_path: "secret/data/app".into(),
        }),
    });
    device.log(&entry).unwrap();
    device.close().unwrap();

    let text = fs::read_to_string(&path).unwrap();
    let debug = format!("{entry:?}");
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} leaked into the log");
        assert!(!debug.contains(secret), "{secret} leaked into Debug output");
    }
    let salt = Salt::new(KEY.to_vec()).unwrap();
    assert!(text.contains(&salt.hash(secrets[0])));
    assert!(text.contains(&salt.hash(secrets[3])));
    assert!(text.contains(&salt.hash(secrets[6])));
    assert!(
        text.contains(&salt.hash(secrets[8])),
        "the wrapping token is hashed"
    );

    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let response = &lines[2];
    assert_eq!(response["type"], "response");
    assert_eq!(response["request"]["path"], "secret/data/app");
    assert_eq!(response["request"]["namespace"]["id"], "root");
    assert_eq!(response["request"]["data"]["options"]["cas"], 3);
    assert_eq!(
        response["request"]["data"]["data"]["list"],
        json!([salt.hash(secrets[4]), 7, true])
    );
    assert_eq!(response["request"]["data"]["data"]["list"][1], 7);
    assert_eq!(response["auth"]["policies"], json!(["default", "app"]));
    assert!(response["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(verify(&path).unwrap().lines, 3);
}

#[test]
fn file_is_private_and_hash_matches_the_salt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let device = device(&path);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        device.hash("my-secret-password"),
        "hmac-sha256:e44402c6285a5d066bc6f8f68a2f9c9325302b991804a507d8356778a44296e8"
    );
}

#[test]
fn concurrent_writers_keep_the_chain_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let device = Arc::new(device(&path));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let device = Arc::clone(&device);
            thread::spawn(move || {
                for i in 0..50 {
                    device
                        .log(&entry(&format!("secret/data/t{t}/{i}")))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let checkpoint = device.checkpoint().unwrap();
    let report = verify_with_checkpoint(&path, &checkpoint).unwrap();
    assert_eq!(report.lines, 401);
    assert_eq!(report.last, checkpoint);
    assert_eq!(checkpoint.seq, 400);
}

#[test]
fn reopening_the_same_file_resumes_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let first = device(&path);
    first.log(&entry("a")).unwrap();
    first.close().unwrap();
    let second = device(&path);
    second.log(&entry("b")).unwrap();
    second.reopen().unwrap();
    second.log(&entry("c")).unwrap();
    let report = verify(&path).unwrap();
    assert_eq!(report.lines, 4);
    assert_eq!(report.last, second.checkpoint().unwrap());
}

#[test]
fn rotation_starts_a_new_chain_linked_to_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let rotated = dir.path().join("audit.log.1");
    let device = device(&path);
    device.log(&entry("a")).unwrap();
    device.log(&entry("b")).unwrap();
    fs::rename(&path, &rotated).unwrap();
    device.reopen().unwrap();
    device.log(&entry("c")).unwrap();
    let old = verify(&rotated).unwrap();
    let new = verify(&path).unwrap();
    assert_eq!(new.continues, Some(old.last.clone()));
    assert_ne!(new.chain_id, old.chain_id);
    assert_eq!(new.lines, 2);
}

#[test]
fn resuming_refuses_torn_or_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let torn = dir.path().join("torn.log");
    let d = device(&torn);
    d.log(&entry("a")).unwrap();
    d.close().unwrap();
    let mut bytes = fs::read(&torn).unwrap();
    bytes.truncate(bytes.len() - 5);
    fs::write(&torn, bytes).unwrap();
    let err = FileDevice::open(
        FileDeviceConfig::new(&torn),
        Salt::new(KEY.to_vec()).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, AuditError::TornTail(_)), "{err}");

    let foreign = dir.path().join("foreign.log");
    fs::write(&foreign, "{\"time\":\"x\"}\n").unwrap();
    let err = FileDevice::open(
        FileDeviceConfig::new(&foreign),
        Salt::new(KEY.to_vec()).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, AuditError::NotAChain(_)), "{err}");
}

#[test]
fn a_stuck_file_fails_callers_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("audit.fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let bound = Duration::from_millis(300);
    let config = FileDeviceConfig {
        fsync: FsyncPolicy::Never,
        write_timeout: bound,
        ..FileDeviceConfig::new(&fifo)
    };
    // Opened read-write, the FIFO never blocks the open; nobody reads it, so once the pipe
    // buffer is full every write blocks forever, like a hung disk.
    let device = FileDevice::open(config, Salt::new(KEY.to_vec()).unwrap()).unwrap();
    let big: serde_json::Map<String, serde_json::Value> =
        (0..100).map(|i| (format!("k{i}"), json!("v"))).collect();
    let mut big_entry = entry("secret/data/big");
    big_entry.request.data = Some(serde_json::Value::Object(big));

    let mut first_error = None;
    for _ in 0..200 {
        let started = Instant::now();
        let result = device.log(&big_entry);
        assert!(
            started.elapsed() < bound + Duration::from_millis(700),
            "a call hung"
        );
        if let Err(e) = result {
            first_error = Some(e);
            break;
        }
    }
    let error = first_error.expect("the pipe never filled up");
    assert!(matches!(error, AuditError::Timeout(_)), "{error}");
    assert!(error.to_string().contains("fail closed"));

    // Once the writer is known to be stuck, callers are refused without waiting.
    thread::sleep(Duration::from_millis(20));
    let started = Instant::now();
    let error = device.log(&big_entry).unwrap_err();
    assert!(matches!(error, AuditError::Stalled(_)), "{error}");
    assert!(started.elapsed() < Duration::from_millis(100));
}

/// Polls a future on this thread until it is ready, parking between wake-ups.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        thread::park();
    }
}

#[test]
fn awaited_entries_are_written_in_queue_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let device = device(&path);
    let mut pending: Vec<_> = (0..18)
        .map(|i| {
            device
                .log_pending(&entry(&format!("secret/data/{i}")))
                .unwrap()
        })
        .collect();
    let pair = [entry("secret/data/18"), entry("secret/data/19")];
    pending.push(device.log_pending_all(&pair).unwrap());
    for p in pending.into_iter().rev() {
        assert!(p.deadline() > Instant::now() - Duration::from_secs(1));
        block_on(p).unwrap();
    }
    let checkpoint = device.checkpoint().unwrap();
    assert_eq!(
        verify_with_checkpoint(&path, &checkpoint).unwrap().lines,
        21
    );
    let log = fs::read_to_string(&path).unwrap();
    let first = log.find("secret/data/0\"").unwrap();
    let last = log.find("secret/data/19\"").unwrap();
    assert!(first < last);
}

#[test]
fn entries_pending_when_the_device_closes_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let device = device(&dir.path().join("audit.log"));
    let pending = device.log_pending(&entry("secret/data/x")).unwrap();
    device.close().unwrap();
    // Written before the shutdown command was taken, or refused: never left hanging.
    let started = Instant::now();
    let _ = block_on(pending);
    assert!(started.elapsed() < Duration::from_secs(1));
}
