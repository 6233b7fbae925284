//! `tresor operator snapshot` through the real binary: save, inspect,
//! verify with the key file (a wrong one refused), restore into a fresh
//! embedded store and into PostgreSQL with every secret and version equal;
//! a cut snapshot refused with nothing created; SIGKILL during a save (to a
//! file, or scheduled into a directory) leaves the previous snapshot whole;
//! `tresor server` saves them on its `[snapshot]` schedule.

use crate::util;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tresor_core::{Access, InitOptions, Unseal};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A key-file store with `n` secrets of three versions each, values of
    /// `size` bytes.
    fn new(n: usize, size: usize) -> Self {
        let fixture = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        tresor_core::init(&fixture.store(), InitOptions::KeyFile(Some(fixture.key()))).unwrap();
        let unseal = Unseal {
            key_file: Some(fixture.key()),
            ..Unseal::default()
        };
        let store = tresor_core::open(&fixture.store(), &unseal, Access::ReadWrite).unwrap();
        let kv = store.kv(&store.mount("secret").unwrap()).unwrap();
        for i in 0..n {
            for v in 1..=3 {
                let value = format!("{i}-{v}-{}", "x".repeat(size));
                let data = serde_json::from_value(serde_json::json!({ "v": value })).unwrap();
                kv.write(&format!("app/s{i}"), &data, None).unwrap();
            }
        }
        fixture
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("store.key")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, store: &Path, args: &[&str]) -> Output {
        util::offline(store, &self.key())
            .args(args)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .output()
            .unwrap()
    }

    fn ok(&self, store: &Path, args: &[&str]) -> String {
        let out = self.run(store, args);
        assert!(out.status.success(), "tresor {args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn check_values(&self, store: &Path, n: usize) {
        for i in 0..n {
            for v in 1..=3 {
                let got = self.ok(
                    store,
                    &[
                        "kv",
                        "get",
                        "-field=v",
                        &format!("-version={v}"),
                        &format!("secret/app/s{i}"),
                    ],
                );
                assert!(got.starts_with(&format!("{i}-{v}-")), "s{i} v{v}: {got}");
            }
        }
    }
}

fn manifest(json: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(json).unwrap()["manifest"].clone()
}

#[test]
fn save_inspect_verify_restore_and_refusals() {
    let f = Fixture::new(20, 10);
    let snap = f.path("store.snapshot");
    let snap_s = snap.to_str().unwrap();
    let saved = manifest(&f.ok(
        &f.store(),
        &["operator", "snapshot", "save", snap_s, "-format=json"],
    ));
    assert_eq!(saved["seal_type"], "key-file");
    let inspected = manifest(&f.ok(
        &f.store(),
        &["operator", "snapshot", "inspect", snap_s, "-format=json"],
    ));
    assert_eq!(inspected, saved);
    let verified = f.ok(&f.store(), &["operator", "snapshot", "verify", snap_s]);
    assert!(verified.contains("read all"), "{verified}");

    let wrong_key = f.path("wrong.key");
    tresor_barrier::UnsealKey::generate()
        .write_key_file(&wrong_key)
        .unwrap();
    let wrong = util::offline(&f.store(), &wrong_key)
        .args(["operator", "snapshot", "verify", snap_s])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("unseal key is wrong"),
        "{}",
        text(&wrong)
    );

    // A cut snapshot: refused, and no store is left behind.
    let bytes = std::fs::read(&snap).unwrap();
    let cut = f.path("cut.snapshot");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let target = f.path("restored-cut");
    let refused = f.run(
        &target,
        &["operator", "snapshot", "restore", cut.to_str().unwrap()],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("not a complete, unaltered"),
        "{}",
        text(&refused)
    );
    assert!(!target.join("tresor.redb").exists());

    let target = f.path("restored");
    let restored = manifest(&f.ok(
        &target,
        &["operator", "snapshot", "restore", snap_s, "-format=json"],
    ));
    assert_eq!(restored, saved);
    f.check_values(&target, 20);
    let again = f.run(&target, &["operator", "snapshot", "restore", snap_s]);
    assert!(
        text(&again).contains("already holds a store"),
        "{}",
        text(&again)
    );
}

/// The `tresor-*.snapshot` files in `dir`, oldest first.
fn snapshots_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("tresor-") && n.ends_with(".snapshot"))
    });
    found.sort();
    found
}

