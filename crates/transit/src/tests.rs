use crate::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tresor_storage::{Backend, Memory};

fn engine() -> (Arc<dyn Backend>, TransitEngine) {
    let storage: Arc<dyn Backend> = Arc::new(Memory::new());
    let barrier = tresor_barrier::testing::unsealed(Arc::clone(&storage));
    (storage, TransitEngine::new(barrier, "logical/t/"))
}

fn item(plaintext: &[u8]) -> EncryptItem {
    EncryptItem {
        plaintext: B64.encode(plaintext).into(),
        ..EncryptItem::default()
    }
}

fn ct(ciphertext: &str) -> CiphertextItem {
    CiphertextItem {
        ciphertext: ciphertext.to_owned(),
        ..CiphertextItem::default()
    }
}

fn encrypt(e: &TransitEngine, name: &str, plaintext: &[u8]) -> EncryptResult {
    e.encrypt(name, &[item(plaintext)], None)
        .unwrap()
        .value
        .into_single()
        .unwrap()
}

fn decrypt(e: &TransitEngine, name: &str, ciphertext: &str) -> Result<Vec<u8>, TransitError> {
    let out = e.decrypt(name, &[ct(ciphertext)])?.into_single()?;
    Ok(B64.decode(out.plaintext.as_str()).unwrap())
}

#[test]
fn encrypt_decrypt_round_trip_in_vaults_format() {
    let (storage, e) = engine();
    let created = e.create_key("app", &CreateKey::default()).unwrap();
    assert!(created.warnings.is_empty());
    assert_eq!(created.value.key_type, "aes256-gcm96");
    assert_eq!(created.value.latest_version, 1);
    let out = encrypt(&e, "app", b"hunter2 is the password");
    assert!(
        out.ciphertext.starts_with("vault:v1:"),
        "{}",
        out.ciphertext
    );
    assert_eq!(out.key_version, 1);
    assert_eq!(
        decrypt(&e, "app", &out.ciphertext).unwrap(),
        b"hunter2 is the password"
    );
    // The key material sits in the store only inside the barrier's envelope.
    let raw = storage.get("logical/t/policy/app").unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("aes256"));
    let again = e.create_key("app", &CreateKey::default()).unwrap();
    assert_eq!(again.warnings, ["key app already existed"]);
    assert_eq!(e.list_keys(None, None).unwrap(), ["app"]);
}

#[test]
fn every_key_type_works_and_unknown_ones_are_refused() {
    let (_, e) = engine();
    for kind in [
        "aes128-gcm96",
        "aes256-gcm96",
        "chacha20-poly1305",
        "xchacha20-poly1305",
    ] {
        let params = CreateKey {
            key_type: KeyType::parse(kind).unwrap(),
            ..CreateKey::default()
        };
        let name = kind.replace('-', "_");
        assert_eq!(e.create_key(&name, &params).unwrap().value.key_type, kind);
        let out = encrypt(&e, &name, b"x");
        assert_eq!(decrypt(&e, &name, &out.ciphertext).unwrap(), b"x");
    }
    assert!(KeyType::parse("rsa-4096").is_err());
}

#[test]
fn a_missing_key_is_not_found_unless_upserted() {
    let (_, e) = engine();
    let err = e.encrypt("nope", &[item(b"x")], None).err().unwrap();
    assert!(matches!(err, TransitError::KeyNotFound(_)));
    assert_eq!(err.to_string(), "encryption key not found");
    assert!(!e.key_exists("nope").unwrap());
    let made = e
        .encrypt("made", &[item(b"x")], Some(&CreateKey::default()))
        .unwrap();
    assert!(made.warnings.is_empty());
    assert!(e.key_exists("made").unwrap());
    e.set_mount_config(MountConfig {
        disable_upsert: true,
    })
    .unwrap();
    assert!(matches!(
        e.encrypt("other", &[item(b"x")], Some(&CreateKey::default())),
        Err(TransitError::KeyNotFound(_))
    ));
    assert!(matches!(
        decrypt(&e, "nope", "vault:v1:AAAA"),
        Err(TransitError::KeyNotFound(_))
    ));
}

