//! `tresor rotate` with the postgres rotator, the real binary and a real
//! PostgreSQL: SIGKILL right after each step, then a re-run; faults that
//! stop a rotation before promotion; a consumer reading its credential from
//! a running `tresor server` through rotations, without a failed login.

use crate::util;
use crate::util::Repo;
use crate::util::{Api, TestServer};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tresor_testpg::Cluster;

const FAULT_HOOK: &str = "TRESOR_FAULT_PAUSE_AFTER_STEP";

struct Env {
    repo: Repo,
    pg: Cluster,
}

impl std::ops::Deref for Env {
    type Target = Repo;
    fn deref(&self) -> &Repo {
        &self.repo
    }
}

impl Env {
    /// A platform whose `db` secret rotates `strategy` on a fresh cluster,
    /// applied, with the login roles created and holding the stored password.
    fn new(strategy: &str) -> Self {
        let pg = Cluster::builder()
            .setting("log_statement", "all")
            .start()
            .unwrap();
        pg.create_database("app").unwrap();
        let (first, extra) = match strategy {
            "single-user" => ("app", ""),
            _ => ("app_a", ", owner: app"),
        };
        let spec = format!(
            "version: 1\nname: crash\n{}  mlflow:\n    keys:\n      db-password: {{ref: db/password}}\n",
            db_spec(&pg, first, "", &format!("strategy: {strategy}{extra}"))
        );
        let env = Self {
            repo: Repo::new(&spec),
            pg,
        };
        env.ok(&["apply", "-f", "tresor.yaml"]);
        let roles = match strategy {
            "single-user" => "CREATE ROLE app LOGIN",
            _ => {
                "CREATE ROLE app NOLOGIN; CREATE ROLE app_a LOGIN IN ROLE app; CREATE ROLE app_b LOGIN IN ROLE app"
            }
        };
        env.pg.psql("app", roles).unwrap();
        let (user, password) = env.current();
        env.pg
            .psql("app", &format!("ALTER ROLE {user} PASSWORD '{password}'"))
            .unwrap();
        env
    }

    /// The login the store says is current.
    fn current(&self) -> (String, String) {
        (self.get("db", "username"), self.get("db", "password"))
    }

    /// A fresh login with psql, as a consumer would make it.
    fn logs_in(&self, (user, password): &(String, String)) -> Result<(), String> {
        psql_login(&self.pg, user, password)
    }