#[test]
fn a_server_saves_snapshots_on_its_schedule_and_keeps_the_newest() {
    let f = Fixture::new(3, 10);
    let snaps = f.path("snapshots");
    let config = util::config(
        f.dir.path(),
        &format!(
            "[seal]\nkey_file = \"{}\"\n[snapshot]\nevery = \"1s\"\nkeep = 2\ndir = \"{}\"\n",
            f.key().display(),
            snaps.display()
        ),
    );
    let server = util::TestServer::with_config(&config);
    let mut seen = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 4 {
        assert!(std::time::Instant::now() < deadline, "saved only {seen:?}");
        let now = snapshots_in(&snaps);
        // `keep`, and the one being written before the oldest goes.
        assert!(now.len() <= 3, "{now:?}");
        seen.extend(now);
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    let latest = snapshots_in(&snaps).pop().unwrap();
    let latest_s = latest.to_str().unwrap();
    let verified = f.ok(&f.store(), &["operator", "snapshot", "verify", latest_s]);
    assert!(verified.contains("read all"), "{verified}");
    let target = f.path("restored");
    f.ok(&target, &["operator", "snapshot", "restore", latest_s]);
    f.check_values(&target, 3);
}

fn save_in_background(f: &Fixture, args: &[&str]) -> std::process::Child {
    util::offline(&f.store(), &f.key())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn sigkill_during_a_save_leaves_the_previous_snapshot_intact() {
    let f = Fixture::new(600, 2000);
    let snap = f.path("store.snapshot");
    let snap_s = snap.to_str().unwrap();
    let original = manifest(&f.ok(
        &f.store(),
        &["operator", "snapshot", "save", snap_s, "-format=json"],
    ));
    let dir = f.path("scheduled");
    let dir_s = dir.to_str().unwrap();
    f.ok(
        &f.store(),
        &[
            "operator", "snapshot", "save", "--dir", dir_s, "--keep", "2",
        ],
    );
    let complete = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .ends_with(".snapshot")
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(complete(&dir).len(), 1);
    let partials = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".partial-")
            })
            .count()
    };
    let mut cut_short = 0;
    for round in 0..12u64 {
        let delay = Duration::from_millis(5 + (round * 37) % 120);
        for args in [
            vec!["operator", "snapshot", "save", snap_s],
            vec![
                "operator", "snapshot", "save", "--dir", dir_s, "--keep", "2",
            ],
        ] {
            let mut child = save_in_background(&f, &args);
            std::thread::sleep(delay);
            let _ = child.kill();
            let _ = child.wait();
        }
        cut_short += partials(f.dir.path()) + partials(&dir);
        // Whatever the moment, every file under a snapshot's name is whole
        // (the one a save finished before its kill, or the one before).
        let now = manifest(&f.ok(
            &f.store(),
            &["operator", "snapshot", "inspect", snap_s, "-format=json"],
        ));
        assert_eq!(now["sha256"], original["sha256"], "round {round}");
        let saved = complete(&dir);
        assert!(
            !saved.is_empty() && saved.len() <= 2,
            "round {round}: {saved:?}"
        );
        for path in saved {
            f.ok(
                &f.store(),
                &["operator", "snapshot", "inspect", path.to_str().unwrap()],
            );
        }
    }
    assert!(cut_short > 0, "no save was ever killed while writing");
    // The next scheduled save clears what killed ones left.
    std::thread::sleep(Duration::from_millis(1100));
    f.ok(
        &f.store(),
        &[
            "operator", "snapshot", "save", "--dir", dir_s, "--keep", "2",
        ],
    );
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|n| !n.contains(".partial-")), "{left:?}");
    assert_eq!(left.len(), 2, "{left:?}");
}

#[cfg(feature = "postgres")]
#[test]
fn restore_into_postgresql() {
    util::need!("TRESOR_PG_BIN");
    let f = Fixture::new(10, 10);
    let snap = f.path("store.snapshot");
    let snap_s = snap.to_str().unwrap();
    let saved = manifest(&f.ok(
        &f.store(),
        &["operator", "snapshot", "save", snap_s, "-format=json"],
    ));
    let cluster = tresor_testpg::Cluster::start().unwrap();
    cluster.create_database("restored").unwrap();
    let url = cluster.url("restored");
    let restore = |args: &[&str]| {
        util::offline(&f.store(), &f.key())
            .args(args)
            .env("TRESOR_POSTGRES_URL", &url)
            .output()
            .unwrap()
    };
    let out = restore(&[
        "operator",
        "snapshot",
        "restore",
        snap_s,
        "--backend",
        "postgres",
        "-format=json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(manifest(&String::from_utf8(out.stdout).unwrap()), saved);
    let again = restore(&[
        "operator",
        "snapshot",
        "restore",
        snap_s,
        "--backend",
        "postgres",
    ]);
    assert!(
        text(&again).contains("already holds a store"),
        "{}",
        text(&again)
    );
    // Back out of PostgreSQL into a fresh embedded store: every version reads.
    let copy = f.path("from-postgres");
    let out = util::offline(&copy, &f.key())
        .args([
            "operator", "migrate", "--from", "postgres", "--to", "embedded",
        ])
        .env("TRESOR_POSTGRES_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    f.check_values(&copy, 10);
    let resaved = manifest(&f.ok(
        &copy,
        &[
            "operator",
            "snapshot",
            "save",
            f.path("again").to_str().unwrap(),
            "-format=json",
        ],
    ));
    assert_eq!(resaved["sha256"], saved["sha256"]);
}