#[test]
fn rotation_versions_and_minimums() {
    let (_, e) = engine();
    e.create_key("k", &CreateKey::default()).unwrap();
    let v1 = encrypt(&e, "k", b"one").ciphertext;
    assert_eq!(e.rotate_key("k").unwrap().latest_version, 2);
    let v2 = encrypt(&e, "k", b"two").ciphertext;
    assert!(v2.starts_with("vault:v2:"));
    assert_eq!(decrypt(&e, "k", &v1).unwrap(), b"one");

    // Rewrap moves old ciphertext to the latest version.
    let rewrapped = e.rewrap("k", &[ct(&v1)]).unwrap().into_single().unwrap();
    assert_eq!(rewrapped.key_version, 2);
    assert_eq!(decrypt(&e, "k", &rewrapped.ciphertext).unwrap(), b"one");

    // Older versions stop decrypting once below the minimum.
    let cfg = KeyConfig {
        min_decryption_version: Some(2),
        ..KeyConfig::default()
    };
    assert_eq!(
        e.configure_key("k", &cfg)
            .unwrap()
            .value
            .min_decryption_version,
        2
    );
    assert_eq!(
        decrypt(&e, "k", &v1).unwrap_err().to_string(),
        "ciphertext or signature version is disallowed by policy (too old)"
    );
    assert_eq!(decrypt(&e, "k", &v2).unwrap(), b"two");
    let err = e.rewrap("k", &[ct(&v1)]).unwrap();
    assert!(err.user_errors && !err.successes);

    // Encrypting with a chosen version, and the minimum encryption version.
    let mut old = item(b"x");
    old.key_version = Some(1);
    let batch = e.encrypt("k", &[old.clone()], None).unwrap().value;
    assert_eq!(batch.results[0].key_version, 1);
    e.configure_key(
        "k",
        &KeyConfig {
            min_encryption_version: Some(2),
            ..KeyConfig::default()
        },
    )
    .unwrap();
    let refused = e.encrypt("k", &[old], None).unwrap().value;
    assert!(
        refused.results[0]
            .error
            .contains("less than the minimum encryption key version"),
        "{:?}",
        refused.results
    );
    let too_new = e.configure_key(
        "k",
        &KeyConfig {
            min_decryption_version: Some(9),
            ..KeyConfig::default()
        },
    );
    assert_eq!(
        too_new.unwrap_err().to_string(),
        "cannot set min decryption version of 9, latest key version is 2"
    );
    let inverted = e.configure_key(
        "k",
        &KeyConfig {
            min_decryption_version: Some(2),
            min_encryption_version: Some(1),
            ..KeyConfig::default()
        },
    );
    assert!(
        inverted
            .unwrap_err()
            .to_string()
            .contains("must be greater than or equal")
    );
    // A refused change wrote nothing.
    let info = e.read_key("k").unwrap().unwrap();
    assert_eq!(
        (info.min_decryption_version, info.min_encryption_version),
        (2, 2)
    );
}

#[test]
fn trim_removes_old_versions_for_good() {
    let (_, e) = engine();
    e.create_key("k", &CreateKey::default()).unwrap();
    let v1 = encrypt(&e, "k", b"one").ciphertext;
    e.rotate_key("k").unwrap();
    assert!(
        e.trim_key("k", 2)
            .unwrap_err()
            .to_string()
            .contains("minimum encryption version is not set")
    );
    e.configure_key(
        "k",
        &KeyConfig {
            min_decryption_version: Some(2),
            min_encryption_version: Some(2),
            ..KeyConfig::default()
        },
    )
    .unwrap();
    let trimmed = e.trim_key("k", 2).unwrap();
    assert_eq!(trimmed.keys.keys().collect::<Vec<_>>(), ["2"]);
    assert!(
        e.trim_key("k", 1)
            .unwrap_err()
            .to_string()
            .contains("decremented")
    );
    // Lowering the decryption minimum again cannot bring version 1 back.
    assert!(
        e.configure_key(
            "k",
            &KeyConfig {
                min_decryption_version: Some(1),
                ..KeyConfig::default()
            }
        )
        .is_err()
    );
    assert!(decrypt(&e, "k", &v1).is_err());
}

#[test]
fn tampered_or_foreign_ciphertext_is_refused() {
    let (_, e) = engine();
    e.create_key("a", &CreateKey::default()).unwrap();
    e.create_key("b", &CreateKey::default()).unwrap();
    let out = encrypt(&e, "a", b"secret").ciphertext;
    assert!(decrypt(&e, "b", &out).is_err(), "another key's ciphertext");
    let mut raw = B64.decode(out.trim_start_matches("vault:v1:")).unwrap();
    raw[20] ^= 1;
    let tampered = format!("vault:v1:{}", B64.encode(&raw));
    assert_eq!(
        decrypt(&e, "a", &tampered).unwrap_err().to_string(),
        "cipher: message authentication failed"
    );
    assert_eq!(
        decrypt(&e, "a", "vault:v7:AAAA").unwrap_err().to_string(),
        "invalid ciphertext: version is too new"
    );
    assert_eq!(
        decrypt(&e, "a", "garbage").unwrap_err().to_string(),
        "invalid ciphertext: no prefix"
    );
}

