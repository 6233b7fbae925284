//! The `tresor` binary against a real `tresor server`: the store commands
//! of cli.rs through the HTTP API (the KV lifecycle is in kv_lifecycle.rs),
//! and the server-only commands (status, token, policy, login).

use crate::util;
use crate::util::{Api, TestServer};
use assert_cmd::Command;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const SECRET: &str = "Rv7-remote-secret-value-q2W";

struct Remote {
    server: TestServer,
    home: tempfile::TempDir,
    /// Every stderr the commands wrote, checked for leaks at the end.
    errors: std::cell::RefCell<String>,
}

impl Remote {
    fn dev() -> Self {
        Self::on(TestServer::dev())
    }

    fn on(server: TestServer) -> Self {
        Self {
            server,
            home: tempfile::tempdir().unwrap(),
            errors: Default::default(),
        }
    }

    /// The binary, pointed at the server, without a token.
    fn anon(&self) -> Command {
        let mut cmd = util::tresor_assert();
        cmd.current_dir(self.home.path())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("TRESOR_ADDR", &self.server.addr);
        cmd
    }

    /// The binary with the root token.
    fn cmd(&self) -> Command {
        let mut cmd = self.anon();
        cmd.env("TRESOR_TOKEN", &self.server.root_token);
        cmd
    }

