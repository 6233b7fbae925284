//! The PostgreSQL backend against a real, throwaway cluster.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tresor_storage::{Backend, Transaction};
use tresor_storage_postgres::{Options, Postgres, SCHEMA_VERSION};
use tresor_testpg::Cluster;
use tresor_testpg::certs::Authority;

fn cluster() -> Cluster {
    Cluster::start().expect("start a PostgreSQL cluster (run scripts/setup/postgres.sh)")
}

fn fresh_database(cluster: &Cluster, name: &str) -> Postgres {
    cluster.create_database(name).unwrap();
    Postgres::connect(&cluster.url(name), &Options::default()).unwrap()
}

#[test]
fn conformance() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let cluster = cluster();
    let made = AtomicUsize::new(0);
    tresor_storage::conformance::run_all(&|| {
        let n = made.fetch_add(1, Ordering::Relaxed);
        Box::new(fresh_database(&cluster, &format!("conformance{n}")))
    });
}

/// Write skew through absent keys: each transaction requires the other's key
/// to be absent and creates its own. At most one of each pair may apply, even
/// from two pools (two servers) racing.
#[test]
fn conditions_on_absent_keys_admit_no_phantoms() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let cluster = cluster();
    let first: Arc<dyn Backend> = Arc::new(fresh_database(&cluster, "skew"));
    let second: Arc<dyn Backend> =
        Arc::new(Postgres::connect(&cluster.url("skew"), &Options::default()).unwrap());
    for round in 0..200 {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        let racers: Vec<_> = [(&first, &a, &b), (&second, &b, &a)]
            .into_iter()
            .map(|(backend, mine, theirs)| {
                let backend = Arc::clone(backend);
                let txn = Transaction::new().expect(theirs, None).put(mine, b"x");
                std::thread::spawn(move || backend.commit(txn).unwrap().applied())
            })
            .collect();
        let applied = racers
            .into_iter()
            .map(|r| r.join().unwrap())
            .filter(|&ok| ok)
            .count();
        assert_eq!(applied, 1, "round {round}");
    }
}

#[test]
fn the_schema_is_created_once_and_a_newer_one_is_refused() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let cluster = cluster();
    cluster.create_database("schema").unwrap();
    let url = cluster.url("schema");
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Postgres::connect(&url, &Options::default()).map(drop))
        })
        .collect();
    for racer in racers {
        racer.join().unwrap().unwrap();
    }
    assert_eq!(
        cluster
            .psql("schema", "SELECT version FROM tresor_schema")
            .unwrap()
            .trim(),
        SCHEMA_VERSION.to_string()
    );
    cluster
        .psql("schema", "UPDATE tresor_schema SET version = version + 1")
        .unwrap();
    let err = Postgres::connect(&url, &Options::default()).unwrap_err();
    assert!(err.to_string().contains("newer than this tresor"), "{err}");
}

/// A database that is down, or a wrong password: a clear error, quickly,
/// that names the database and never the password.
#[test]
fn unreachable_database_fails_fast_without_leaking_the_password() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let cluster = cluster();
    let backend = fresh_database(&cluster, "down");
    backend.put("k", b"v").unwrap();
    cluster.stop().unwrap();
    let started = Instant::now();
    let err = backend.get("k").unwrap_err().to_string();
    assert!(started.elapsed() < Options::default().timeout * 2);
    assert!(
        err.contains(&format!("127.0.0.1:{}/down", cluster.port())),
        "{err}"
    );
    assert!(!err.contains(cluster.password()), "{err}");
    assert!(err.contains("check that the database is running"), "{err}");
    cluster.restart().unwrap();
    assert_eq!(backend.get("k").unwrap().as_deref(), Some(&b"v"[..]));

    let wrong = cluster
        .url("down")
        .replace(cluster.password(), "not-the-password-123");
    let err = Postgres::connect(&wrong, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password-123"), "{err}");
    assert!(!format!("{backend:?}").contains(cluster.password()));
}

/// `open` does not need the database: calls fail as when it is down, and
/// the first one after it comes up creates the schema.
#[test]
fn open_starts_without_the_database_and_creates_the_schema_once_it_answers() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let cluster = cluster();
    cluster.create_database("later").unwrap();
    cluster.stop().unwrap();
    let backend = Postgres::open(&cluster.url("later"), &Options::default()).unwrap();
    let err = backend.get("k").unwrap_err().to_string();
    assert!(err.contains("check that the database is running"), "{err}");
    cluster.restart().unwrap();
    assert_eq!(backend.get("k").unwrap(), None);
    backend.put("k", b"v").unwrap();
    assert_eq!(
        cluster
            .psql("later", "SELECT version FROM tresor_schema")
            .unwrap(),
        SCHEMA_VERSION.to_string()
    );
}

