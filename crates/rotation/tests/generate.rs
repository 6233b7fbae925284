//! The state machine with the `generate` rotator, on a real embedded store.

mod support;

use std::time::{Duration, SystemTime};
use support::Platform;
use tresor_rotation::{Engine, RotateError, record};

const SPEC: &str = "\
secrets:
  api-secrets:
    # Its copy in client-config is checked against the store's: fresh values rotate it.
    rotation: {every: 30d, rotator: generate}
    keys:
      api-key: {generate: hex:32}
      api-user: {value: inference}
  client-config:
    keys:
      api-key: {ref: api-secrets/api-key}
  plain:
    keys:
      token: {generate: base64:32}
";

#[test]
fn rotation_promotes_a_fresh_value_and_keeps_labels_in_the_store() {
    let p = Platform::apply(SPEC);
    let before = p.value("api-secrets", "api-key");
    let version = p.version("api-secrets");
    let engine = Engine::new(&p.spec, p.opened.store());
    let secret = engine.secret("api-secrets").unwrap();

    let rotated = engine.rotate(secret, SystemTime::now()).unwrap();

    let after = p.value("api-secrets", "api-key");
    assert_ne!(after, before);
    assert_eq!(after.len(), 64);
    assert_eq!(p.value("api-secrets", "api-user"), "inference");
    assert_eq!(rotated.version, version + 1);
    assert_eq!(rotated.changed, ["api-secrets", "client-config"]);
    // The reference follows.
    assert_eq!(p.value("client-config", "api-key"), after);
    let state = engine.state(secret).unwrap();
    assert_eq!(state.current, version + 1);
    assert_eq!(state.previous, Some(version));
    assert_eq!(state.step, None);
    assert!(state.lease.is_none());
    assert!(state.last_rotated.is_some());
    // The record holds no pending value once promoted.
    let rec = record::load(p.opened.store(), "api-secrets").unwrap();
    assert!(rec.pending.is_empty());
    // `previous` is still readable in the store.
    let old = p
        .opened
        .local()
        .unwrap()
        .read("api-secrets", Some(version))
        .unwrap()
        .unwrap();
    assert_eq!(
        old.data.unwrap().get("api-key").unwrap(),
        &serde_json::json!(before)
    );
}

#[test]
fn status_tracks_age_and_due_dates() {
    let p = Platform::apply(SPEC);
    let now = SystemTime::now();
    let rows = tresor_rotation::status(&p.spec, Some(p.opened.store()), now).unwrap();
    let api = rows.iter().find(|r| r.secret == "api-secrets").unwrap();
    assert_eq!(api.keys, ["api-key", "api-user"]);
    assert_eq!(api.rotator.as_deref(), Some("generate"));
    assert!(!api.overdue);
    assert_eq!(api.last_rotated, None);
    let plain = rows.iter().find(|r| r.secret == "plain").unwrap();
    assert_eq!(plain.rotator, None);
    assert!(!plain.due());

    // 31 days on, the 30-day policy is overdue; rotating resets it.
    let later = now + Duration::from_secs(31 * 86400);
    let rows = tresor_rotation::status(&p.spec, Some(p.opened.store()), later).unwrap();
    assert!(
        rows.iter()
            .find(|r| r.secret == "api-secrets")
            .unwrap()
            .overdue
    );
    let engine = Engine::new(&p.spec, p.opened.store());
    engine
        .rotate(engine.secret("api-secrets").unwrap(), later)
        .unwrap();
    let rows = tresor_rotation::status(&p.spec, Some(p.opened.store()), later).unwrap();
    let api = rows.iter().find(|r| r.secret == "api-secrets").unwrap();
    assert!(!api.overdue);
    assert_eq!(
        api.last_rotated.map(record::stamp),
        Some(record::stamp(later))
    );
    // Times are kept in whole seconds.
    assert!(api.age(later).unwrap() < Duration::from_secs(1));
}

