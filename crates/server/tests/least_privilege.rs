//! Least privilege that holds, tried as an attacker would: generated denied
//! targets across the KV, sys, token and policy endpoints, sent in generated
//! spellings (slashes, encodings, dot segments, case, whitespace,
//! `?list=true`, aliases, methods, parameters in the query, the body or a
//! form) by tokens whose policies deny them, over real TCP to a real server.
//! After every attempt: nothing secret in the answer, nothing written,
//! listed or deleted that the token may not touch, and the attempt in the
//! audit log with its parameters.

use proptest::prelude::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tresor_barrier::{SealKind, UnsealKey};
use tresor_logical::{Node, NodeSettings};
use tresor_request::{RawRequest, Request};
use tresor_server::{Listener, Server, Timeouts};

const SECRET: &str = "crown-jewel-value-5f1d7c2a9e";
const POLICY_MARKER: &str = "ADMIN-POLICY-MARKER";
const ROOT: &str = "root-token-for-least-privilege";

/// A server and what the attacks must not disturb.
struct World {
    addr: SocketAddr,
    node: Arc<Node>,
    audit_log: PathBuf,
    victim_token: String,
    victim_accessor: String,
    attackers: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

/// The tests share one server and read its audit log entry by entry: one at
/// a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(World::start)
}

