use crate::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tresor_barrier::BarrierError;
use tresor_barrier::seal::Share;
use tresor_kv::SecretMap;
use tresor_storage::{STORE_FILE_NAME, StorageError};

fn data(v: serde_json::Value) -> SecretMap {
    serde_json::from_value(v).unwrap()
}

fn file_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(STORE_FILE_NAME)).unwrap()
}

fn key_file_store(tmp: &Path) -> (std::path::PathBuf, Unseal) {
    let dir = tmp.join("store");
    let key = tmp.join("keys/k.key");
    let out = init(&dir, InitOptions::KeyFile(Some(key.clone()))).unwrap();
    assert_eq!(out.key_file.as_deref(), Some(key.as_path()));
    (dir, Unseal::default())
}

#[test]
fn init_mounts_secret_and_data_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, unseal) = key_file_store(tmp.path());
    let store = open(&dir, &unseal, Access::ReadWrite).unwrap();
    let (mount, rest) = store.resolve("secret/app/db").unwrap();
    assert_eq!((mount.path.as_str(), rest.as_str()), ("secret/", "app/db"));
    store
        .kv(&mount)
        .unwrap()
        .write(&rest, &data(json!({"password": "pw"})), None)
        .unwrap();
    drop(store);

    let before = file_bytes(&dir);
    let store = open(&dir, &unseal, Access::ReadOnly).unwrap();
    let mount = store.mount("secret").unwrap();
    let read = store
        .kv(&mount)
        .unwrap()
        .read("app/db", None)
        .unwrap()
        .unwrap();
    assert_eq!(read.data.unwrap().get("password").unwrap(), "pw");
    drop(store);
    assert_eq!(
        file_bytes(&dir),
        before,
        "a read-only open modified the file"
    );
    {
        let store = open(&dir, &unseal, Access::WriteOnDemand).unwrap();
        let kv = store.kv(&store.mount("secret").unwrap()).unwrap();
        assert!(
            kv.write("app/db", &data(json!({"password": "x"})), Some(0))
                .is_err()
        );
        assert!(
            kv.write("/bad", &data(json!({"password": "x"})), None)
                .is_err()
        );
    }
    assert!(
        file_bytes(&dir) == before,
        "a write that was refused opened the file"
    );
    {
        let store = open(&dir, &unseal, Access::WriteOnDemand).unwrap();
        let kv = store.kv(&store.mount("secret").unwrap()).unwrap();
        kv.write("app/db", &data(json!({"password": "y"})), Some(1))
            .unwrap();
        assert_eq!(
            kv.read("app/db", None).unwrap().unwrap().metadata.version,
            2
        );
    }
    assert!(matches!(
        init(&dir, InitOptions::KeyFile(None)),
        Err(CoreError::AlreadyExists(_))
    ));
}

#[test]
fn a_wrong_key_file_leaves_the_store_byte_for_byte_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = key_file_store(tmp.path());
    let other = tmp.path().join("other.key");
    tresor_barrier::UnsealKey::generate()
        .write_key_file(&other)
        .unwrap();
    let before = file_bytes(&dir);
    let unseal = Unseal {
        key_file: Some(other),
        ..Unseal::default()
    };
    let err = open(&dir, &unseal, Access::ReadWrite).err().unwrap();
    assert!(
        matches!(err, CoreError::Barrier(BarrierError::WrongUnsealKey)),
        "{err}"
    );
    assert_eq!(file_bytes(&dir), before);
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, unseal) = key_file_store(tmp.path());
    let key = tmp.path().join("keys/k.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = open(&dir, &unseal, Access::ReadOnly).err().unwrap();
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::remove_file(&key).unwrap();
    let err = open(&dir, &unseal, Access::ReadOnly).err().unwrap();
    assert!(matches!(err, CoreError::NoKeyFile { .. }), "{err}");
}