#[test]
fn derived_keys_need_a_context_and_bind_to_it() {
    let (_, e) = engine();
    e.create_key(
        "d",
        &CreateKey {
            derived: true,
            ..CreateKey::default()
        },
    )
    .unwrap();
    let info = e.read_key("d").unwrap().unwrap();
    assert_eq!(info.kdf, Some("hkdf_sha256"));
    let no_context = e.encrypt("d", &[item(b"x")], None).unwrap().value;
    assert!(no_context.results[0].error.contains("missing 'context'"));
    let mut with = item(b"tenant data");
    with.context = Some(B64.encode("tenant-1"));
    let out = e
        .encrypt("d", &[with], None)
        .unwrap()
        .value
        .into_single()
        .unwrap();
    let mut right = ct(&out.ciphertext);
    right.context = Some(B64.encode("tenant-1"));
    let plain = e.decrypt("d", &[right]).unwrap().into_single().unwrap();
    assert_eq!(
        B64.decode(plain.plaintext.as_str()).unwrap(),
        b"tenant data"
    );
    let mut wrong = ct(&out.ciphertext);
    wrong.context = Some(B64.encode("tenant-2"));
    assert!(e.decrypt("d", &[wrong]).unwrap().user_errors);
}

#[test]
fn batches_keep_order_and_references_and_report_partial_failure() {
    let (_, e) = engine();
    e.create_key("k", &CreateKey::default()).unwrap();
    let mut bad = EncryptItem {
        plaintext: String::from("***").into(),
        ..EncryptItem::default()
    };
    bad.reference = Some("second".into());
    let mut first = item(b"1");
    first.reference = Some("first".into());
    let batch = e
        .encrypt("k", &[first, bad, item(b"3")], None)
        .unwrap()
        .value;
    assert_eq!(batch.results.len(), 3);
    assert_eq!(batch.results[0].reference, "first");
    assert_eq!(batch.results[1].reference, "second");
    assert!(!batch.results[1].error.is_empty());
    assert!(batch.results[1].ciphertext.is_empty());
    assert_eq!(batch.status(None), 400);
    assert_eq!(batch.status(Some(207)), 207);
    assert_eq!(batch.status(Some(0)), 400);
    let json = serde_json::to_value(&batch.results).unwrap();
    assert!(json[1].get("ciphertext").is_none());
    assert!(json[0].get("error").is_none());

    let mut ctx = item(b"x");
    ctx.context = Some(B64.encode("c"));
    let mixed = e.encrypt("k", &[item(b"x"), ctx], None).err().unwrap();
    assert_eq!(
        mixed.to_string(),
        "context should be set either in all the request blocks or in none"
    );
    let plain = e
        .decrypt(
            "k",
            &[
                ct(&batch.results[0].ciphertext),
                ct(""),
                ct(&batch.results[2].ciphertext),
            ],
        )
        .unwrap();
    assert_eq!(
        B64.decode(plain.results[2].plaintext.as_str()).unwrap(),
        b"3"
    );
    assert_eq!(plain.results[1].error, "missing ciphertext to decrypt");
    assert!(plain.successes && plain.user_errors);
}

#[test]
fn datakeys_come_plaintext_or_wrapped() {
    let (_, e) = engine();
    e.create_key("k", &CreateKey::default()).unwrap();
    let dk = e
        .datakey(
            "k",
            &DataKeyRequest {
                with_plaintext: true,
                bits: Some(512),
                ..DataKeyRequest::default()
            },
        )
        .unwrap();
    let plain = B64
        .decode(dk.plaintext.as_deref().unwrap().as_str())
        .unwrap();
    assert_eq!(plain.len(), 64);
    assert_eq!(decrypt(&e, "k", &dk.ciphertext).unwrap(), plain);
    assert!(!format!("{dk:?}").contains(dk.plaintext.as_deref().unwrap().as_str()));
    let wrapped = e.datakey("k", &DataKeyRequest::default()).unwrap();
    assert!(wrapped.plaintext.is_none());
    assert_eq!(decrypt(&e, "k", &wrapped.ciphertext).unwrap().len(), 32);
    let bits = e.datakey(
        "k",
        &DataKeyRequest {
            bits: Some(100),
            ..DataKeyRequest::default()
        },
    );
    assert_eq!(bits.unwrap_err().to_string(), "invalid bit length");
}