impl World {
    fn start() -> World {
        let dir = tempfile::tempdir().unwrap();
        let audit_log = dir.path().join("audit.log");
        let mut audit = tresor_audit::BrokerConfig::new(Duration::from_secs(5), false);
        audit.declared.push(tresor_audit::DeclaredDevice {
            path: "file".into(),
            file_path: audit_log.clone(),
            description: String::new(),
        });
        let node = Arc::new(Node::new(
            Arc::new(tresor_storage::Memory::new()),
            NodeSettings {
                audit,
                token_limits: tresor_server::TokenLimits::default(),
                kms: None,
                kms_connector: None,
            },
        ));
        node.initialize_with(
            SealKind::Shamir {
                shares: 1,
                threshold: 1,
            },
            &UnsealKey::generate(),
            Some(ROOT),
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let serving = Arc::clone(&node);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = Listener {
                    address: "127.0.0.1:0".parse().unwrap(),
                    tls: None,
                    max_request_bytes: 1 << 20,
                    // The attacks fail authentication on purpose, often.
                    failed_auth_burst: u32::MAX,
                    failed_auth_window: Duration::from_secs(60),
                    timeouts: Timeouts::default(),
                    max_connections: 64,
                };
                let server = Server::bind(serving, listener).await.unwrap();
                tx.send(server.address()).unwrap();
                server.run(std::future::pending()).await;
            });
        });
        let addr = rx.recv().unwrap();
        let mut world = World {
            addr,
            node,
            audit_log,
            victim_token: String::new(),
            victim_accessor: String::new(),
            attackers: Vec::new(),
            _dir: dir,
        };
        world.populate();
        world
    }

    fn root(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let raw = send(
            self.addr,
            method,
            path,
            None,
            Some(ROOT),
            "application/json",
            body.as_bytes(),
        );
        (
            raw.status,
            serde_json::from_str(&raw.body).unwrap_or(Value::Null),
        )
    }

    fn populate(&mut self) {
        for (path, value) in [
            ("secret/data/admin/crown-jewels", SECRET),
            ("secret/data/admin/vault-of-gold", SECRET),
            ("secret/data/app/db", "app-password"),
        ] {
            let (status, _) = self.root("PUT", path, json!({"data": {"password": value}}));
            assert_eq!(status, 200, "{path}");
        }
        let admin =
            format!("# {POLICY_MARKER}\npath \"*\" {{ capabilities = [\"sudo\", \"read\"] }}\n");
        assert_eq!(
            self.root("PUT", "sys/policies/acl/admin", json!({"policy": admin}))
                .0,
            204
        );
        let (status, victim) =
            self.root("POST", "auth/token/create", json!({"policies": ["admin"]}));
        assert_eq!(status, 200, "{victim}");
        self.victim_token = victim["auth"]["client_token"].as_str().unwrap().to_owned();
        self.victim_accessor = victim["auth"]["accessor"].as_str().unwrap().to_owned();

        let broad = format!(
            r#"
            path "*" {{ capabilities = ["create", "read", "update", "patch", "delete", "list", "sudo"] }}
            path "secret/data/admin/*" {{ capabilities = ["deny"] }}
            path "secret/metadata/admin" {{ capabilities = ["deny"] }}
            path "secret/metadata/admin/*" {{ capabilities = ["deny"] }}
            path "secret/delete/admin/*" {{ capabilities = ["deny"] }}
            path "secret/undelete/admin/*" {{ capabilities = ["deny"] }}
            path "secret/destroy/admin/*" {{ capabilities = ["deny"] }}
            path "secret/subkeys/admin/*" {{ capabilities = ["deny"] }}
            path "sys/mounts/secret" {{ capabilities = ["deny"] }}
            path "sys/mounts/secret/*" {{ capabilities = ["deny"] }}
            path "sys/mounts/evil" {{ capabilities = ["deny"] }}
            path "sys/mounts/evil/*" {{ capabilities = ["deny"] }}
            path "sys/policies/acl/admin" {{ capabilities = ["deny"] }}
            path "sys/policies/acl/pwn" {{ capabilities = ["deny"] }}
            path "auth/token/lookup" {{ capabilities = ["deny"] }}
            path "auth/token/revoke" {{ capabilities = ["deny"] }}
            path "auth/token/revoke-orphan" {{ capabilities = ["deny"] }}
            path "auth/token/revoke-accessor" {{
              capabilities = ["update"]
              denied_parameters = {{ "accessor" = ["{victim}"] }}
            }}
            path "auth/token/renew-accessor" {{ capabilities = ["deny"] }}
            path "auth/token/lookup-accessor" {{ capabilities = ["deny"] }}
            path "sys/seal" {{ capabilities = ["deny"] }}
            path "sys/rotate" {{ capabilities = ["deny"] }}
            "#,
            victim = self.victim_accessor
        );
        let list_only = r#"path "secret/*" { capabilities = ["list"] }"#;
        // Everything on the tune endpoint, which never creates or deletes a mount.
        let tune_only = r#"path "sys/mounts/+/tune" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }"#;
        let policy_writer = r#"
            path "sys/policies/acl/*" {
              capabilities = ["create", "update"]
              denied_parameters = { "policy" = [] }
            }
        "#;
        // Allowed on the legacy spelling, constrained on the current one.
        let legacy_writer = r#"
            path "sys/policies/acl/*" {
              capabilities = ["create", "update"]
              denied_parameters = { "policy" = [] }
            }
            path "sys/policy/*" { capabilities = ["create", "update"] }
        "#;
        for (name, text) in [
            ("broad", broad.as_str()),
            ("list-only", list_only),
            ("tune-only", tune_only),
            ("policy-writer", policy_writer),
            ("legacy-writer", legacy_writer),
        ] {
            assert_eq!(
                self.root(
                    "PUT",
                    &format!("sys/policies/acl/{name}"),
                    json!({"policy": text})
                )
                .0,
                204,
                "{name}"
            );
            let (status, token) = self.root(
                "POST",
                "auth/token/create",
                json!({"policies": [name], "no_default_policy": true}),
            );
            assert_eq!(status, 200, "{token}");
            self.attackers.push((
                name,
                token["auth"]["client_token"].as_str().unwrap().to_owned(),
            ));
        }
    }

    fn token(&self, profile: &str) -> &str {
        &self
            .attackers
            .iter()
            .find(|(n, _)| *n == profile)
            .unwrap()
            .1
    }

    /// Everything the attacks must leave as it was.
    fn assert_untouched(&self) {
        for path in [
            "secret/data/admin/crown-jewels",
            "secret/data/admin/vault-of-gold",
        ] {
            let (status, read) = self.root("GET", path, Value::Null);
            assert_eq!(status, 200, "{path} is gone: {read}");
            assert_eq!(read["data"]["data"]["password"], SECRET, "{path}");
            assert_eq!(read["data"]["metadata"]["version"], 1, "{path} was written");
            let (_, meta) = self.root("GET", &path.replace("/data/", "/metadata/"), Value::Null);
            assert_eq!(meta["data"]["current_version"], 1, "{path}: {meta}");
            assert_eq!(meta["data"]["max_versions"], 0, "{path}: {meta}");
            assert_eq!(
                meta["data"]["custom_metadata"],
                Value::Null,
                "{path}: {meta}"
            );
        }
        let (_, mounts) = self.root("GET", "sys/mounts", Value::Null);
        assert!(mounts["data"]["secret/"].is_object(), "the mount is gone");
        assert!(mounts["data"]["evil/"].is_null(), "a mount was created");
        assert_eq!(
            mounts["data"]["secret/"]["description"],
            "key/value secret storage"
        );
        assert_eq!(mounts["data"]["secret/"]["config"]["max_lease_ttl"], 0);
        let (_, policy) = self.root("GET", "sys/policies/acl/admin", Value::Null);
        assert!(
            policy["data"]["policy"]
                .as_str()
                .unwrap_or_default()
                .contains(POLICY_MARKER),
            "the admin policy changed: {policy}"
        );
        assert_eq!(
            self.root("GET", "sys/policies/acl/pwn", Value::Null).0,
            404,
            "a policy was written"
        );
        let (status, victim) = self.root(
            "POST",
            "auth/token/lookup",
            json!({"token": self.victim_token}),
        );
        assert_eq!(status, 200, "the victim's token was revoked: {victim}");
        assert_eq!(victim["data"]["policies"], json!(["admin", "default"]));
        assert!(!self.node.is_sealed(), "the server was sealed");
    }
}

