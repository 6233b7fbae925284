//! The `postgres` rotator against a real PostgreSQL (a throwaway cluster
//! with SCRAM authentication, started by the test).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};
use support::{Platform, admin_secret, cluster, logs_in, set_password};
use tresor_rotation::{Engine, RotateError};
use tresor_testpg::Cluster;

fn single_user(pg: &Cluster) -> Platform {
    let p = Platform::apply(&format!(
        "secrets:
{admin}  db:
    rotation:
      postgres: {{port: {port}, database: app, admin: {{secret: pg-admin}}}}
    keys:
      username: {{value: app}}
      password: {{generate: base64:32}}
  mlflow:
    keys:
      db-password: {{ref: db/password}}
",
        admin = admin_secret(pg),
        port = pg.port()
    ));
    pg.psql("app", "CREATE ROLE app LOGIN").unwrap();
    set_password(pg, "app", &p.value("db", "password"));
    p
}

fn alternating(pg: &Cluster, grace: &str) -> Platform {
    let p = Platform::apply(&format!(
        "secrets:
{admin}  db:
    rotation:
      every: 30d
      postgres:
        port: {port}
        database: app
        admin: {{secret: pg-admin}}
        strategy: alternating-users
        owner: app
        grace: {grace}
    keys:
      username: {{value: app_a}}
      password: {{generate: base64:32}}
",
        admin = admin_secret(pg),
        port = pg.port()
    ));
    pg.psql(
        "app",
        "CREATE ROLE app NOLOGIN; CREATE ROLE app_a LOGIN IN ROLE app; CREATE ROLE app_b LOGIN IN ROLE app; GRANT CREATE ON SCHEMA public TO app",
    )
    .unwrap();
    set_password(pg, "app_a", &p.value("db", "password"));
    p
}

fn rotate(p: &Platform, name: &str) -> Result<tresor_rotation::Rotated, RotateError> {
    let engine = Engine::new(&p.spec, p.opened.store());
    engine.rotate(engine.secret(name).unwrap(), SystemTime::now())
}

#[test]
fn single_user_new_password_logs_in_and_the_old_one_is_refused() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let pg = cluster();
    let p = single_user(&pg);
    let old = p.value("db", "password");
    logs_in(&pg, "app", &old).unwrap();

    let rotated = rotate(&p, "db").unwrap();

    let new = p.value("db", "password");
    assert_ne!(new, old);
    logs_in(&pg, "app", &new).unwrap();
    let refused = logs_in(&pg, "app", &old).unwrap_err();
    assert!(
        refused.contains("password authentication failed"),
        "{refused}"
    );
    // MLflow's reference follows the rotated password.
    assert_eq!(rotated.changed, ["db", "mlflow"]);
    assert_eq!(p.value("mlflow", "db-password"), new);
}

#[test]
fn the_server_log_never_holds_a_password() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let pg = cluster();
    let p = single_user(&pg);
    let mut passwords = Vec::new();
    for _ in 0..3 {
        rotate(&p, "db").unwrap();
        passwords.push(p.value("db", "password"));
    }
    let log = pg.log();
    assert!(
        log.contains("ALTER ROLE \"app\" PASSWORD 'SCRAM-SHA-256$4096:"),
        "log_statement=all logged no ALTER ROLE:\n{log}"
    );
    for password in &passwords {
        assert!(
            !log.contains(password.as_str()),
            "a rotated password is in the server log"
        );
    }
}

#[test]
fn alternating_users_keep_every_fresh_login_working() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let pg = cluster();
    let p = alternating(&pg, "1h");
    let stop = Arc::new(AtomicBool::new(false));
    let logins = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let rotations = 6;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                // Whatever the store says is current, on a fresh connection.
                let (user, password) = p.login("db");
                match logs_in(&pg, &user, &password) {
                    Ok(()) => logins.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failures.lock().unwrap().push(format!("{user}: {e}"));
                        0
                    }
                };
            }
        });
        let mut users = Vec::new();
        for _ in 0..rotations {
            // Let the client log in a few times with each credential.
            let seen = logins.load(Ordering::Relaxed);
            while logins.load(Ordering::Relaxed) < seen + 10 {
                std::thread::sleep(Duration::from_millis(5));
            }
            rotate(&p, "db").unwrap();
            users.push(p.value("db", "username"));
        }
        let seen = logins.load(Ordering::Relaxed);
        while logins.load(Ordering::Relaxed) < seen + 10 {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(
            users,
            ["app_b", "app_a", "app_b", "app_a", "app_b", "app_a"]
        );
    });
    let failures = failures.lock().unwrap();
    let logins = logins.load(Ordering::Relaxed);
    eprintln!(
        "{logins} fresh logins across {rotations} rotations, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "failed logins: {failures:?}");
    assert!(logins >= 70);
}

