use crate::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tresor_storage::{Backend, Memory};

struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

impl TestClock {
    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }
}

struct Fixture {
    storage: Arc<dyn Backend>,
    kv: KvEngine,
    clock: Arc<TestClock>,
}

fn fixture() -> Fixture {
    let storage: Arc<dyn Backend> = Arc::new(Memory::new());
    let barrier = tresor_barrier::testing::unsealed(Arc::clone(&storage));
    let clock = Arc::new(TestClock(AtomicU64::new(1_700_000_000_000_000_000)));
    let kv = KvEngine::new(barrier, "logical/test/").with_clock(clock.clone());
    Fixture { storage, kv, clock }
}

fn data(v: serde_json::Value) -> SecretMap {
    serde_json::from_value(v).unwrap()
}

fn value(kv: &KvEngine, path: &str, version: Option<u64>) -> Option<serde_json::Value> {
    let read = kv.read(path, version).unwrap()?;
    read.data.map(|d| serde_json::to_value(&d).unwrap())
}

#[test]
fn versions_accumulate_and_are_readable() {
    let f = fixture();
    assert!(f.kv.read("app", None).unwrap().is_none());
    let v1 =
        f.kv.write("app", &data(json!({"password": "one"})), None)
            .unwrap();
    let v2 =
        f.kv.write("app", &data(json!({"password": "two"})), None)
            .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(
        value(&f.kv, "app", None).unwrap(),
        json!({"password": "two"})
    );
    assert_eq!(
        value(&f.kv, "app", Some(1)).unwrap(),
        json!({"password": "one"})
    );
    assert!(f.kv.read("app", Some(3)).unwrap().is_none());
    assert_eq!(v2.deletion_time, "");
}