struct Answer {
    status: u16,
    body: String,
}

/// One HTTP/1.1 request, as raw bytes, on a fresh connection.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    query: Option<&str>,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let target = match query {
        Some(q) => format!("/v1/{path}?{q}"),
        None => format!("/v1/{path}"),
    };
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: tresor\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("X-Vault-Token: {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Answer { status, body }
}

/// What an attack aims at: a profile's token, a canonical target and what
/// it sends.
#[derive(Debug, Clone)]
struct Target {
    profile: &'static str,
    method: &'static str,
    path: &'static str,
    params: Value,
}

fn targets() -> Vec<Target> {
    let t = |profile, method, path, params: Value| Target {
        profile,
        method,
        path,
        params,
    };
    let data = json!({"data": {"password": "overwritten"}});
    vec![
        // KV, denied by path.
        t("broad", "GET", "secret/data/admin/crown-jewels", json!({})),
        t(
            "broad",
            "GET",
            "secret/data/admin/crown-jewels",
            json!({"version": "1"}),
        ),
        t("broad", "LIST", "secret/metadata/admin", json!({})),
        t(
            "broad",
            "GET",
            "secret/metadata/admin/vault-of-gold",
            json!({}),
        ),
        t(
            "broad",
            "GET",
            "secret/subkeys/admin/crown-jewels",
            json!({"depth": "2"}),
        ),
        t(
            "broad",
            "PUT",
            "secret/data/admin/crown-jewels",
            data.clone(),
        ),
        t(
            "broad",
            "PATCH",
            "secret/data/admin/crown-jewels",
            data.clone(),
        ),
        t(
            "broad",
            "DELETE",
            "secret/data/admin/crown-jewels",
            json!({}),
        ),
        t(
            "broad",
            "DELETE",
            "secret/metadata/admin/vault-of-gold",
            json!({}),
        ),
        t(
            "broad",
            "PUT",
            "secret/destroy/admin/crown-jewels",
            json!({"versions": [1]}),
        ),
        t(
            "broad",
            "PUT",
            "secret/delete/admin/vault-of-gold",
            json!({"versions": [1]}),
        ),
        t(
            "broad",
            "PUT",
            "secret/metadata/admin/crown-jewels",
            json!({"max_versions": 1, "custom_metadata": {"x": "y"}}),
        ),
        // KV, denied by operation: a list-only token reads nothing.
        t(
            "list-only",
            "GET",
            "secret/data/admin/crown-jewels",
            json!({}),
        ),
        t(
            "list-only",
            "GET",
            "secret/subkeys/admin/crown-jewels",
            json!({}),
        ),
        t(
            "list-only",
            "GET",
            "secret/metadata/admin/crown-jewels",
            json!({}),
        ),
        t("list-only", "PUT", "secret/data/admin/crown-jewels", data),
        // Mounts.
        t("broad", "DELETE", "sys/mounts/secret", json!({})),
        t("broad", "PUT", "sys/mounts/evil", json!({"type": "kv"})),
        t(
            "broad",
            "PUT",
            "sys/mounts/secret/tune",
            json!({"max_lease_ttl": "1h", "description": "x"}),
        ),
        t("tune-only", "PUT", "sys/mounts/evil", json!({"type": "kv"})),
        t("tune-only", "DELETE", "sys/mounts/secret", json!({})),
        t(
            "tune-only",
            "PUT",
            "sys/mounts/evil/tune",
            json!({"type": "kv"}),
        ),
        // Policies.
        t(
            "broad",
            "PUT",
            "sys/policies/acl/admin",
            json!({"policy": "path \"x\" { capabilities = [\"read\"] }"}),
        ),
        t("broad", "DELETE", "sys/policies/acl/admin", json!({})),
        t("broad", "GET", "sys/policies/acl/admin", json!({})),
        t(
            "broad",
            "PUT",
            "sys/policies/acl/pwn",
            json!({"policy": "path \"*\" { capabilities = [\"sudo\"] }"}),
        ),
        t(
            "policy-writer",
            "PUT",
            "sys/policies/acl/pwn",
            json!({"policy": "path \"*\" { capabilities = [\"sudo\"] }"}),
        ),
        t(
            "policy-writer",
            "PUT",
            "sys/policies/acl/pwn",
            json!({"rules": "path \"*\" { capabilities = [\"sudo\"] }"}),
        ),
        // Tokens.
        t(
            "broad",
            "PUT",
            "auth/token/revoke-accessor",
            json!({"accessor": "VICTIM"}),
        ),
        t(
            "broad",
            "PUT",
            "auth/token/revoke",
            json!({"token": "VICTIM-TOKEN"}),
        ),
        t(
            "broad",
            "PUT",
            "auth/token/lookup",
            json!({"token": "VICTIM-TOKEN"}),
        ),
        t(
            "broad",
            "GET",
            "auth/token/lookup",
            json!({"token": "VICTIM-TOKEN"}),
        ),
        t(
            "broad",
            "PUT",
            "auth/token/renew-accessor",
            json!({"accessor": "VICTIM", "increment": "1s"}),
        ),
        t("broad", "PUT", "sys/seal", json!({})),
    ]
}

