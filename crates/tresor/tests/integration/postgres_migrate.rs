//! `tresor operator migrate`: an embedded store copied into PostgreSQL and
//! back, byte for byte, verified by count and checksum; the copy serves,
//! over verified TLS too; an interrupted copy resumes. A server on a store
//! migrated into PostgreSQL starts while the database is down and serves
//! once it is up.

use crate::util;
use crate::util::{Api, TestServer};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use tresor_storage::{Backend, Embedded, Transaction};
use tresor_testpg::Cluster;
use tresor_testpg::certs::Authority;

fn tresor(store: &Path, key: &Path, url: &str, args: &[&str]) -> Output {
    util::offline(store, key)
        .args(args)
        .env("TRESOR_POSTGRES_URL", url)
        .output()
        .unwrap()
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn migrate(store: &Path, key: &Path, url: &str, from: &str, to: &str) -> Output {
    tresor(
        store,
        key,
        url,
        &[
            "operator",
            "migrate",
            "--from",
            from,
            "--to",
            to,
            "-format=json",
        ],
    )
}

fn json(output: Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap()
}

/// An embedded store sealed by a key file, with `secret/app0..19`, and a
/// root token for servers on its copies.
struct Store {
    dir: PathBuf,
    key: PathBuf,
    root: String,
}

fn key_file_store(tmp: &Path) -> Store {
    let (dir, key) = (tmp.join("store"), tmp.join("unseal.key"));
    ok(tresor(&dir, &key, "", &["operator", "init"]));
    for n in 0..20 {
        let (path, value) = (format!("secret/app{n}"), format!("password=pw-{n}"));
        ok(tresor(&dir, &key, "", &["kv", "put", &path, &value]));
    }
    let root = json(tresor(
        &dir,
        &key,
        "",
        &["operator", "generate-root", "-format=json"],
    ));
    Store {
        dir,
        key,
        root: root["root_token"].as_str().unwrap().to_string(),
    }
}

/// A plain-HTTP loopback server's configuration for the PostgreSQL database
/// at `url`, unsealed by `key`.
fn server_config(tmp: &Path, name: &str, url: &str, key: &Path) -> PathBuf {
    let url_file = tmp.join(format!("{name}.url"));
    std::fs::write(&url_file, url).unwrap();
    let config = tmp.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n\n[storage]\nkind = \"postgres\"\n\
             url_file = \"{}\"\nconnect_timeout = \"2s\"\ntimeout = \"3s\"\n\n[seal]\nkey_file = \"{}\"\n",
            url_file.display(),
            key.display()
        ),
    )
    .unwrap();
    config
}

