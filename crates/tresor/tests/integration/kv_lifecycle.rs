//! The KV lifecycle as the Vault CLI drives it (put, get, patch, versions,
//! check-and-set, rollback, values from stdin and files, list, delete,
//! undelete, destroy, metadata), run once on the embedded store and once
//! against a server: the same commands give the same answers in both places.

use crate::util::{self, TestServer};
use serde_json::{Value, json};
use std::cell::RefCell;

const SECRET: &str = "Rv7-kv-lifecycle-value-q2W";

/// Where the commands go.
enum Place {
    Embedded,
    Server(TestServer),
}

struct Session {
    place: Place,
    home: tempfile::TempDir,
    /// Every stderr the commands wrote, checked for leaks at the end.
    errors: RefCell<String>,
}

impl Session {
    fn embedded() -> Self {
        let session = Self::at(Place::Embedded);
        session.ok(&["operator", "init"]);
        session
    }

    fn server() -> Self {
        Self::at(Place::Server(TestServer::dev()))
    }

    fn at(place: Place) -> Self {
        Self {
            place,
            home: tempfile::tempdir().unwrap(),
            errors: RefCell::default(),
        }
    }

    fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = util::tresor_assert();
        cmd.current_dir(self.home.path())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"));
        match &self.place {
            Place::Embedded => cmd.env("TRESOR_STORE", self.home.path().join("store")),
            Place::Server(server) => cmd
                .env("TRESOR_ADDR", &server.addr)
                .env("TRESOR_TOKEN", &server.root_token),
        };
        cmd
    }

    /// Exit code, stdout; stderr is kept for the leak check.
    fn run(&self, mut cmd: assert_cmd::Command, args: &[&str]) -> (Option<i32>, String, String) {
        let out = cmd.args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        self.errors.borrow_mut().push_str(&stderr);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), stdout, stderr)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(self.cmd(), args);
        assert_eq!(code, Some(0), "{args:?} failed: {err}");
        out
    }

    fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let mut cmd = self.cmd();
        cmd.write_stdin(stdin);
        let (code, out, err) = self.run(cmd, args);
        assert_eq!(code, Some(0), "{args:?} failed: {err}");
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("-format=json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Runs a command that must exit with 2 (a usage error); its stderr.
    fn refused(&self, args: &[&str]) -> String {
        let (code, _, err) = self.run(self.cmd(), args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(!err.is_empty(), "{args:?} gave no error message");
        err
    }

    /// No error output held a secret value (or the server's root token).
    fn assert_no_leaks(&self) {
        let errors = self.errors.borrow();
        assert!(!errors.contains(SECRET), "a value leaked into stderr");
        if let Place::Server(server) = &self.place {
            assert!(!errors.contains(&server.root_token), "the token leaked");
        }
    }
}

fn kv_lifecycle(s: &Session) {
    let out = s.ok(&[
        "kv",
        "put",
        "secret/mlflow",
        "db-username=mlflow",
        &format!("db-password={SECRET}"),
    ]);
    assert!(
        out.contains("secret/data/mlflow") && out.contains("version            1"),
        "{out}"
    );
    assert!(!out.contains(SECRET));
    let got = s.json(&["kv", "get", "secret/mlflow"]);
    assert_eq!(got["data"]["data"]["db-password"], SECRET);
    assert_eq!(got["data"]["metadata"]["version"], 1);

    s.ok(&[
        "kv",
        "patch",
        "-mount=secret",
        "mlflow",
        "db-password=second",
    ]);
    let field = |args: &[&str]| s.ok(&[&["kv", "get"], args, &["secret/mlflow"]].concat());
    assert_eq!(field(&["-field=db-password"]), "second");
    assert_eq!(field(&["-version=1", "-field=db-password"]), SECRET);
    assert_eq!(field(&["-field=db-username"]), "mlflow");
    let table = s.ok(&["kv", "get", "secret/mlflow"]);
    assert!(
        table.contains("====== Data") && table.contains("db-password    second"),
        "{table}"
    );

    let err = s.refused(&["kv", "put", "-cas=1", "secret/mlflow", "x=y"]);
    assert!(
        err.contains("check-and-set parameter did not match the current version"),
        "{err}"
    );
    s.ok(&["kv", "put", "-cas=2", "secret/mlflow", "x=y"]);
    s.ok(&["kv", "rollback", "-version=1", "secret/mlflow"]);
    assert_eq!(field(&["-field=db-password"]), SECRET);
    let meta = s.json(&["kv", "metadata", "get", "secret/mlflow"]);
    assert_eq!(meta["data"]["current_version"], 4);

    // Values from stdin, from a file, and a whole JSON object from stdin.
    s.ok_stdin(
        &["kv", "put", "secret/api", "api-key=-"],
        "from-stdin-value\n",
    );
    assert_eq!(
        s.ok(&["kv", "get", "-field=api-key", "secret/api"]),
        "from-stdin-value"
    );
    let file = s.home.path().join("cert.pem");
    std::fs::write(&file, "-----BEGIN X-----\nabc\n").unwrap();
    s.ok(&[
        "kv",
        "put",
        "secret/tls",
        &format!("cert=@{}", file.display()),
    ]);
    assert_eq!(
        s.ok(&["kv", "get", "-field=cert", "secret/tls"]),
        "-----BEGIN X-----\nabc\n"
    );
    s.ok_stdin(
        &["kv", "put", "secret/json", "-"],
        r#"{"a": "1", "nested": {"b": 2}}"#,
    );
    assert_eq!(
        s.json(&["kv", "get", "secret/json"])["data"]["data"]["nested"]["b"],
        2
    );

    for i in 1..=3 {
        s.ok(&["kv", "put", "secret/app/db", &format!("v={i}")]);
    }
    s.ok(&["kv", "put", "secret/app/api", "k=v"]);
    assert_eq!(
        s.ok(&["kv", "list", "secret/"]),
        "Keys\n----\napi\napp/\njson\nmlflow\ntls\n"
    );
    assert_eq!(s.json(&["kv", "list", "secret/app"]), json!(["api", "db"]));
    assert_eq!(
        s.json(&["kv", "list", "-limit=1", "-after=api", "secret/app"]),
        json!(["db"])
    );
    s.refused(&["kv", "list", "secret/nothing"]);

    s.ok(&["kv", "delete", "secret/app/db"]);
    let err = s.refused(&["kv", "get", "secret/app/db"]);
    assert!(err.contains("deleted"), "{err}");
    s.ok(&["kv", "undelete", "-versions=3", "secret/app/db"]);
    assert_eq!(s.ok(&["kv", "get", "-field=v", "secret/app/db"]), "3");
    s.ok(&["kv", "destroy", "-versions=1,2", "secret/app/db"]);
    let err = s.refused(&["kv", "get", "-version=1", "secret/app/db"]);
    assert!(err.contains("destroyed"), "{err}");
    s.ok(&["kv", "delete", "-versions=3", "secret/app/db"]);

    s.ok(&[
        "kv",
        "metadata",
        "put",
        "-max-versions=2",
        "-custom-metadata=owner=platform",
        "-delete-version-after=3h",
        "secret/app/db",
    ]);
    let meta = s.json(&["kv", "metadata", "get", "secret/app/db"]);
    assert_eq!(meta["data"]["max_versions"], 2);
    assert_eq!(meta["data"]["custom_metadata"]["owner"], "platform");
    assert_eq!(meta["data"]["delete_version_after"], "3h0m0s");
    let mv = meta["data"]["metadata_version"].as_u64().unwrap();
    let stale = format!("-cas={}", mv - 1);
    let err = s.refused(&[
        "kv",
        "metadata",
        "put",
        &stale,
        "-max-versions=5",
        "secret/app/db",
    ]);
    assert!(err.contains("metadata check-and-set"), "{err}");
    let current = format!("-cas={mv}");
    s.ok(&[
        "kv",
        "metadata",
        "put",
        &current,
        "-max-versions=5",
        "secret/app/db",
    ]);
    assert!(
        s.ok(&["kv", "metadata", "get", "secret/app/db"])
            .contains("== Version 3 ==")
    );
    s.ok(&["kv", "metadata", "delete", "secret/app/db"]);
    let err = s.refused(&["kv", "get", "secret/app/db"]);
    assert!(err.contains("no value found"), "{err}");

    s.refused(&["kv", "put", "nomount/a", "k=v"]);
    s.refused(&["kv", "put", "secret/a", SECRET]);
    s.assert_no_leaks();
}

#[test]
fn on_the_embedded_store() {
    kv_lifecycle(&Session::embedded());
}

#[test]
fn against_a_server() {
    let session = Session::server();
    kv_lifecycle(&session);
    let Place::Server(server) = &session.place else {
        unreachable!("a server session")
    };
    let (status, stored) = server.client(&server.root_token).get("secret/data/mlflow");
    assert_eq!(
        (status, &stored["data"]["data"]["db-password"]),
        (200, &json!(SECRET)),
        "written to the server"
    );
    assert!(
        !session.home.path().join("store").exists(),
        "no embedded store was created"
    );
}