#[test]
fn export_is_off_by_default_and_one_way_on() {
    let (_, e) = engine();
    e.create_key("k", &CreateKey::default()).unwrap();
    assert!(matches!(
        e.export("k", "encryption-key", None),
        Err(TransitError::NotExportable)
    ));
    let cfg = KeyConfig {
        exportable: Some(true),
        ..KeyConfig::default()
    };
    e.configure_key("k", &cfg).unwrap();
    let off = KeyConfig {
        exportable: Some(false),
        ..KeyConfig::default()
    };
    assert!(
        e.configure_key("k", &off).unwrap().value.exportable,
        "cannot be turned off"
    );
    e.rotate_key("k").unwrap();
    let all = e.export("k", "encryption-key", None).unwrap().unwrap();
    assert_eq!(all.keys.len(), 2);
    let latest = e
        .export("k", "encryption-key", Some("latest"))
        .unwrap()
        .unwrap();
    assert_eq!(latest.keys.keys().collect::<Vec<_>>(), ["2"]);
    assert_eq!(B64.decode(latest.keys["2"].as_str()).unwrap().len(), 32);
    assert!(!format!("{latest:?}").contains(latest.keys["2"].as_str()));
    assert!(e.export("k", "nonsense", None).is_err());
    assert!(e.export("none", "encryption-key", None).unwrap().is_none());
}

#[test]
fn deletion_needs_deletion_allowed() {
    let (_, e) = engine();
    e.create_key("k", &CreateKey::default()).unwrap();
    assert!(matches!(
        e.delete_key("k"),
        Err(TransitError::DeletionNotAllowed)
    ));
    assert!(e.key_exists("k").unwrap());
    e.configure_key(
        "k",
        &KeyConfig {
            deletion_allowed: Some(true),
            ..KeyConfig::default()
        },
    )
    .unwrap();
    e.delete_key("k").unwrap();
    assert!(e.read_key("k").unwrap().is_none());
    assert!(
        e.delete_key("k")
            .unwrap_err()
            .to_string()
            .contains("not found")
    );
}

#[test]
fn bad_names_and_settings_are_refused() {
    let (_, e) = engine();
    for name in ["", "-x", "a/b", "x.", "../k"] {
        assert!(e.create_key(name, &CreateKey::default()).is_err(), "{name}");
    }
    let short = CreateKey {
        auto_rotate_period: Duration::from_secs(60),
        ..CreateKey::default()
    };
    assert!(
        e.create_key("k", &short)
            .unwrap_err()
            .to_string()
            .contains("at least an hour")
    );
    let convergent = CreateKey {
        convergent_encryption: true,
        ..CreateKey::default()
    };
    assert!(
        e.create_key("k", &convergent)
            .unwrap_err()
            .to_string()
            .contains("derivation")
    );
    assert!(!e.key_exists("k").unwrap());
}

#[test]
fn due_keys_rotate_automatically() {
    let (_, e) = engine();
    let hourly = CreateKey {
        auto_rotate_period: Duration::from_secs(3600),
        ..CreateKey::default()
    };
    e.create_key("hourly", &hourly).unwrap();
    e.create_key("manual", &CreateKey::default()).unwrap();
    assert!(e.rotate_due(SystemTime::now()).unwrap().is_empty());
    let later = SystemTime::now() + Duration::from_secs(3601);
    assert_eq!(e.rotate_due(later).unwrap(), ["hourly"]);
    assert_eq!(e.read_key("hourly").unwrap().unwrap().latest_version, 2);
    assert_eq!(e.read_key("manual").unwrap().unwrap().latest_version, 1);
}

#[test]
fn two_servers_on_one_store_rotate_a_due_key_once() {
    let (one, two) = tresor_barrier::testing::unsealed_pair(Arc::new(Memory::new()));
    let first = TransitEngine::new(one, "logical/t/");
    let second = TransitEngine::new(two, "logical/t/");
    let hourly = CreateKey {
        auto_rotate_period: Duration::from_secs(3600),
        ..CreateKey::default()
    };
    first.create_key("hourly", &hourly).unwrap();
    let later = SystemTime::now() + Duration::from_secs(3601);
    assert_eq!(first.rotate_due(later).unwrap(), ["hourly"]);
    assert!(second.rotate_due(later).unwrap().is_empty());
    assert_eq!(
        second.read_key("hourly").unwrap().unwrap().latest_version,
        2
    );
}

#[test]
fn a_sealed_store_refuses_everything() {
    let storage: Arc<dyn Backend> = Arc::new(Memory::new());
    let barrier = tresor_barrier::testing::unsealed(Arc::clone(&storage));
    let e = TransitEngine::new(Arc::clone(&barrier), "logical/t/");
    e.create_key("k", &CreateKey::default()).unwrap();
    barrier.seal();
    let err = e.encrypt_bytes("k", b"x", None).unwrap_err();
    assert!(matches!(
        err,
        TransitError::Barrier(tresor_barrier::BarrierError::Sealed)
    ));
    assert!(!err.is_client_error());
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let it = item(b"top secret");
    assert!(!format!("{it:?}").contains(it.plaintext.as_str()));
    let result = DecryptResult {
        plaintext: B64.encode("top secret").into(),
        ..DecryptResult::default()
    };
    assert!(!format!("{result:?}").contains(result.plaintext.as_str()));
}
