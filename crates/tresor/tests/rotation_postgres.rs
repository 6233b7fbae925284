//! `tresor rotate` with the postgres rotator, the real binary and a real
//! PostgreSQL: SIGKILL right after each step, then a re-run; faults that
//! stop a rotation before promotion.

mod rotation_support;

use rotation_support::Repo;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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
            "version: 1
name: crash
secrets:
  pg-admin:
    keys:
      username: {{value: postgres}}
      password: {{value: \"{admin}\", allow_weak: \"a throwaway test cluster\"}}
  db:
    rotation:
      postgres: {{port: {port}, database: app, admin: {{secret: pg-admin}}, strategy: {strategy}{extra}}}
    keys:
      username: {{value: {first}}}
      password: {{generate: base64:32}}
  mlflow:
    keys:
      db-password: {{ref: db/password}}
",
            admin = pg.password(),
            port = pg.port()
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
        let out = Command::new("psql")
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .args(["-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p"])
            .arg(self.pg.port().to_string())
            .args(["-U", user, "-d", "app", "-c", "SELECT 1"])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
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

/// SIGKILL after each step of an alternating-users rotation: the login the
/// store holds works at every moment, and a re-run completes the rotation.
#[test]
fn sigkill_after_each_step_then_rerun_completes() {
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