#[test]
fn the_retired_user_stops_logging_in_after_the_grace_period() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let pg = cluster();
    let p = alternating(&pg, "0s");
    let old = p.value("db", "password");
    rotate(&p, "db").unwrap();
    // Within the grace period (none left here) the old login still works
    // until the retirement runs.
    logs_in(&pg, "app_a", &old).unwrap();
    let engine = Engine::new(&p.spec, p.opened.store());
    let secret = engine.secret("db").unwrap();
    assert_eq!(
        engine
            .retire_due(secret, SystemTime::now())
            .unwrap()
            .as_deref(),
        Some("app_a")
    );
    let refused = logs_in(&pg, "app_a", &old).unwrap_err();
    assert!(
        refused.contains("password authentication failed"),
        "{refused}"
    );
    logs_in(&pg, "app_b", &p.value("db", "password")).unwrap();
    // The next rotation brings app_a back with a new password.
    rotate(&p, "db").unwrap();
    assert_eq!(p.value("db", "username"), "app_a");
    logs_in(&pg, "app_a", &p.value("db", "password")).unwrap();
    assert_eq!(
        engine
            .retire_due(secret, SystemTime::now())
            .unwrap()
            .as_deref(),
        Some("app_b")
    );
}

/// The admin credential is wrong, the database is down, the role is
/// missing: the rotation stops before promotion with the step named, the
/// current password keeps working, and a re-run after the fix completes.
#[test]
fn faults_stop_before_promotion_and_a_rerun_completes() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let pg = cluster();
    let p = single_user(&pg);
    let current = p.value("db", "password");

    // Wrong admin credential.
    support::overwrite(&p, "pg-admin", "password", "not-the-admin-password-7741");
    let err = rotate(&p, "db").unwrap_err().to_string();
    assert!(err.contains("stopped at step `set`"), "{err}");
    assert!(
        err.contains("as the admin `postgres` (secret `pg-admin`)"),
        "{err}"
    );
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-admin-password-7741"), "{err}");
    assert_eq!(p.value("db", "password"), current);
    logs_in(&pg, "app", &current).unwrap();
    support::overwrite(&p, "pg-admin", "password", pg.password());

    // The database is down.
    pg.stop().unwrap();
    let err = rotate(&p, "db").unwrap_err().to_string();
    assert!(err.contains("stopped at step `set`"), "{err}");
    assert!(err.contains("cannot log in to 127.0.0.1:"), "{err}");
    pg.restart().unwrap();
    logs_in(&pg, "app", &current).unwrap();

    // The role is missing.
    pg.psql("app", "ALTER ROLE app RENAME TO app_gone").unwrap();
    let err = rotate(&p, "db").unwrap_err().to_string();
    assert!(err.contains("stopped at step `set`"), "{err}");
    assert!(err.contains("role `app` does not exist"), "{err}");
    assert_eq!(p.value("db", "password"), current);
    let engine = Engine::new(&p.spec, p.opened.store());
    let state = engine.state(engine.secret("db").unwrap()).unwrap();
    assert_eq!(state.step.map(|s| s.name()), Some("create"));
    assert!(state.last_error.unwrap().contains("does not exist"));
    pg.psql("app", "ALTER ROLE app_gone RENAME TO app").unwrap();
    // A SCRAM verifier survives the rename back (an MD5 one would not).
    logs_in(&pg, "app", &current).unwrap();

    // Fixed: the re-run resumes the same pending password and completes.
    let rotated = rotate(&p, "db").unwrap();
    assert_eq!(rotated.resumed_after, Some("create"));
    let new = p.value("db", "password");
    assert_ne!(new, current);
    logs_in(&pg, "app", &new).unwrap();
    assert!(logs_in(&pg, "app", &current).is_err());
}