    fn run(&self, mut cmd: Command, args: &[&str]) -> (Option<i32>, String, String) {
        let out = cmd.args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        self.errors.borrow_mut().push_str(&stderr);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(self.cmd(), args);
        assert_eq!(code, Some(0), "{args:?} failed: {err}");
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("-format=json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Runs a command that must fail with `code`; returns its stderr.
    fn fails(&self, cmd: Command, args: &[&str], code: i32) -> String {
        let (got, _, err) = self.run(cmd, args);
        assert_eq!(got, Some(code), "{args:?}: {err}");
        assert!(!err.is_empty(), "{args:?} gave no error message");
        err
    }

    /// No error output ever held the root token or a secret value.
    fn assert_no_leaks(&self, more: &[&str]) {
        let errors = self.errors.borrow();
        let needles = [self.server.root_token.as_str(), SECRET];
        for needle in needles.iter().chain(more).filter(|n| !n.is_empty()) {
            assert!(!errors.contains(needle), "{needle} leaked into stderr");
        }
    }
}

#[test]
fn secrets_engines_and_key_rotation_against_a_server() {
    let env = Remote::dev();
    env.ok(&[
        "secrets",
        "enable",
        "-path=mlops-platform",
        "-description=team",
        "kv-v2",
    ]);
    env.ok(&["kv", "put", "mlops-platform/postgres", "password=pw"]);
    let list = env.json(&["secrets", "list"]);
    assert_eq!(list["mlops-platform/"]["options"]["version"], "2");
    assert!(
        env.ok(&["secrets", "list"])
            .contains("mlops-platform/    kv")
    );
    env.fails(
        env.cmd(),
        &["secrets", "enable", "-path=mlops-platform", "kv"],
        2,
    );
    env.ok(&["secrets", "enable", "-version=1", "-path=legacy", "kv"]);
    assert_eq!(
        env.json(&["secrets", "list"])["legacy/"]["options"]["version"],
        "1"
    );
    env.fails(env.cmd(), &["secrets", "enable", "-version=3", "kv"], 2);
    env.ok(&["secrets", "disable", "mlops-platform"]);
    env.fails(env.cmd(), &["kv", "get", "mlops-platform/postgres"], 2);

    let before = env.json(&["operator", "key-status"])["term"]
        .as_u64()
        .unwrap();
    assert!(
        env.ok(&["operator", "rotate"])
            .contains(&format!("Key Term        {}", before + 1))
    );
    assert_eq!(env.json(&["operator", "key-status"])["term"], before + 1);
    env.assert_no_leaks(&[]);
}

#[test]
fn policies_and_a_token_without_permission() {
    let env = Remote::dev();
    env.ok(&[
        "kv",
        "put",
        "secret/shared/db",
        &format!("password={SECRET}"),
    ]);
    let policy = "path \"secret/data/shared/*\" { capabilities = [\"read\"] }\n";
    env.cmd()
        .args(["policy", "write", "reader", "-"])
        .write_stdin(policy)
        .assert()
        .success();
    assert_eq!(
        env.ok(&["policy", "read", "reader"]).trim_end(),
        policy.trim_end()
    );
    assert!(env.ok(&["policy", "list"]).lines().any(|l| l == "reader"));
    let bad = env.home.path().join("bad.hcl");
    std::fs::write(&bad, "path \"x\" { capabilities = [\n").unwrap();
    env.fails(
        env.cmd(),
        &["policy", "write", "broken", bad.to_str().unwrap()],
        2,
    );
    env.fails(env.cmd(), &["policy", "read", "nope"], 2);

    let created = env.json(&["token", "create", "-policy=reader", "-ttl=1h"]);
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut reader = env.anon();
    reader.env("TRESOR_TOKEN", &token);
    let (code, out, _) = env.run(
        reader,
        &["kv", "get", "-field=password", "secret/shared/db"],
    );
    assert_eq!((code, out.as_str()), (Some(0), SECRET));
    let mut reader = env.anon();
    reader.env("TRESOR_TOKEN", &token);
    let err = env.fails(
        reader,
        &[
            "kv",
            "put",
            "secret/shared/db",
            &format!("password={SECRET}"),
        ],
        2,
    );
    assert!(err.contains("permission denied"), "{err}");
    let mut reader = env.anon();
    reader.env("VAULT_TOKEN", &token);
    env.fails(reader, &["kv", "get", "secret/other"], 2);

    env.ok(&["policy", "delete", "reader"]);
    assert!(!env.ok(&["policy", "list"]).lines().any(|l| l == "reader"));
    env.assert_no_leaks(&[&token]);
}

#[test]
fn token_create_lookup_renew_revoke() {
    let env = Remote::dev();
    let table = env.ok(&[
        "token",
        "create",
        "-policy=default",
        "-ttl=1h",
        "-display-name=ci",
        "-metadata=team=ml",
        "-use-limit=20",
    ]);
    assert!(
        table.contains("token_accessor") && row(&table, "token_duration").starts_with("1h"),
        "{table}"
    );
    let created = env.json(&[
        "token",
        "create",
        "-policy=default",
        "-ttl=1h",
        "-orphan",
        "-metadata=team=ml",
    ]);
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let accessor = created["auth"]["accessor"].as_str().unwrap().to_string();
    assert_eq!(created["auth"]["orphan"], true);

    let by_token = env.json(&["token", "lookup", &token]);
    assert_eq!(by_token["data"]["accessor"], accessor.as_str());
    assert_eq!(by_token["data"]["meta"]["team"], "ml");
    let by_accessor = env.json(&["token", "lookup", "-accessor", &accessor]);
    assert_eq!(
        by_accessor["data"]["display_name"],
        by_token["data"]["display_name"]
    );
    assert_eq!(
        env.json(&["token", "lookup"])["data"]["policies"],
        json!(["root"])
    );
    assert!(env.ok(&["token", "lookup", &token]).contains("policies"));

    let renewed = env.json(&["token", "renew", "-increment=30m", &token]);
    assert_eq!(renewed["auth"]["lease_duration"], 1800);
    let mut own = env.anon();
    own.env("TRESOR_TOKEN", &token);
    let (code, out, err) = env.run(own, &["token", "renew"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(row(&out, "token_renewable") == "true", "{out}");

    env.ok(&["token", "revoke", "-accessor", &accessor]);
    env.fails(env.cmd(), &["token", "lookup", &token], 2);
    env.fails(env.cmd(), &["token", "revoke"], 2);

    let other = env.json(&["token", "create", "-policy=default"])["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut own = env.anon();
    own.env("TRESOR_TOKEN", &other);
    let (code, _, err) = env.run(own, &["token", "revoke", "-self"]);
    assert_eq!(code, Some(0), "{err}");
    let mut own = env.anon();
    own.env("TRESOR_TOKEN", &other);
    env.fails(own, &["token", "lookup"], 2);
    env.assert_no_leaks(&[&token, &other]);
}

#[test]
fn login_keeps_the_token_for_later_commands() {
    let env = Remote::dev();
    env.fails(env.anon(), &["kv", "get", "secret/x"], 2);
    let err = env.fails(env.anon(), &["login", "not-a-real-token-7Yq"], 2);
    assert!(err.contains("permission denied"), "{err}");
    let file = env.home.path().join("config/tresor/token");
    assert!(!file.exists(), "a refused token was stored");
    env.assert_no_leaks(&["not-a-real-token-7Yq"]);

    let (code, out, err) = env.run(
        {
            let mut c = env.anon();
            c.write_stdin(format!("{}\n", env.server.root_token));
            c
        },
        &["login", "-"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Success! You are now authenticated"), "{out}");
    assert!(
        !out.contains(&env.server.root_token),
        "login printed the token"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        env.server.root_token
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);

    let (code, _, err) = env.run(env.anon(), &["kv", "put", "secret/after-login", "k=v"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, _) = env.run(env.anon(), &["kv", "get", "-field=k", "secret/after-login"]);
    assert_eq!((code, out.as_str()), (Some(0), "v"));

    // The vault CLI's token file is read too, after tresor's own.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(env.home.path().join(".vault-token"), &env.server.root_token).unwrap();
    let (code, _, err) = env.run(env.anon(), &["kv", "get", "secret/after-login"]);
    assert_eq!(code, Some(0), "{err}");
    env.assert_no_leaks(&[]);
}

#[test]
fn server_only_commands_need_an_address_and_a_dead_server_is_exit_1() {
    let env = Remote::dev();
    for args in [
        &["status"][..],
        &["token", "lookup"],
        &["policy", "list"],
        &["login", "x"],
    ] {
        let mut cmd = env.cmd();
        cmd.env_remove("TRESOR_ADDR");
        let err = env.fails(cmd, args, 2);
        assert!(err.contains("TRESOR_ADDR"), "{err}");
    }
    let mut cmd = env.cmd();
    cmd.env("TRESOR_ADDR", "http://127.0.0.1:1");
    let err = env.fails(cmd, &["kv", "get", "secret/x"], 1);
    assert!(err.contains("cannot reach"), "{err}");
    let mut cmd = env.cmd();
    cmd.env_remove("TRESOR_ADDR")
        .env("VAULT_ADDR", &env.server.addr);
    let (code, _, err) = env.run(cmd, &["status"]);
    assert_eq!(code, Some(0), "{err}");
    env.assert_no_leaks(&[]);
}

/// The value in a `Key  Value` table's row for `key`.
fn row(table: &str, key: &str) -> String {
    table
        .lines()
        .find_map(|l| l.strip_prefix(key).filter(|rest| rest.starts_with("  ")))
        .unwrap_or_else(|| panic!("no {key} in {table}"))
        .trim()
        .to_string()
}

#[test]
fn operator_init_unseal_and_status_against_a_config_server() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Remote::on(TestServer::with_config(&util::config(tmp.path(), "")));
    let (code, out, _) = env.run(env.anon(), &["status"]);
    assert_eq!(code, Some(2), "an uninitialized server is sealed");
    assert!(row(&out, "Initialized") == "false", "{out}");

    let (code, out, err) = env.run(
        env.anon(),
        &[
            "operator",
            "init",
            "-key-shares=3",
            "-key-threshold=2",
            "-format=json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let init: Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let root = init["root_token"].as_str().unwrap().to_string();
    assert_eq!(keys.len(), 3);
    env.fails(env.anon(), &["operator", "init"], 2);

    let (code, out, _) = env.run(env.anon(), &["status"]);
    assert_eq!(code, Some(2));
    assert!(
        row(&out, "Sealed") == "true" && row(&out, "Unseal Progress") == "0/2",
        "{out}"
    );
    let (code, out, err) = env.run(env.anon(), &["operator", "unseal", &keys[0]]);
    assert_eq!(code, Some(0), "{err}");
    assert!(row(&out, "Unseal Progress") == "1/2", "{out}");
    env.fails(env.anon(), &["operator", "unseal", "bm90IGEgc2hhcmU="], 2);
    let mut piped = env.anon();
    piped.write_stdin(format!("{}\n", keys[2]));
    env.run(piped, &["operator", "unseal"]);
    let (code, out, err) = env.run(env.anon(), &["operator", "unseal", &keys[1]]);
    assert_eq!(code, Some(0), "{err}");
    assert!(row(&out, "Sealed") == "false", "{out}");
    let (code, _, _) = env.run(env.anon(), &["status"]);
    assert_eq!(code, Some(0));

    let mut rooted = env.anon();
    rooted.env("TRESOR_TOKEN", &root);
    let (code, _, err) = env.run(
        rooted,
        &["kv", "put", "secret/app", &format!("pw={SECRET}")],
    );
    assert_eq!(code, Some(0), "{err}");
    let api = Api::new(&env.server.addr, &root);
    assert_eq!(api.call("PUT", "sys/seal", None).0, 204);
    let (code, out, _) = env.run(env.anon(), &["status", "-format=json"]);
    assert_eq!(code, Some(2));
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["sealed"], true);
    let mut rooted = env.anon();
    rooted.env("TRESOR_TOKEN", &root);
    let err = env.fails(rooted, &["kv", "get", "secret/app"], 1);
    assert!(
        err.contains("sealed") && err.contains("tresor operator unseal"),
        "{err}"
    );
    let mut leaks: Vec<&str> = keys.iter().map(String::as_str).collect();
    leaks.push(&root);
    env.assert_no_leaks(&leaks);
}