fn count(cluster: &Cluster, condition: &str) -> u64 {
    cluster
        .psql(
            "tresor",
            &format!("SELECT count(*) FROM tresor_kv WHERE {condition}"),
        )
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn embedded_to_postgres_and_back_is_byte_for_byte() {
    util::need!("TRESOR_PG_BIN");
    let cluster = Cluster::start().expect("start PostgreSQL (scripts/setup/postgres.sh)");
    cluster.create_database("tresor").unwrap();
    let url = cluster.url("tresor");
    let tmp = tempfile::tempdir().unwrap();
    let Store {
        dir: store,
        key,
        root,
    } = key_file_store(tmp.path());

    let there = json(migrate(&store, &key, &url, "embedded", "postgres"));
    assert_eq!(there["from"], "embedded");
    assert_eq!(there["to"], "postgres");
    let keys = there["keys"].as_u64().unwrap();
    assert_eq!(
        cluster
            .psql("tresor", "SELECT count(*) FROM tresor_kv")
            .unwrap()
            .trim(),
        keys.to_string()
    );

    let again = tresor(
        &store,
        &key,
        &url,
        &[
            "operator", "migrate", "--from", "embedded", "--to", "postgres",
        ],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a complete store"));
    assert_eq!(
        cluster
            .psql("tresor", "SELECT count(*) FROM tresor_kv")
            .unwrap()
            .trim(),
        keys.to_string(),
        "a refused migration writes nothing"
    );

    let back_store = tmp.path().join("back");
    let back = json(migrate(&back_store, &key, &url, "postgres", "embedded"));
    assert_eq!(
        (&back["keys"], &back["sha256"]),
        (&there["keys"], &there["sha256"])
    );
    let read = ok(tresor(
        &back_store,
        &key,
        &url,
        &["kv", "get", "-field=password", "secret/app7"],
    ));
    assert_eq!(read.trim(), "pw-7");

    let server = TestServer::with_config(&server_config(tmp.path(), "server", &url, &key));
    let health = Api::new(&server.addr, "").get("sys/health");
    assert_eq!((health.0, &health.1["sealed"]), (200, &json!(false)));
    let api = server.client(&root);
    let (status, body) = api.get("secret/data/app13");
    assert_eq!(
        (status, &body["data"]["data"]),
        (200, &json!({"password": "pw-13"}))
    );
}

/// The store migrated over `sslmode=verify-full` into a PostgreSQL that
/// serves TLS only, and a `tresor server` on it: unsealed by its key file,
/// reading and writing, every session encrypted. A server trusting another
/// CA keeps running and says in sys/health why it cannot reach the store.
#[test]
fn a_server_on_verified_tls_serves_and_names_an_unknown_ca() {
    util::need!("TRESOR_PG_BIN");
    let ca = Authority::new("tresor test CA").unwrap();
    let cluster = Cluster::builder()
        .tls(&ca.issue(&["localhost", "127.0.0.1"]).unwrap())
        .start()
        .expect("start PostgreSQL with TLS (scripts/setup/postgres.sh)");
    cluster.create_database("tresor").unwrap();
    let verify_full = |ca: &Authority| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            cluster.url("tresor"),
            ca.cert().display()
        )
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = key_file_store(tmp.path());
    let url = verify_full(&ca);
    json(migrate(
        &store.dir, &store.key, &url, "embedded", "postgres",
    ));

    let server = TestServer::with_config(&server_config(tmp.path(), "tls", &url, &store.key));
    assert_eq!(Api::new(&server.addr, "").get("sys/health").0, 200);
    let api = server.client(&store.root);
    let (status, body) = api.get("secret/data/app3");
    assert_eq!(
        (status, &body["data"]["data"]),
        (200, &json!({"password": "pw-3"}))
    );
    let (status, body) = api.post("secret/data/over-tls", json!({"data": {"v": "1"}}));
    assert_eq!(status, 200, "{body}");
    let sessions = |encrypted: bool| {
        cluster
            .psql(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
                     WHERE datname = 'tresor' AND ssl = {encrypted}"
                ),
            )
            .unwrap()
    };
    assert_ne!(sessions(true), "0");
    assert_eq!(sessions(false), "0");

    let stranger = Authority::new("another CA").unwrap();
    let wrong = TestServer::with_config(&server_config(
        tmp.path(),
        "wrong-ca",
        &verify_full(&stranger),
        &store.key,
    ));
    let (status, body) = Api::new(&wrong.addr, "").get("sys/health");
    assert_eq!(status, 503, "{body}");
    let message = body["errors"][0].as_str().unwrap();
    assert!(
        message.contains("not signed by a CA in sslrootcert"),
        "{message}"
    );
    assert!(!message.contains(cluster.password()), "{message}");
}