    /// Starts `tresor rotate` with the fault hook, waits until it has
    /// persisted `step`, and SIGKILLs it.
    fn kill_after(&self, step: &str, args: &[&str]) {
        let mut child = self
            .command(args)
            .env(FAULT_HOOK, step)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("tresor rotate ended before step `{step}`:\n{seen}");
            }
            seen.push_str(&line);
            if line.contains(&format!("paused after step `{step}`")) {
                break;
            }
        }
        // Child::kill sends SIGKILL.
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// The secrets of a spec: `pg`'s admin login, and `db` (login `first`, a
/// generated password) rotated by the postgres rotator with `every` and
/// `options` (`strategy: ...`).
fn db_spec(pg: &Cluster, first: &str, every: &str, options: &str) -> String {
    format!(
        "secrets:
  pg-admin:
    keys:
      username: {{value: postgres}}
      password: {{value: \"{admin}\", allow_weak: \"a throwaway test cluster\"}}
  db:
    rotation: {{{every}postgres: {{port: {port}, database: app, admin: {{secret: pg-admin}}, {options}}}}}
    keys:
      username: {{value: {first}}}
      password: {{generate: base64:32}}
",
        admin = pg.password(),
        port = pg.port()
    )
}

/// A fresh login to the `app` database with psql, as a consumer makes it.
fn psql_login(pg: &Cluster, user: &str, password: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p"])
        .arg(pg.port().to_string())
        .args(["-U", user, "-d", "app", "-c", "SELECT 1"])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// SIGKILL after each step of an alternating-users rotation: the login the
/// store holds works at every moment, and a re-run completes the rotation.
#[test]
fn sigkill_after_each_step_then_rerun_completes() {
    util::need!("TRESOR_PG_BIN");
    for step in ["create", "set", "test", "promote", "finish"] {
        let env = Env::new("alternating-users");
        let before = env.current();
        assert_eq!(before.0, "app_a");
        env.logs_in(&before).unwrap();

        env.kill_after(step, &["rotate", "-f", "tresor.yaml", "db"]);

        let at_crash = env.current();
        env.logs_in(&at_crash)
            .unwrap_or_else(|e| panic!("after SIGKILL at `{step}` the stored login fails: {e}"));
        let status = env.ok(&["status", "-f", "tresor.yaml"]);
        let line = status.lines().find(|l| l.starts_with("db ")).unwrap();
        match step {
            "promote" | "finish" => assert_eq!(at_crash.0, "app_b", "{step}"),
            _ => {
                assert_eq!(at_crash, before, "{step}");
                assert!(
                    line.contains(&format!("unfinished after `{step}`")),
                    "{step}: {status}"
                );
            }
        }

        let out = env.ok(&["rotate", "-f", "tresor.yaml", "--due"]);
        let after = env.current();
        match step {
            "finish" => assert!(out.contains("Nothing is due"), "{step}: {out}"),
            "promote" => assert!(out.contains("resumed after step `test`"), "{step}: {out}"),
            _ => assert!(
                out.contains(&format!("resumed after step `{step}`")),
                "{step}: {out}"
            ),
        }
        assert_eq!(after.0, "app_b", "{step}");
        assert_ne!(after.1, before.1, "{step}");
        env.logs_in(&after).unwrap();
        // The old login stays valid through the grace period.
        env.logs_in(&before).unwrap();
        assert_eq!(env.get("mlflow", "db-password"), after.1, "{step}");
        let status = env.ok(&["status", "-f", "tresor.yaml", "--format", "json"]);
        assert!(
            status.contains("\"in_progress_step\": null"),
            "{step}: {status}"
        );
    }
}

/// Single user: after SIGKILL between set and promotion the database holds
/// the pending password; the re-run sees it already set and promotes it.
#[test]
fn single_user_sigkill_after_set_then_rerun_promotes() {
    util::need!("TRESOR_PG_BIN");
    let env = Env::new("single-user");
    let before = env.current();
    env.kill_after("set", &["rotate", "-f", "tresor.yaml", "db"]);
    assert_eq!(env.current(), before);
    let out = env.ok(&["rotate", "-f", "tresor.yaml", "--due"]);
    assert!(
        out.contains("db: rotated (resumed after step `set`)"),
        "{out}"
    );
    let after = env.current();
    env.logs_in(&after).unwrap();
    assert!(env.logs_in(&before).is_err());
    assert!(!env.pg.log().contains(after.1.as_str()));
}

#[test]
fn a_wrong_admin_credential_stops_at_set_and_a_rerun_after_the_fix_completes() {
    util::need!("TRESOR_PG_BIN");
    let env = Env::new("single-user");
    let before = env.current();
    let admin = |password: &str| {
        let password = format!("password={password}");
        env.ok(&[
            "--store",
            ".tresor",
            "kv",
            "put",
            "secret/pg-admin",
            "username=postgres",
            &password,
        ]);
    };
    admin("not-what-the-database-says-81");
    let (code, out, err) = env.run(&["rotate", "-f", "tresor.yaml", "db"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("rotation of `db` stopped at step `set`, before promotion"),
        "{err}"
    );
    assert!(
        err.contains("as the admin `postgres` (secret `pg-admin`)"),
        "{err}"
    );
    assert!(!err.contains("not-what-the-database-says-81"), "{err}");
    assert_eq!(env.current(), before);
    env.logs_in(&before).unwrap();
    let status = env.ok(&["status", "-f", "tresor.yaml"]);
    assert!(
        status.contains("unfinished after `create`, last attempt failed"),
        "{status}"
    );

    admin(env.pg.password());
    let out = env.ok(&["rotate", "-f", "tresor.yaml", "--due"]);
    assert!(
        out.contains("db: rotated (resumed after step `create`)"),
        "{out}"
    );
    env.logs_in(&env.current()).unwrap();
    assert!(env.logs_in(&before).is_err());
}

/// An initialized, unsealed `tresor server` storing in the repository,
/// running the rotation scheduler every second on the repository's spec.
fn scheduling_server(repo: &Repo) -> (TestServer, String) {
    let dir = repo.dir();
    let config = util::config(
        &dir,
        &format!(
            "\n[rotation]\nspec = \"{}\"\ncheck_interval = \"1s\"\n",
            dir.join("tresor.yaml").display()
        ),
    );
    let server = TestServer::with_config(&config);
    let anon = Api::new(&server.addr, "");
    let (status, init) = anon.call(
        "PUT",
        "sys/init",
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    assert_eq!(status, 200, "{init}");
    let key = init["keys_base64"][0].as_str().unwrap();
    let (status, body) = anon.call("PUT", "sys/unseal", Some(&json!({"key": key})));
    assert_eq!(status, 200, "{body}");
    let root = init["root_token"].as_str().unwrap().to_owned();
    (server, root)
}

/// A consumer as Vault Agent runs one: before each fresh login it reads the
/// current credential from a running `tresor server` over HTTP, with a
/// token that may read only that secret. Meanwhile the server's scheduler
/// rotates the alternating users every 2 s (retiring each replaced login a
/// second later), and `tresor rotate` against the server's store rotates
/// in between: no login fails.
#[test]
fn a_consumer_reading_the_server_sees_zero_failed_logins_through_rotations() {
    util::need!("TRESOR_PG_BIN");
    let pg = Cluster::start().unwrap();
    pg.create_database("app").unwrap();
    pg.psql(
        "app",
        "CREATE ROLE app NOLOGIN; CREATE ROLE app_a LOGIN IN ROLE app; CREATE ROLE app_b LOGIN IN ROLE app",
    )
    .unwrap();
    let repo = Repo::new("version: 1\nsecrets: {}\n");
    let (server, root) = scheduling_server(&repo);
    let spec = db_spec(
        &pg,
        "app_a",
        "every: 2s, ",
        "strategy: alternating-users, owner: app, grace: 1s",
    );
    let store = format!("version: 1\nstore: {{address: \"{}\"}}\n", server.addr);
    std::fs::write(repo.dir().join("tresor.yaml"), store + &spec).unwrap();
    let cli = [("TRESOR_TOKEN", root.clone())];
    repo.ok_env(&cli, &["apply", "-f", "tresor.yaml"]);
    let api = server.client(&root);
    // The first login gets the generated password; the scheduler may
    // already be rotating to app_b.
    let first = api.get("secret/data/db?version=1").1["data"]["data"].clone();
    let password = first["password"].as_str().unwrap();
    pg.psql("app", &format!("ALTER ROLE app_a PASSWORD '{password}'"))
        .unwrap();
    let (status, body) = api.post(
        "sys/policies/acl/consumer",
        json!({"policy": "path \"secret/data/db\" { capabilities = [\"read\"] }"}),
    );
    assert!(status < 300, "{body}");
    let (_, created) = api.post("auth/token/create", json!({"policies": ["consumer"]}));
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();

    let version = || {
        api.get("secret/metadata/db").1["data"]["current_version"]
            .as_u64()
            .unwrap()
    };
    let stop = AtomicBool::new(false);
    let logins = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let users = Mutex::new(Vec::new());
    let by_cli = std::thread::scope(|scope| {
        scope.spawn(|| {
            let consumer = Api::new(&server.addr, &token);
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = consumer.get("secret/data/db");
                let data = &body["data"]["data"];
                let (Some(user), Some(password)) =
                    (data["username"].as_str(), data["password"].as_str())
                else {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("read answered {status}"));
                    continue;
                };
                match psql_login(&pg, user, password) {
                    Ok(()) => {
                        logins.fetch_add(1, Ordering::Relaxed);
                        let mut users = users.lock().unwrap();
                        if users.last().map(String::as_str) != Some(user) {
                            users.push(user.to_owned());
                        }
                    }
                    Err(e) => failures.lock().unwrap().push(format!("{user}: {e}")),
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let wait_for = |v: u64| {
            while version() < v {
                assert!(
                    Instant::now() < deadline,
                    "version {v} not reached:\n{}",
                    server.log.lock().unwrap()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        // Three rotations by the scheduler, then two by `tresor rotate`
        // (retried while the scheduler holds the lease), then one more.
        wait_for(4);
        let mut by_cli = 0;
        while by_cli < 2 {
            assert!(
                Instant::now() < deadline,
                "tresor rotate never got the lease"
            );
            let (code, out, err) = repo.run_env(&cli, &["rotate", "-f", "tresor.yaml", "db"]);
            if code == 0 {
                assert!(out.contains("db: rotated"), "{out}");
                by_cli += 1;
            } else {
                assert!(err.contains("is being rotated by"), "{out}\n{err}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let now = version();
        wait_for(now + 1);
        let seen = logins.load(Ordering::Relaxed);
        while logins.load(Ordering::Relaxed) < seen + 10 {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        by_cli
    });
    let rotations = version() - 1;
    let by_scheduler = server
        .log
        .lock()
        .unwrap()
        .matches("rotation: rotated")
        .count();
    let retired = server
        .log
        .lock()
        .unwrap()
        .matches("rotation: replaced login retired")
        .count();
    let failures = failures.into_inner().unwrap();
    let logins = logins.into_inner();
    let users = users.into_inner().unwrap();
    eprintln!(
        "{logins} fresh logins with the credential read from the server across {rotations} rotations ({by_scheduler} by the scheduler, {by_cli} by tresor rotate; {retired} replaced logins retired), {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "failed logins: {failures:?}");
    assert!(rotations >= 6, "{rotations}");
    assert_eq!(by_scheduler as u64 + by_cli, rotations);
    assert!(logins >= 50, "{logins}");
    // The consumer followed the alternation (app_a, app_b, app_a...).
    assert!(users.len() >= 5, "{users:?}");
    assert!(retired >= 1, "no replaced login was retired");
}

/// The shipped MLOps example and its README's order of operations against
/// a real PostgreSQL: the roles made by the README's SQL, one rotation,
/// and MLflow's login (by reference) works in the database.
#[test]
fn the_mlops_example_rotates_mlflows_login_in_postgres() {
    util::need!("TRESOR_PG_BIN");
    const EXAMPLE: &str = include_str!("../../../../examples/mlops-platform/tresor.yaml");
    const README: &str = include_str!("../../../../examples/mlops-platform/README.md");
    let pg = Cluster::start().unwrap();
    pg.create_database("mlflow").unwrap();
    let spec = EXAMPLE.replace(
        "host: postgres.mlops.svc",
        &format!("host: 127.0.0.1\n        port: {}", pg.port()),
    );
    assert_ne!(spec, EXAMPLE);
    let repo = Repo::new(&spec);
    repo.ok(&["apply", "-f", "tresor.yaml"]);
    // The image made its superuser from `postgres-admin`; this cluster has
    // its own, so the store takes that one (as `tresor import` would).
    let admin = format!("password={}", pg.password());
    let store = ["--store", ".tresor"];
    repo.ok(&[
        &store[..],
        &["kv", "patch", "secret/postgres-admin", &admin],
    ]
    .concat());
    let sql = README
        .split("<<'SQL'\n")
        .nth(1)
        .and_then(|rest| rest.split("\n   SQL\n").next())
        .expect("the README's SQL");
    pg.psql("mlflow", sql).unwrap();

    let out = repo.ok(&["rotate", "-f", "tresor.yaml", "postgres-secrets"]);
    assert!(
        out.contains("postgres-secrets: rotated; version 2 is current"),
        "{out}"
    );
    assert!(
        out.contains("mlflow-secrets: follows `postgres-secrets`"),
        "{out}"
    );
    let user = repo.get("mlflow-secrets", "db-username");
    let password = repo.get("mlflow-secrets", "db-password");
    assert_eq!(user, "mlflow_b");
    let login = Command::new("psql")
        .env("PGPASSWORD", &password)
        .args(["-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p"])
        .arg(pg.port().to_string())
        .args([
            "-U",
            &user,
            "-d",
            "mlflow",
            "-c",
            "CREATE TABLE runs (id int); SELECT current_user",
        ])
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    // MLflow works as the owner: what it creates belongs to `mlflow`.
    assert_eq!(String::from_utf8_lossy(&login.stdout).trim(), "mlflow");
    let row = repo.status_row(&[], "postgres-secrets");
    assert_eq!(row["rotator"], "postgres alternating-users");
    assert!(row["refused"].is_null(), "{row}");
}