#[test]
fn shamir_stores_need_enough_right_shares() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let out = init(
        &dir,
        InitOptions::Shamir {
            shares: 5,
            threshold: 3,
        },
    )
    .unwrap();
    assert_eq!(out.shares.len(), 5);
    assert!(out.key_file.is_none());
    let before = file_bytes(&dir);
    let with = |shares: &[Share]| Unseal {
        shares: shares.to_vec(),
        ..Unseal::default()
    };

    let err = open(&dir, &with(&out.shares[..2]), Access::ReadWrite)
        .err()
        .unwrap();
    assert!(matches!(err, CoreError::NeedShares { threshold: 3 }));
    let foreign = tresor_barrier::UnsealKey::generate().split(5, 3).unwrap();
    let mixed = [
        out.shares[0].clone(),
        out.shares[1].clone(),
        foreign[2].clone(),
    ];
    let err = open(&dir, &with(&mixed), Access::ReadWrite).err().unwrap();
    assert!(matches!(
        err,
        CoreError::Barrier(BarrierError::WrongUnsealKey)
    ));
    assert_eq!(file_bytes(&dir), before);

    open(&dir, &with(&out.shares[2..]), Access::ReadWrite).unwrap();
}

#[test]
fn bad_seal_settings_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    assert!(
        init(
            &dir,
            InitOptions::Shamir {
                shares: 3,
                threshold: 5
            }
        )
        .is_err()
    );
    assert!(!dir.join(STORE_FILE_NAME).exists());
}

#[test]
fn mounts_enable_disable_and_refuse_nesting() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, unseal) = key_file_store(tmp.path());
    let store = open(&dir, &unseal, Access::ReadWrite).unwrap();
    let team = store.enable("team/a", MountType::KvV2, "").unwrap();
    assert_eq!(team.path, "team/a/");
    for bad in [
        "team", "team/a/b", "secret/x", "sys", "auth/x", "", "a/../b",
    ] {
        assert!(store.enable(bad, MountType::KvV2, "").is_err(), "{bad}");
    }
    store
        .kv(&team)
        .unwrap()
        .write("x", &data(json!({"k": "v"})), None)
        .unwrap();
    assert_eq!(store.resolve("team/a/x").unwrap().0.path, "team/a/");
    assert!(matches!(
        store.resolve("nope/x"),
        Err(CoreError::NoMount(_))
    ));
    let paths: Vec<String> = store
        .mounts()
        .unwrap()
        .into_iter()
        .map(|m| m.path)
        .collect();
    assert_eq!(paths, ["secret/", "team/a/"]);

    assert!(store.disable("team/a").unwrap());
    assert!(!store.disable("team/a").unwrap());
    let prefix = team.storage_prefix();
    assert!(
        store
            .barrier()
            .storage()
            .list(&prefix, None, None)
            .unwrap()
            .is_empty()
    );
    let again = store.enable("team/a", MountType::KvV2, "").unwrap();
    assert!(store.kv(&again).unwrap().read("x", None).unwrap().is_none());
}

#[test]
fn due_transit_keys_rotate_on_every_transit_mount() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, unseal) = key_file_store(tmp.path());
    let store = open(&dir, &unseal, Access::ReadWrite).unwrap();
    let hourly = tresor_transit::CreateKey {
        auto_rotate_period: std::time::Duration::from_secs(3600),
        ..tresor_transit::CreateKey::default()
    };
    for path in ["transit", "team/transit"] {
        let mount = store.enable(path, MountType::Transit, "").unwrap();
        store
            .transit_of(&mount)
            .unwrap()
            .create_key("db", &hourly)
            .unwrap();
    }
    let now = std::time::SystemTime::now();
    assert!(store.rotate_due_transit_keys(now).unwrap().is_empty());
    let later = now + std::time::Duration::from_secs(3600);
    let rotated = store.rotate_due_transit_keys(later).unwrap();
    let expected = [("team/transit/", "db"), ("transit/", "db")];
    assert_eq!(rotated, expected.map(|(m, k)| (m.to_owned(), k.to_owned())));
    let key = store.transit("transit").unwrap().read_key("db").unwrap();
    assert_eq!(key.unwrap().latest_version, 2);
}

#[test]
fn foreign_truncated_or_missing_store_files_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = open(
        &tmp.path().join("none"),
        &Unseal::default(),
        Access::ReadOnly,
    )
    .err()
    .unwrap();
    assert!(matches!(
        missing,
        CoreError::Storage(StorageError::Missing { .. })
    ));

    let (dir, unseal) = key_file_store(tmp.path());
    let good = file_bytes(&dir);
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    for (n, bytes) in [
        b"PNG\x89 not a store".to_vec(),
        good[..good.len() / 3].to_vec(),
        Vec::new(),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(foreign.join(STORE_FILE_NAME), &bytes).unwrap();
        let result = open(&foreign, &unseal, Access::ReadWrite);
        let err = result.err().unwrap_or_else(|| panic!("case {n} opened"));
        assert!(!err.to_string().is_empty());
    }
}