/// PostgreSQL is down when the server starts: it listens anyway, answers
/// 503 naming the storage (sys/health too), and once PostgreSQL is up it
/// unseals itself with its key file and serves, without a restart.
#[test]
fn a_server_started_while_the_database_is_down_serves_once_it_is_up() {
    util::need!("TRESOR_PG_BIN");
    let cluster = Cluster::start().expect("start PostgreSQL (scripts/setup/postgres.sh)");
    cluster.create_database("tresor").unwrap();
    let url = cluster.url("tresor");
    let tmp = tempfile::tempdir().unwrap();
    let store = key_file_store(tmp.path());
    json(migrate(
        &store.dir, &store.key, &url, "embedded", "postgres",
    ));
    cluster.stop().unwrap();

    let mut server = TestServer::with_config(&server_config(tmp.path(), "early", &url, &store.key));
    let (status, health) = Api::new(&server.addr, "").get("sys/health");
    assert_eq!(status, 503, "{health}");
    let message = health["errors"][0].as_str().unwrap();
    assert!(
        message.starts_with("storage unavailable: ") && message.contains("PostgreSQL at "),
        "{message}"
    );
    assert!(
        message.contains("check that the database is running"),
        "{message}"
    );
    let api = server.client(&store.root);
    let (status, body) = api.get("secret/data/app3");
    assert_eq!(status, 503, "{body}");
    let message = body["errors"][0].as_str().unwrap();
    assert!(message.starts_with("storage unavailable: "), "{message}");
    assert!(
        message.contains("check that the database is running"),
        "{message}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited"
    );

    cluster.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Api::new(&server.addr, "").get("sys/health").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the server did not unseal itself"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = api.get("secret/data/app3");
    assert_eq!(
        (status, &body["data"]["data"]),
        (200, &json!({"password": "pw-3"}))
    );
    assert!(server.child.try_wait().unwrap().is_none());
    let log = server.log.lock().unwrap();
    assert!(log.contains("the store answers"), "{log}");
    assert!(!log.contains(cluster.password()), "{log}");
}

/// Keys the copy must carry unchanged, written straight into the embedded
/// store in one transaction (thousands of `kv put`s would take minutes).
fn add_bulk_keys(store: &Path, keys: usize) {
    let backend = Embedded::open(store).unwrap();
    let txn = (0..keys).fold(Transaction::new(), |txn, i| {
        txn.put(&format!("bulk/k{i:05}"), format!("{i:0>200}").as_bytes())
    });
    assert!(backend.commit(txn).unwrap().applied());
}