/// `sslmode=require` against a server without TLS is refused; `prefer`
/// falls back to plain TCP.
#[test]
fn sslmode_require_refuses_a_plain_server() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let cluster = cluster();
    cluster.create_database("tls").unwrap();
    let options = Options {
        connect_timeout: Duration::from_secs(3),
        ..Options::default()
    };
    let url = cluster.url("tls");
    Postgres::connect(&format!("{url}?sslmode=prefer"), &options).unwrap();
    let err = Postgres::connect(&format!("{url}?sslmode=require"), &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("PostgreSQL at postgres@127.0.0.1"), "{err}");
}

/// A cluster serving TLS (hostssl logins only) with a certificate from a
/// throwaway CA, and a `verify-full` URL trusting `ca` for database `db`.
fn tls_cluster(ca: &Authority, names: &[&str]) -> Cluster {
    let server = ca.issue(names).unwrap();
    Cluster::builder()
        .tls(&server)
        .start()
        .expect("start PostgreSQL with TLS (run scripts/setup/postgres.sh)")
}

fn verify_full(url: &str, ca: &Path) -> String {
    format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display())
}

/// The conformance suite over `sslmode=verify-full` against a server whose
/// certificate names 127.0.0.1 and localhost; every session really is TLS.
#[test]
fn conformance_over_verified_tls() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let ca = Authority::new("tresor test CA").unwrap();
    let cluster = tls_cluster(&ca, &["localhost", "127.0.0.1"]);
    let made = AtomicUsize::new(0);
    tresor_storage::conformance::run_all(&|| {
        let name = format!("tls{}", made.fetch_add(1, Ordering::Relaxed));
        cluster.create_database(&name).unwrap();
        let url = verify_full(&cluster.url(&name), &ca.cert());
        Box::new(Postgres::connect(&url, &Options::default()).unwrap())
    });
    let by_name = verify_full(
        &cluster.url("tls0").replace("127.0.0.1", "localhost"),
        &ca.cert(),
    );
    let backend = Postgres::connect(&by_name, &Options::default()).unwrap();
    backend.put("over-tls", b"v").unwrap();
    assert_eq!(backend.get("over-tls").unwrap().as_deref(), Some(&b"v"[..]));
    let plain = cluster
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE datname LIKE 'tls%' AND NOT ssl",
        )
        .unwrap();
    assert_eq!(plain, "0", "every tresor session is encrypted");
}

/// `verify-full` refuses a server whose certificate another CA signed, or
/// which does not name the host; `require` encrypts without checking, and a
/// plain connection is refused by the server.
#[test]
fn verify_full_refuses_an_unknown_ca_and_a_certificate_for_another_host() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let ca = Authority::new("tresor test CA").unwrap();
    let cluster = tls_cluster(&ca, &["localhost", "127.0.0.1"]);
    cluster.create_database("tls").unwrap();
    let url = cluster.url("tls");
    let options = Options {
        connect_timeout: Duration::from_secs(3),
        ..Options::default()
    };

    let stranger = Authority::new("another CA").unwrap();
    let err = Postgres::connect(&verify_full(&url, &stranger.cert()), &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("PostgreSQL at postgres@127.0.0.1"), "{err}");
    assert!(err.contains("not signed by a CA in sslrootcert"), "{err}");
    assert!(!err.contains(cluster.password()), "{err}");

    let elsewhere = tls_cluster(&ca, &["db.example"]);
    elsewhere.create_database("tls").unwrap();
    let err = Postgres::connect(&verify_full(&elsewhere.url("tls"), &ca.cert()), &options)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not name 127.0.0.1 (it names db.example)"),
        "{err}"
    );

    let required = Postgres::connect(&format!("{url}?sslmode=require"), &options).unwrap();
    required.put("k", b"v").unwrap();
    assert_eq!(required.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    let err = Postgres::connect(&format!("{url}?sslmode=disable"), &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no encryption"), "{err}");
}

/// A million keys: listing a folder is an index range scan, never a scan of
/// the table.
#[test]
fn prefix_listing_uses_the_primary_key_index_at_a_million_keys() {
    if !tresor_testpg::available_or_skip(module_path!()) {
        return;
    }
    let cluster = cluster();
    let backend = fresh_database(&cluster, "big");
    cluster
        .psql(
            "big",
            "INSERT INTO tresor_kv SELECT format('logical/m%s/k%s', i % 10, lpad(i::text, 7, '0')), '\\x00' \
             FROM generate_series(1, 1000000) i; ANALYZE tresor_kv",
        )
        .unwrap();
    backend.put("logical/m3/dir/a", b"v").unwrap();
    let page = backend
        .list("logical/m3/", Some("k0000500"), Some(3))
        .unwrap();
    assert_eq!(page, ["k0000503", "k0000513", "k0000523"]);
    assert_eq!(
        backend.list("logical/", None, None).unwrap(),
        (0..10).map(|i| format!("m{i}/")).collect::<Vec<_>>()
    );
    let plan = cluster
        .psql(
            "big",
            "EXPLAIN SELECT key FROM tresor_kv WHERE key >= 'logical/m3/' ORDER BY key LIMIT 1",
        )
        .unwrap();
    assert!(
        plan.contains("Index Only Scan using tresor_kv_pkey"),
        "{plan}"
    );
    assert!(!plan.contains("Seq Scan"), "{plan}");
}