/// How the path is spelled.
#[derive(Debug, Clone)]
enum Spelling {
    Plain,
    LeadingSlashes(usize),
    TrailingSlash,
    DoubledSlash(usize),
    EncodedSlash(usize),
    EncodedChars(Vec<bool>),
    DotSegment(usize),
    UpperCase(usize),
    Whitespace(usize, &'static str),
    Alias,
}

/// How the request is sent.
#[derive(Debug, Clone)]
struct Send {
    method: Option<&'static str>,
    list_query: bool,
    params_in: ParamsIn,
}

#[derive(Debug, Clone, Copy)]
enum ParamsIn {
    Natural,
    Query,
    Body,
    Form,
}

fn spelling() -> impl Strategy<Value = Spelling> {
    prop_oneof![
        Just(Spelling::Plain),
        (1usize..3).prop_map(Spelling::LeadingSlashes),
        Just(Spelling::TrailingSlash),
        (0usize..5).prop_map(Spelling::DoubledSlash),
        (0usize..5).prop_map(Spelling::EncodedSlash),
        proptest::collection::vec(any::<bool>(), 1..12).prop_map(Spelling::EncodedChars),
        (0usize..5).prop_map(Spelling::DotSegment),
        (0usize..5).prop_map(Spelling::UpperCase),
        (
            (0usize..5),
            prop_oneof![Just("%20"), Just("%09"), Just("+"), Just("%C2%A0")]
        )
            .prop_map(|(i, w)| Spelling::Whitespace(i, w)),
        Just(Spelling::Alias),
    ]
}

fn sending() -> impl Strategy<Value = Send> {
    let method = prop_oneof![
        Just(None),
        Just(Some("GET")),
        Just(Some("LIST")),
        Just(Some("HEAD")),
        Just(Some("PUT")),
        Just(Some("POST")),
        Just(Some("PATCH")),
        Just(Some("DELETE")),
    ];
    let params_in = prop_oneof![
        Just(ParamsIn::Natural),
        Just(ParamsIn::Query),
        Just(ParamsIn::Body),
        Just(ParamsIn::Form),
    ];
    (method, any::<bool>(), params_in).prop_map(|(method, list_query, params_in)| Send {
        method,
        list_query,
        params_in,
    })
}

fn spell(path: &str, spelling: &Spelling) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let at = |i: &usize| i % segments.len();
    match spelling {
        Spelling::Plain => path.to_owned(),
        Spelling::LeadingSlashes(n) => format!("{}{path}", "/".repeat(*n)),
        Spelling::TrailingSlash => format!("{path}/"),
        Spelling::DoubledSlash(i) => {
            let mut s: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
            s.insert(at(i), String::new());
            s.join("/")
        }
        Spelling::EncodedSlash(i) => {
            let i = at(i).max(1).min(segments.len() - 1);
            format!("{}%2F{}", segments[..i].join("/"), segments[i..].join("/"))
        }
        Spelling::EncodedChars(mask) => path
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if mask[i % mask.len()] && c != '/' {
                    format!("%{:02X}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect(),
        Spelling::DotSegment(i) => {
            let mut s: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
            s.insert(at(i), "x/..".into());
            s.join("/")
        }
        Spelling::UpperCase(i) => {
            let mut s: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
            let i = at(i);
            s[i] = s[i].to_uppercase();
            s.join("/")
        }
        Spelling::Whitespace(i, w) => {
            let mut s: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
            let i = at(i);
            s[i] = format!("{w}{}", s[i]);
            s.join("/")
        }
        Spelling::Alias => {
            if let Some(name) = path.strip_prefix("sys/policies/acl/") {
                format!("sys/policy/{name}")
            } else if let Some(rest) = path.strip_prefix("sys/mounts/") {
                match rest.strip_suffix("/tune") {
                    Some(mount) => format!("sys/mounts/{mount}"),
                    None => format!("sys/mounts/{rest}/tune"),
                }
            } else if let Some(rest) = path.strip_prefix("secret/data/") {
                format!("secret/metadata/{rest}")
            } else {
                path.to_owned()
            }
        }
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn pairs(params: &Value) -> String {
    params
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{}={}", encode(k), encode(&v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn attack(world: &World, target: &Target, spelling: &Spelling, how: &Send) {
    let mut params = target.params.to_string();
    params = params
        .replace("VICTIM-TOKEN", &world.victim_token)
        .replace("VICTIM", &world.victim_accessor);
    let mut params: Value = serde_json::from_str(&params).unwrap();
    let nonce = format!("n{}", rand_hex());
    params["nonce"] = json!(nonce);
    let method = how.method.unwrap_or(target.method);
    let writes = matches!(method, "PUT" | "POST" | "PATCH");
    let params_in = match how.params_in {
        ParamsIn::Natural if writes => ParamsIn::Body,
        ParamsIn::Natural => ParamsIn::Query,
        other => other,
    };
    let mut query = match params_in {
        ParamsIn::Query => Some(pairs(&params)),
        _ => None,
    };
    if how.list_query {
        query = Some(match query {
            Some(q) => format!("{q}&list=true"),
            None => "list=true".into(),
        });
    }
    let (content_type, body) = match params_in {
        ParamsIn::Body => (
            if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            },
            params.to_string(),
        ),
        ParamsIn::Form => ("application/x-www-form-urlencoded", pairs(&params)),
        _ => ("application/json", String::new()),
    };
    let path = spell(target.path, spelling);
    let token = world.token(target.profile);
    let lines_before = audit_lines(world).len();
    let answer = send(
        world.addr,
        method,
        &path,
        query.as_deref(),
        Some(token),
        content_type,
        body.as_bytes(),
    );

    // The names of the secrets under admin/ leak only through a listing; an
    // error may echo a name the attacker sent itself.
    let names = ["crown-jewels", "vault-of-gold"]
        .into_iter()
        .filter(|n| !target.path.contains(n));
    for leak in [SECRET, POLICY_MARKER, world.victim_token.as_str()]
        .into_iter()
        .chain(names)
    {
        assert!(
            !answer.body.contains(leak),
            "{method} {path}?{query:?} as {} leaked {leak:?}: {} {}",
            target.profile,
            answer.status,
            answer.body
        );
    }
    assert!(answer.status != 429, "the limiter interfered");
    world.assert_untouched();

    let lines = audit_lines(world);
    let root = root_hash(world);
    let mine: Vec<&Value> = lines[lines_before..]
        .iter()
        .filter(|l| l["type"] == "request" && l["request"]["client_token"] != root)
        .collect();
    assert!(
        !mine.is_empty(),
        "{method} {path} as {} left no request entry in the audit log",
        target.profile
    );
    // What the core read of the request is in the log: its parameters,
    // values hashed.
    let raw = RawRequest {
        method,
        path: &path,
        query: query.as_deref(),
        content_type: Some(content_type),
        body: body.as_bytes(),
        vault_token: &[token],
        authorization: &[],
        wrap_ttl: None,
    };
    if let Ok(canonical) = Request::from_raw(&raw) {
        let entry = mine[0];
        let hashed = world
            .node
            .unsealed()
            .unwrap()
            .audit
            .hash("file", &nonce)
            .unwrap();
        assert_eq!(
            entry["request"]["path"],
            canonical.path.as_str(),
            "{method} {path}?{query:?}: {mine:#?}"
        );
        let logged = &entry["request"]["data"]["nonce"];
        let expected = if canonical.data.contains_key("nonce") {
            json!(hashed)
        } else {
            Value::Null
        };
        assert_eq!(logged, &expected, "{entry}");
        for (name, _) in &canonical.data {
            assert!(
                !entry["request"]["data"][name].is_null(),
                "parameter {name} missing from {entry}"
            );
        }
    }
}

fn root_hash(world: &World) -> Value {
    static HASH: OnceLock<String> = OnceLock::new();
    json!(HASH.get_or_init(|| {
        world
            .node
            .unsealed()
            .unwrap()
            .audit
            .hash("file", ROOT)
            .unwrap()
    }))
}

fn audit_lines(world: &World) -> Vec<Value> {
    let text = std::fs::read_to_string(&world.audit_log).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn rand_hex() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 384,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn denied_targets_stay_denied_however_they_are_spelled(
        target in proptest::sample::select(targets()),
        spelling in spelling(),
        how in sending(),
    ) {
        let _serial = serial();
        attack(world(), &target, &spelling, &how);
    }
}

#[test]
fn the_examples_from_the_review_are_refused() {
    let _serial = serial();
    let world = world();
    let broad = world.token("broad");
    let list_only = world.token("list-only");
    let get = |path: &str, query: Option<&str>, token: &str| {
        send(
            world.addr,
            "GET",
            path,
            query,
            Some(token),
            "application/json",
            b"",
        )
    };
    let answer = get(
        "secret/data/admin/crown-jewels",
        Some("list=true"),
        list_only,
    );
    assert_eq!(answer.status, 405, "{}", answer.body);
    assert_eq!(
        get("/secret/data/admin/crown-jewels", None, broad).status,
        403
    );
    let delete = send(
        world.addr,
        "DELETE",
        "sys/mounts//secret",
        None,
        Some(broad),
        "application/json",
        b"",
    );
    assert_eq!(delete.status, 403);
    let list = send(
        world.addr,
        "LIST",
        "secret/metadata//admin",
        None,
        Some(broad),
        "application/json",
        b"",
    );
    assert_eq!(list.status, 403);
    let list = send(
        world.addr,
        "LIST",
        "secret/metadata/%2Fadmin",
        None,
        Some(broad),
        "application/json",
        b"",
    );
    assert_eq!(list.status, 403);
    let tune = world.token("tune-only");
    let create = send(
        world.addr,
        "POST",
        "sys/mounts/evil/tune",
        None,
        Some(tune),
        "application/json",
        br#"{"type":"kv"}"#,
    );
    assert!(create.status >= 400, "{}", create.body);
    let drop = send(
        world.addr,
        "DELETE",
        "sys/mounts/secret/tune",
        None,
        Some(tune),
        "application/json",
        b"",
    );
    assert_eq!(drop.status, 405, "{}", drop.body);
    let renamed = send(
        world.addr,
        "PUT",
        "sys/policies/acl/%20admin",
        None,
        Some(broad),
        "application/json",
        br#"{"policy":"path \"x\" { capabilities = [\"read\"] }"}"#,
    );
    assert_eq!(renamed.status, 400, "{}", renamed.body);
    let query = format!("accessor={}", world.victim_accessor);
    let revoke = send(
        world.addr,
        "POST",
        "auth/token/revoke-accessor",
        Some(&query),
        Some(broad),
        "application/json",
        b"",
    );
    assert_eq!(revoke.status, 400, "{}", revoke.body);
    let writer = world.token("policy-writer");
    let stored = send(
        world.addr,
        "PUT",
        "sys/policies/acl/pwn",
        Some("policy=x"),
        Some(writer),
        "application/json",
        b"",
    );
    assert_eq!(stored.status, 400, "{}", stored.body);
    let legacy = world.token("legacy-writer");
    for body in [
        br#"{"policy":"path \"*\" { capabilities = [\"sudo\"] }"}"#.as_slice(),
        br#"{"rules":"path \"*\" { capabilities = [\"sudo\"] }"}"#.as_slice(),
    ] {
        let aliased = send(
            world.addr,
            "PUT",
            "sys/policy/pwn",
            None,
            Some(legacy),
            "application/json",
            body,
        );
        assert_eq!(
            aliased.status, 403,
            "denied_parameters hold on the alias: {}",
            aliased.body
        );
    }
    world.assert_untouched();
    // The allowed side: what each token may do still works.
    let allowed = send(
        world.addr,
        "GET",
        "secret/data/app/db",
        None,
        Some(broad),
        "application/json",
        b"",
    );
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let listed = send(
        world.addr,
        "LIST",
        "secret/metadata/",
        None,
        Some(list_only),
        "application/json",
        b"",
    );
    assert_eq!(listed.status, 200, "{}", listed.body);
    let tuned = send(
        world.addr,
        "PUT",
        "sys/mounts/secret/tune",
        None,
        Some(tune),
        "application/json",
        br#"{"description":"key/value secret storage"}"#,
    );
    assert_eq!(tuned.status, 204, "{}", tuned.body);
}