#[test]
fn a_held_lease_keeps_a_second_rotator_out() {
    let p = Platform::apply(SPEC);
    let store = p.opened.store();
    let first = Engine::new(&p.spec, store);
    let second = Engine::new(&p.spec, store);
    let secret = first.secret("api-secrets").unwrap();
    // A live holder (this very process) has the lease, as a server would.
    let mut rec = record::load(store, "api-secrets").unwrap();
    rec.state.lease = Some(record::holder(SystemTime::now(), "someone-else"));
    assert!(rec.save(store, "api-secrets").unwrap());
    let before = p.value("api-secrets", "api-key");

    let err = second.rotate(secret, SystemTime::now()).unwrap_err();
    assert!(matches!(err, RotateError::Busy { .. }), "{err}");
    assert!(
        err.to_string().contains("is being rotated by process"),
        "{err}"
    );
    assert_eq!(p.value("api-secrets", "api-key"), before);

    // Once the lease has run out, the next rotation takes it over.
    let later = SystemTime::now() + record::LEASE_TTL + Duration::from_secs(1);
    first.rotate(secret, later).unwrap();
    assert_ne!(p.value("api-secrets", "api-key"), before);
}

#[test]
fn a_stale_write_of_the_record_loses_the_check_and_set() {
    let p = Platform::apply(SPEC);
    let store = p.opened.store();
    let mut a = record::load(store, "api-secrets").unwrap();
    let mut b = record::load(store, "api-secrets").unwrap();
    a.state.last_error = Some("a".into());
    b.state.last_error = Some("b".into());
    assert!(a.save(store, "api-secrets").unwrap());
    assert!(!b.save(store, "api-secrets").unwrap());
    assert_eq!(
        record::load(store, "api-secrets")
            .unwrap()
            .state
            .last_error
            .as_deref(),
        Some("a")
    );
}

#[test]
fn a_secret_without_a_policy_is_refused() {
    let p = Platform::apply(SPEC);
    let engine = Engine::new(&p.spec, p.opened.store());
    let err = engine
        .rotate(engine.secret("plain").unwrap(), SystemTime::now())
        .unwrap_err();
    assert!(err.to_string().contains("no `rotation` policy"), "{err}");
    assert!(err.is_usage());
}

/// Several rotators (as several servers would) race on one secret: each
/// attempt either rotates or is told the secret is busy, and every
/// successful rotation is exactly one new version.
#[test]
fn racing_rotators_rotate_one_at_a_time() {
    let p = Platform::apply(SPEC);
    // The embedded engine itself: shared by the threads as by servers.
    let kv = p.opened.local().unwrap();
    let start = p.version("api-secrets");
    let rotated = std::sync::atomic::AtomicU64::new(0);
    let busy = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let engine = Engine::new(&p.spec, kv);
                let secret = engine.secret("api-secrets").unwrap();
                for _ in 0..10 {
                    match engine.rotate(secret, SystemTime::now()) {
                        Ok(_) => rotated.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        Err(RotateError::Busy { .. }) => {
                            busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        }
                        Err(e) => panic!("{e}"),
                    };
                }
            });
        }
    });
    let rotated = rotated.into_inner();
    eprintln!("{rotated} rotations, {} refused as busy", busy.into_inner());
    assert!(rotated > 0);
    assert_eq!(p.version("api-secrets"), start + rotated);
    let engine = Engine::new(&p.spec, kv);
    let state = engine.state(engine.secret("api-secrets").unwrap()).unwrap();
    assert_eq!(state.current, start + rotated);
    assert!(state.lease.is_none() && state.step.is_none());
}

#[test]
fn a_referenced_generated_key_needs_the_rotator_named() {
    let p = Platform::apply(&SPEC.replace("{every: 30d, rotator: generate}", "{every: 30d}"));
    let before = p.value("api-secrets", "api-key");
    let engine = Engine::new(&p.spec, p.opened.store());
    let secret = engine.secret("api-secrets").unwrap();
    let refused = engine.rotate(secret, SystemTime::now()).unwrap_err();
    assert!(
        matches!(&refused, RotateError::SharedCredential { key, referrer, .. }
            if key == "api-key" && referrer == "client-config/api-key"),
        "{refused}"
    );
    assert!(refused.is_usage());
    assert_eq!(p.value("api-secrets", "api-key"), before);
    let later = SystemTime::now() + Duration::from_secs(31 * 86400);
    let rows = tresor_rotation::status(&p.spec, Some(p.opened.store()), later).unwrap();
    let row = rows.iter().find(|r| r.secret == "api-secrets").unwrap();
    assert!(
        row.overdue && !row.due(),
        "overdue, but not picked by --due or a scheduler"
    );
    assert!(
        row.refused
            .as_deref()
            .unwrap()
            .contains("rotator: generate")
    );
}