/// Starts `tresor operator migrate` into PostgreSQL with a trigger that
/// holds every insert once the destination has `keys` keys, and returns
/// the running process once it is held there: mid-copy, every time.
fn migrate_held_at(cluster: &Cluster, store: &Store, keys: u64) -> std::process::Child {
    cluster
        .psql(
            "tresor",
            &format!(
                "CREATE OR REPLACE FUNCTION hold_copy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                   IF (SELECT count(*) FROM tresor_kv) >= {keys} THEN PERFORM pg_sleep(60); END IF; \
                   RETURN NULL; END $$; \
                 CREATE TRIGGER hold_copy BEFORE INSERT ON tresor_kv \
                   FOR EACH STATEMENT EXECUTE FUNCTION hold_copy()"
            ),
        )
        .unwrap();
    let mut running = util::tresor()
        .arg("--store")
        .arg(&store.dir)
        .args([
            "operator", "migrate", "--from", "embedded", "--to", "postgres",
        ])
        .env("TRESOR_POSTGRES_URL", cluster.url("tresor"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(cluster, "true") < keys {
        assert!(
            Instant::now() < deadline,
            "the copy did not reach {keys} keys"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(running.try_wait().unwrap().is_none(), "held, still running");
    running
}

fn release(cluster: &Cluster) {
    cluster
        .psql("tresor", "DROP TRIGGER hold_copy ON tresor_kv")
        .unwrap();
}

/// A migrate of a few thousand keys SIGKILLed mid-copy, then one whose
/// connection is cut mid-copy (each held by a trigger, so the interruption
/// lands mid-way every time): the same command finishes the copy, keeping
/// the keys already there, and verifies it; a copied key changed in between
/// is refused, writing nothing; a complete copy is refused. The way back
/// resumes into an interrupted embedded copy.
#[test]
fn an_interrupted_migration_resumes_and_a_changed_copy_is_refused() {
    util::need!("TRESOR_PG_BIN");
    let cluster = Cluster::builder()
        // PostgreSQL ends the killed client's session (and its locks) at once.
        .setting("client_connection_check_interval", "100ms")
        .start()
        .expect("start PostgreSQL (scripts/setup/postgres.sh)");
    cluster.create_database("tresor").unwrap();
    let url = cluster.url("tresor");
    let tmp = tempfile::tempdir().unwrap();
    let store = key_file_store(tmp.path());
    add_bulk_keys(&store.dir, 4000);
    drop(tresor_storage_postgres::Postgres::connect(&url, &Default::default()).unwrap());

    let mut killed = migrate_held_at(&cluster, &store, 2000);
    killed.kill().unwrap();
    killed.wait().unwrap();
    release(&cluster);
    assert_eq!(count(&cluster, "true"), 2000);
    assert_eq!(
        count(&cluster, "key = 'core/seal-config'"),
        0,
        "no seal record yet"
    );

    let cut = migrate_held_at(&cluster, &store, 3000);
    cluster
        .psql(
            "tresor",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = 'tresor' AND pid <> pg_backend_pid()",
        )
        .unwrap();
    let cut = cut.wait_with_output().unwrap();
    release(&cluster);
    assert!(!cut.status.success());
    let stderr = String::from_utf8_lossy(&cut.stderr);
    assert!(
        stderr.contains("run the same command to finish it"),
        "{stderr}"
    );
    assert_eq!(count(&cluster, "true"), 3000);

    let changed = cluster
        .psql(
            "tresor",
            "UPDATE tresor_kv SET value = value || '\\x00'::bytea \
             WHERE key = (SELECT max(key) FROM tresor_kv) RETURNING key",
        )
        .unwrap();
    let refused = migrate(&store.dir, &store.key, &url, "embedded", "postgres");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not an interrupted copy"), "{stderr}");
    assert!(stderr.contains(&changed), "{stderr}");
    assert_eq!(count(&cluster, "true"), 3000, "a refusal writes nothing");
    cluster
        .psql(
            "tresor",
            &format!(
                "UPDATE tresor_kv SET value = substring(value FROM 1 FOR length(value) - 1) \
                 WHERE key = '{changed}'"
            ),
        )
        .unwrap();

    let done = json(migrate(
        &store.dir, &store.key, &url, "embedded", "postgres",
    ));
    assert_eq!(done["resumed"], 3000);
    let keys = done["keys"].as_u64().unwrap();
    assert!(keys > 4000, "{done}");
    assert_eq!(count(&cluster, "true"), keys);
    let again = migrate(&store.dir, &store.key, &url, "embedded", "postgres");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a complete store"));

    // Back into an embedded store that an interrupted copy left half full.
    let back = tmp.path().join("back");
    let partial = Embedded::create(&back).unwrap();
    let source = tresor_storage_postgres::Postgres::connect(&url, &Default::default()).unwrap();
    let txn = (0..1000).fold(Transaction::new(), |txn, i| {
        let key = format!("bulk/k{i:05}");
        txn.put(&key, &source.get(&key).unwrap().unwrap())
    });
    assert!(partial.commit(txn).unwrap().applied());
    drop(partial);
    let back_done = json(migrate(&back, &store.key, &url, "postgres", "embedded"));
    assert_eq!(back_done["resumed"], 1000);
    assert_eq!(
        (&back_done["keys"], &back_done["sha256"]),
        (&done["keys"], &done["sha256"])
    );
    let read = ok(tresor(
        &back,
        &store.key,
        &url,
        &["kv", "get", "-field=password", "secret/app7"],
    ));
    assert_eq!(read.trim(), "pw-7");
    let refused = migrate(&back, &store.key, &url, "postgres", "embedded");
    assert!(!refused.status.success());
    let read = ok(tresor(
        &back,
        &store.key,
        &url,
        &["kv", "get", "-field=password", "secret/app7"],
    ));
    assert_eq!(
        read.trim(),
        "pw-7",
        "a refused migrate leaves a complete store alone"
    );
}