#[test]
fn check_and_set() {
    let f = fixture();
    let d = data(json!({"k": "v"}));
    f.kv.write("c", &d, Some(0)).unwrap();
    let err = f.kv.write("c", &d, Some(0)).unwrap_err();
    assert!(matches!(
        err,
        KvError::CasMismatch {
            expected: 0,
            current: 1
        }
    ));
    assert!(
        err.to_string()
            .contains("check-and-set parameter did not match the current version")
    );
    f.kv.write("c", &d, Some(1)).unwrap();

    f.kv.write_metadata(
        "c",
        &MetadataUpdate {
            cas_required: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(matches!(
        f.kv.write("c", &d, None),
        Err(KvError::CasRequired)
    ));
    f.kv.write("c", &d, Some(2)).unwrap();

    f.kv.set_config(ConfigUpdate {
        cas_required: Some(true),
        ..Default::default()
    })
    .unwrap();
    assert!(matches!(
        f.kv.write("other", &d, None),
        Err(KvError::CasRequired)
    ));
    assert!(matches!(
        f.kv.patch("c", &json!({"x": "y"}), None),
        Err(KvError::CasRequired)
    ));
}

#[test]
fn oldest_versions_are_pruned_beyond_max_versions() {
    let f = fixture();
    f.kv.set_config(ConfigUpdate {
        max_versions: Some(3),
        ..Default::default()
    })
    .unwrap();
    for i in 1..=5 {
        f.kv.write("p", &data(json!({"n": i.to_string()})), None)
            .unwrap();
    }
    let meta = f.kv.metadata("p").unwrap().unwrap();
    assert_eq!((meta.current_version, meta.oldest_version), (5, 3));
    assert_eq!(meta.versions.keys().collect::<Vec<_>>(), ["3", "4", "5"]);
    assert!(f.kv.read("p", Some(2)).unwrap().is_none());
    let stored = f
        .storage
        .list("logical/test/versions/", None, None)
        .unwrap();
    let folder = format!("logical/test/versions/{}", stored[0]);
    assert_eq!(
        f.storage.list(&folder, None, None).unwrap(),
        ["3", "4", "5"]
    );

    f.kv.write_metadata(
        "p",
        &MetadataUpdate {
            max_versions: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let meta = f.kv.metadata("p").unwrap().unwrap();
    assert_eq!(
        (meta.oldest_version, meta.versions.len(), meta.max_versions),
        (5, 1, 1)
    );
    assert_eq!(f.storage.list(&folder, None, None).unwrap(), ["5"]);
}

#[test]
fn delete_undelete_destroy_and_updated_time_moves_each_time() {
    let f = fixture();
    for i in 1..=3 {
        f.kv.write("d", &data(json!({"n": i.to_string()})), None)
            .unwrap();
    }
    let mut last = f.kv.metadata("d").unwrap().unwrap().updated_time;
    let mut step = |what: &dyn Fn()| {
        f.clock.advance(Duration::from_secs(1));
        what();
        let now = f.kv.metadata("d").unwrap().unwrap().updated_time;
        assert_ne!(now, last, "updated_time did not move");
        last = now;
    };
    step(&|| f.kv.delete_latest("d").unwrap());
    let read = f.kv.read("d", None).unwrap().unwrap();
    assert!(read.data.is_none());
    assert_ne!(read.metadata.deletion_time, "");
    step(&|| f.kv.delete_versions("d", &[1]).unwrap());
    step(&|| f.kv.undelete_versions("d", &[1, 3]).unwrap());
    assert_eq!(value(&f.kv, "d", None).unwrap(), json!({"n": "3"}));
    step(&|| f.kv.destroy_versions("d", &[2]).unwrap());
    let read = f.kv.read("d", Some(2)).unwrap().unwrap();
    assert!(read.data.is_none() && read.metadata.destroyed);
    f.kv.undelete_versions("d", &[2]).unwrap();
    assert!(f.kv.read("d", Some(2)).unwrap().unwrap().data.is_none());
    assert!(matches!(
        f.kv.delete_versions("d", &[]),
        Err(KvError::Invalid(_))
    ));
    let version_keys = f
        .storage
        .list("logical/test/versions/", None, None)
        .unwrap();
    let folder = format!("logical/test/versions/{}", version_keys[0]);
    assert_eq!(f.storage.list(&folder, None, None).unwrap(), ["1", "3"]);
}

#[test]
fn delete_version_after_expires_versions() {
    let f = fixture();
    f.kv.write_metadata(
        "t",
        &MetadataUpdate {
            delete_version_after: Some(Duration::from_secs(60)),
            ..Default::default()
        },
    )
    .unwrap();
    let info = f.kv.write("t", &data(json!({"k": "v"})), None).unwrap();
    assert_ne!(info.deletion_time, "");
    assert!(value(&f.kv, "t", None).is_some());
    f.clock.advance(Duration::from_secs(61));
    assert!(value(&f.kv, "t", None).is_none());
    f.kv.undelete_versions("t", &[1]).unwrap();
    assert!(value(&f.kv, "t", None).is_some());
    assert_eq!(
        f.kv.metadata("t").unwrap().unwrap().delete_version_after,
        "1m0s"
    );
}

#[test]
fn metadata_writes_support_check_and_set() {
    let f = fixture();
    let created =
        f.kv.write_metadata(
            "m",
            &MetadataUpdate {
                cas: Some(0),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(created.metadata_version, 1);
    assert_eq!(created.current_version, 0);
    let custom = |k: &str, v: Option<&str>| {
        Some([(k.to_string(), v.map(String::from))].into_iter().collect())
    };
    let update = MetadataUpdate {
        custom_metadata: custom("owner", Some("a")),
        cas: Some(1),
        ..Default::default()
    };
    f.kv.write_metadata("m", &update).unwrap();
    let err = f.kv.write_metadata("m", &update).unwrap_err();
    assert!(matches!(
        err,
        KvError::MetadataCasMismatch {
            expected: 1,
            current: 2
        }
    ));
    let merged = MetadataUpdate {
        custom_metadata: custom("team", Some("b")),
        merge: true,
        ..Default::default()
    };
    let view = f.kv.write_metadata("m", &merged).unwrap();
    assert_eq!(view.custom_metadata.unwrap().len(), 2);
    let removed = MetadataUpdate {
        custom_metadata: custom("owner", None),
        merge: true,
        ..Default::default()
    };
    let view = f.kv.write_metadata("m", &removed).unwrap();
    assert_eq!(
        view.custom_metadata.unwrap().keys().collect::<Vec<_>>(),
        ["team"]
    );
    let replaced = MetadataUpdate {
        custom_metadata: custom("x", Some("y")),
        ..Default::default()
    };
    let view = f.kv.write_metadata("m", &replaced).unwrap();
    assert_eq!(
        view.custom_metadata.unwrap().keys().collect::<Vec<_>>(),
        ["x"]
    );
    let long = "v".repeat(513);
    let bad = MetadataUpdate {
        custom_metadata: custom("k", Some(&long)),
        ..Default::default()
    };
    assert!(matches!(
        f.kv.write_metadata("m", &bad),
        Err(KvError::Invalid(_))
    ));
}

#[test]
fn patch_merges_into_the_current_version() {
    let f = fixture();
    assert!(matches!(
        f.kv.patch("x", &json!({"a": "1"}), None),
        Err(KvError::NotFound(_))
    ));
    f.kv.write(
        "x",
        &data(json!({"a": "1", "b": {"c": "2", "d": "3"}})),
        None,
    )
    .unwrap();
    let info =
        f.kv.patch("x", &json!({"a": null, "b": {"d": "4"}, "e": "5"}), Some(1))
            .unwrap();
    assert_eq!(info.version, 2);
    assert_eq!(
        value(&f.kv, "x", None).unwrap(),
        json!({"b": {"c": "2", "d": "4"}, "e": "5"})
    );
    f.kv.delete_latest("x").unwrap();
    assert!(matches!(
        f.kv.patch("x", &json!({"a": "1"}), None),
        Err(KvError::NotFound(_))
    ));
    assert!(matches!(
        f.kv.patch("x", &json!("str"), None),
        Err(KvError::Invalid(_))
    ));
}

#[test]
fn subkeys_and_rollback() {
    let f = fixture();
    f.kv.write("s", &data(json!({"a": "1", "b": {"c": {"d": "2"}}})), None)
        .unwrap();
    let all =
        f.kv.subkeys("s", None, 0)
            .unwrap()
            .unwrap()
            .subkeys
            .unwrap();
    assert_eq!(all, json!({"a": null, "b": {"c": {"d": null}}}));
    let top =
        f.kv.subkeys("s", None, 1)
            .unwrap()
            .unwrap()
            .subkeys
            .unwrap();
    assert_eq!(top, json!({"a": null, "b": null}));
    f.kv.write("s", &data(json!({"a": "changed"})), None)
        .unwrap();
    let info = f.kv.rollback("s", 1).unwrap();
    assert_eq!(info.version, 3);
    assert_eq!(
        value(&f.kv, "s", None).unwrap(),
        json!({"a": "1", "b": {"c": {"d": "2"}}})
    );
    f.kv.destroy_versions("s", &[2]).unwrap();
    assert!(matches!(f.kv.rollback("s", 2), Err(KvError::Invalid(_))));
    assert!(matches!(f.kv.rollback("s", 9), Err(KvError::Invalid(_))));
}

#[test]
fn list_shows_folders_and_paginates() {
    let f = fixture();
    for path in ["a", "b/c", "b/d", "e/f/g", "h"] {
        f.kv.write(path, &data(json!({"k": "v"})), None).unwrap();
    }
    assert_eq!(f.kv.list("", None, None).unwrap(), ["a", "b/", "e/", "h"]);
    assert_eq!(f.kv.list("b", None, None).unwrap(), ["c", "d"]);
    assert_eq!(f.kv.list("b/", None, None).unwrap(), ["c", "d"]);
    assert_eq!(f.kv.list("", Some("b/"), Some(2)).unwrap(), ["e/", "h"]);
    assert!(f.kv.list("nothing", None, None).unwrap().is_empty());
    f.kv.delete_metadata("b/c").unwrap();
    assert_eq!(f.kv.list("b", None, None).unwrap(), ["d"]);
    assert!(f.kv.read("b/c", None).unwrap().is_none());
}

#[test]
fn bad_paths_are_refused() {
    let f = fixture();
    let d = data(json!({"k": "v"}));
    for path in ["", "/a", "a/", "a//b", "a/../b", "a/./b", "a\u{0}b"] {
        assert!(
            matches!(f.kv.write(path, &d, None), Err(KvError::InvalidPath { .. })),
            "{path:?}"
        );
    }
}

#[test]
fn concurrent_check_and_set_writers_never_lose_an_update() {
    let f = Arc::new(fixture());
    let winners: Vec<_> = (0..4)
        .map(|t| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                let mut won = Vec::new();
                for _ in 0..20 {
                    let current =
                        f.kv.metadata("race")
                            .unwrap()
                            .map_or(0, |m| m.current_version);
                    let d = data(json!({"by": t.to_string()}));
                    if let Ok(info) = f.kv.write("race", &d, Some(current)) {
                        won.push(info.version);
                    }
                }
                won
            })
        })
        .collect();
    let mut versions: Vec<u64> = winners
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    versions.sort();
    let current = f.kv.metadata("race").unwrap().unwrap().current_version;
    assert_eq!(versions, (1..=current).collect::<Vec<_>>());
}

#[test]
fn values_never_reach_storage_or_debug_output() {
    let f = fixture();
    f.kv.write("leak", &data(json!({"password": "s3cr3t-value-xyz"})), None)
        .unwrap();
    for folder in ["logical/test/", "logical/test/meta/"] {
        for entry in f.storage.list(folder, None, None).unwrap() {
            if let Some(bytes) = f.storage.get(&format!("{folder}{entry}")).unwrap() {
                assert!(!String::from_utf8_lossy(&bytes).contains("s3cr3t"));
            }
        }
    }
    let read = f.kv.read("leak", None).unwrap().unwrap();
    assert!(!format!("{read:?}").contains("s3cr3t"));
}

#[test]
fn a_version_and_its_metadata_change_are_one_commit() {
    let f = fixture();
    let owner = |v: Option<&str>| MetadataUpdate {
        custom_metadata: Some([("owner".to_string(), v.map(String::from))].into()),
        merge: true,
        ..Default::default()
    };
    f.kv.write_metadata("app", &owner(Some("old"))).unwrap();
    let before = f.storage.generation().unwrap();
    let info =
        f.kv.write_with_metadata(
            "app",
            &data(json!({"k": "v1"})),
            Some(0),
            &owner(Some("tresor")),
        )
        .unwrap();
    assert_eq!(info.version, 1);
    assert_eq!(f.storage.generation().unwrap(), before + 1, "one commit");
    let meta = f.kv.metadata("app").unwrap().unwrap();
    assert_eq!(meta.current_version, 1);
    assert_eq!(meta.custom_metadata.unwrap()["owner"], "tresor");
    assert_eq!(value(&f.kv, "app", None), Some(json!({"k": "v1"})));

    // A failed check changes neither.
    let stale =
        f.kv.write_with_metadata("app", &data(json!({"k": "v2"})), Some(0), &owner(None))
            .unwrap_err();
    assert!(matches!(stale, KvError::CasMismatch { .. }));
    let meta = f.kv.metadata("app").unwrap().unwrap();
    assert_eq!(meta.current_version, 1);
    assert_eq!(meta.custom_metadata.unwrap()["owner"], "tresor");
}
