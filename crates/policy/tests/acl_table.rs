//! Table test: (policy set, path, operation) -> allowed or denied, one row per rule to prove.

use tresor_policy::{Acl, Decision, DenyReason, Operation, Policy};

use Operation::{Create, Delete, List, Patch, Read, Update};

struct Row {
    why: &'static str,
    policies: &'static [&'static str],
    path: &'static str,
    operation: Operation,
    allowed: bool,
}

const fn row(
    why: &'static str,
    policies: &'static [&'static str],
    path: &'static str,
    operation: Operation,
    allowed: bool,
) -> Row {
    Row {
        why,
        policies,
        path,
        operation,
        allowed,
    }
}

/// A `secret/*` grant of every non-sudo capability, shared by the deny rows.
const SECRET_ALL: &str =
    r#"path "secret/*" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }"#;

static ROWS: &[Row] = &[
    // Deny by default.
    row("no policy grants nothing", &[], "secret/foo", Read, false),
    row(
        "an unrelated rule grants nothing",
        &[r#"path "secret/foo" { capabilities = ["read"] }"#],
        "secret/bar",
        Read,
        false,
    ),
    // Exact paths.
    row(
        "exact path grants its capability",
        &[r#"path "secret/foo" { capabilities = ["read"] }"#],
        "secret/foo",
        Read,
        true,
    ),
    row(
        "exact path does not grant other capabilities",
        &[r#"path "secret/foo" { capabilities = ["read"] }"#],
        "secret/foo",
        Update,
        false,
    ),
    row(
        "exact path does not match a longer path",
        &[r#"path "secret/foo" { capabilities = ["read"] }"#],
        "secret/food",
        Read,
        false,
    ),
    // Globs.
    row(
        "trailing glob matches deeper paths",
        &[r#"path "secret/bar/*" { capabilities = ["read"] }"#],
        "secret/bar/zip/zap",
        Read,
        true,
    ),
    row(
        "glob after a slash does not match a sibling prefix",
        &[r#"path "secret/bar/*" { capabilities = ["read"] }"#],
        "secret/bars/zip",
        Read,
        false,
    ),
    row(
        "glob inside a segment is a string prefix",
        &[r#"path "secret/zip-*" { capabilities = ["read"] }"#],
        "secret/zip-zap/zong",
        Read,
        true,
    ),
    // `+` segments.
    row(
        "+ matches one segment",
        &[r#"path "secret/+/teamb" { capabilities = ["read"] }"#],
        "secret/foo/teamb",
        Read,
        true,
    ),
    row(
        "+ does not match two segments",
        &[r#"path "secret/+/teamb" { capabilities = ["read"] }"#],
        "secret/foo/bar/teamb",
        Read,
        false,
    ),
    row(
        "+/+ matches two segments",
        &[r#"path "secret/+/+/teamb" { capabilities = ["read"] }"#],
        "secret/foo/bar/teamb",
        Read,
        true,
    ),
    row(
        "+ combined with a trailing glob",
        &[r#"path "secret/data/+/config/*" { capabilities = ["read"] }"#],
        "secret/data/app1/config/db",
        Read,
        true,
    ),
    // Union of the same pattern across policies.
    row(
        "same pattern in two policies: first policy's capability",
        &[
            r#"path "secret/data/x" { capabilities = ["read"] }"#,
            r#"path "secret/data/x" { capabilities = ["create"] }"#,
        ],
        "secret/data/x",
        Read,
        true,
    ),
    row(
        "same pattern in two policies: second policy's capability",
        &[
            r#"path "secret/data/x" { capabilities = ["read"] }"#,
            r#"path "secret/data/x" { capabilities = ["create"] }"#,
        ],
        "secret/data/x",
        Create,
        true,
    ),
    row(
        "same glob twice in one policy is a union too",
        &[r#"
            path "secret/*" { capabilities = ["read"] }
            path "secret/*" { capabilities = ["list"] }
        "#],
        "secret/a/",
        List,
        true,
    ),
    // Deny.
    row(
        "deny on the same pattern wins over a grant in another policy",
        &[
            r#"path "secret/data/x" { capabilities = ["read", "update"] }"#,
            r#"path "secret/data/x" { capabilities = ["deny"] }"#,
        ],
        "secret/data/x",
        Read,
        false,
    ),
    row(
        "deny wins over sudo in the same rule",
        &[r#"path "sys/audit" { capabilities = ["read", "sudo", "deny"] }"#],
        "sys/audit",
        Read,
        false,
    ),
    row(
        "an exact deny beats a broader glob grant",
        &[
            SECRET_ALL,
            r#"path "secret/super-secret" { capabilities = ["deny"] }"#,
        ],
        "secret/super-secret",
        Read,
        false,
    ),
    row(
        "the broader glob still grants its other paths",
        &[
            SECRET_ALL,
            r#"path "secret/super-secret" { capabilities = ["deny"] }"#,
        ],
        "secret/other",
        Delete,
        true,
    ),
    row(
        "a lower-priority deny does not override a more specific grant",
        &[
            r#"path "secret/*" { capabilities = ["deny"] }"#,
            r#"path "secret/public" { capabilities = ["read"] }"#,
        ],
        "secret/public",
        Read,
        true,
    ),
    // Priority rule 1: the first wildcard occurring later wins.
    row(
        "rule 1: exact (no wildcard) beats a glob",
        &[
            r#"path "secret/foo*" { capabilities = ["update"] }"#,
            r#"path "secret/foo" { capabilities = ["read"] }"#,
        ],
        "secret/foo",
        Update,
        false,
    ),
    row(
        "rule 1: later glob beats earlier +",
        &[
            r#"path "secret/a/*" { capabilities = ["read"] }"#,
            r#"path "secret/+/b" { capabilities = ["update"] }"#,
        ],
        "secret/a/b",
        Read,
        true,
    ),
    row(
        "rule 1: the earlier + does not contribute",
        &[
            r#"path "secret/a/*" { capabilities = ["read"] }"#,
            r#"path "secret/+/b" { capabilities = ["update"] }"#,
        ],
        "secret/a/b",
        Update,
        false,
    ),
    row(
        "rule 1: the longer literal prefix wins even when it denies",
        &[
            r#"path "secret/*" { capabilities = ["read"] }"#,
            r#"path "secret/team-*" { capabilities = ["deny"] }"#,
        ],
        "secret/team-a/x",
        Read,
        false,
    ),
    // Priority rule 2: not ending in `*` beats ending in `*`.
    row(
        "rule 2: + pattern without glob beats a glob at the same position",
        &[
            r#"path "secret/*" { capabilities = ["deny"] }"#,
            r#"path "secret/+/foo" { capabilities = ["read"] }"#,
        ],
        "secret/x/foo",
        Read,
        true,
    ),
    // Priority rule 3: more `+` segments lose.
    row(
        "rule 3: secret/* beats secret/+/+/foo/* (the documented example)",
        &[
            r#"path "secret/*" { capabilities = ["read"] }"#,
            r#"path "secret/+/+/foo/*" { capabilities = ["deny"] }"#,
        ],
        "secret/a/b/foo/c",
        Read,
        true,
    ),
    row(
        "rule 3: fewer + wins between non-glob patterns",
        &[
            r#"path "secret/+/+" { capabilities = ["deny"] }"#,
            r#"path "secret/+/b" { capabilities = ["read"] }"#,
        ],
        "secret/a/b",
        Read,
        true,
    ),
    // Priority rule 4: shorter loses.
    row(
        "rule 4: the longer glob wins",
        &[
            r#"path "secret/+/*" { capabilities = ["read"] }"#,
            r#"path "secret/+/b/*" { capabilities = ["deny"] }"#,
        ],
        "secret/a/b/c",
        Read,
        false,
    ),
    row(
        "rule 4: the shorter glob still applies where the longer does not match",
        &[
            r#"path "secret/+/*" { capabilities = ["read"] }"#,
            r#"path "secret/+/b/*" { capabilities = ["deny"] }"#,
        ],
        "secret/a/c/d",
        Read,
        true,
    ),
    // Priority rule 5: lexicographically smaller loses.
    row(
        "rule 5: secret/+/a/+ beats secret/+/+/b ('a' > '+')",
        &[
            r#"path "secret/+/+/b" { capabilities = ["deny"] }"#,
            r#"path "secret/+/a/+" { capabilities = ["read"] }"#,
        ],
        "secret/x/a/b",
        Read,
        true,
    ),
    // KV v2 paths name the API, not the secret.
    row(
        "kv v2: data/ grant reads secrets",
        &[r#"path "secret/data/app/*" { capabilities = ["read"] }"#],
        "secret/data/app/db",
        Read,
        true,
    ),
    row(
        "kv v2: data/ grant does not list metadata/",
        &[r#"path "secret/data/app/*" { capabilities = ["read", "list"] }"#],
        "secret/metadata/app/",
        List,
        false,
    ),
    row(
        "kv v2: metadata/ grant lists",
        &[r#"path "secret/metadata/app/*" { capabilities = ["list"] }"#],
        "secret/metadata/app/",
        List,
        true,
    ),
    row(
        "kv v2: metadata/ grant does not read data/",
        &[r#"path "secret/metadata/app/*" { capabilities = ["read", "list"] }"#],
        "secret/data/app/db",
        Read,
        false,
    ),
    row(
        "kv v2: a v1-style path does not grant data/",
        &[r#"path "secret/app/*" { capabilities = ["read"] }"#],
        "secret/data/app/db",
        Read,
        false,
    ),
    row(
        "kv v2: patch needs patch",
        &[r#"path "secret/data/app/*" { capabilities = ["update"] }"#],
        "secret/data/app/db",
        Patch,
        false,
    ),
    // List requests name a prefix ending in `/`.
    row(
        "list: an exact rule without the trailing slash grants the listing",
        &[r#"path "secret/metadata/app" { capabilities = ["list"] }"#],
        "secret/metadata/app/",
        List,
        true,
    ),
    row(
        "list: the trailing-slash fallback is for list only",
        &[r#"path "secret/metadata/app" { capabilities = ["read"] }"#],
        "secret/metadata/app/",
        Read,
        false,
    ),
    // JSON policies behave the same.
    row(
        "json policy grants like hcl",
        &[r#"{"path": {"secret/data/j/*": {"capabilities": ["read"]}}}"#],
        "secret/data/j/x",
        Read,
        true,
    ),
];

fn compile(policies: &[&str]) -> Acl {
    let parsed: Vec<Policy> = policies
        .iter()
        .enumerate()
        .map(|(i, text)| Policy::parse(&format!("p{i}"), text).unwrap())
        .collect();
    Acl::new(&parsed)
}

#[test]
fn acl_table() {
    let mut failures = Vec::new();
    for row in ROWS {
        let decision = compile(row.policies).allowed(row.path, row.operation);
        if decision.is_allowed() != row.allowed {
            failures.push(format!(
                "{}: {:?} {} -> {:?}, expected allowed={}",
                row.why, row.operation, row.path, decision, row.allowed
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn deny_reasons() {
    let acl = compile(&[r#"
        path "a" { capabilities = ["deny"] }
        path "b" { capabilities = ["read"] }
    "#]);
    assert_eq!(
        acl.allowed("a", Read),
        Decision::Deny(DenyReason::ExplicitDeny)
    );
    assert_eq!(
        acl.allowed("b", Update),
        Decision::Deny(DenyReason::MissingCapability)
    );
    assert_eq!(
        acl.allowed("c", Read),
        Decision::Deny(DenyReason::NoMatchingRule)
    );
}

#[test]
fn sudo_is_reported() {
    let acl = compile(&[r#"
        path "sys/audit/*" { capabilities = ["create", "update", "sudo"] }
        path "sys/mounts/*" { capabilities = ["create", "update"] }
    "#]);
    assert!(acl.allowed("sys/audit/file", Update).is_allowed_with_sudo());
    let mounts = acl.allowed("sys/mounts/kv", Update);
    assert!(mounts.is_allowed() && !mounts.is_allowed_with_sudo());
}

#[test]
fn root_allows_everything_with_sudo() {
    let acl = Acl::root();
    assert!(acl.is_root());
    for op in [Create, Read, Update, Patch, Delete, List] {
        assert!(acl.allowed("sys/seal", op).is_allowed_with_sudo());
    }
    assert!(
        acl.capabilities("any/path")
            .contains(tresor_policy::Capability::Sudo)
    );
    let with_others = Acl::new(&[
        Policy::parse("p", r#"path "*" { capabilities = ["deny"] }"#).unwrap(),
        Policy::root(),
    ]);
    assert!(with_others.allowed("secret/x", Read).is_allowed());
}

#[test]
fn default_policy_grants_token_self_management_only() {
    let acl = Acl::new(&[Policy::builtin_default()]);
    assert!(acl.allowed("auth/token/lookup-self", Read).is_allowed());
    assert!(acl.allowed("auth/token/renew-self", Update).is_allowed());
    assert!(acl.allowed("auth/token/revoke-self", Update).is_allowed());
    assert!(acl.allowed("sys/capabilities-self", Update).is_allowed());
    assert!(!acl.allowed("auth/token/create", Update).is_allowed());
    assert!(!acl.allowed("secret/data/x", Read).is_allowed());
    assert!(!acl.allowed("sys/seal", Update).is_allowed());
}

#[test]
fn capabilities_reports_the_winning_rule() {
    let acl = compile(&[
        r#"path "secret/*" { capabilities = ["read", "list"] }"#,
        r#"path "secret/*" { capabilities = ["update"] }
           path "secret/locked" { capabilities = ["deny"] }"#,
    ]);
    assert_eq!(
        acl.capabilities("secret/x").names(),
        ["read", "update", "list"]
    );
    assert_eq!(acl.capabilities("secret/locked").names(), ["deny"]);
    assert_eq!(acl.capabilities("elsewhere").names(), ["deny"]);
    assert!(acl.capabilities("elsewhere").is_empty());
}

#[test]
fn parameter_constraints_apply_to_reads_and_writes_as_in_vault() {
    let acl = compile(&[r#"
        path "secret/restricted" {
          capabilities = ["create", "read", "list", "delete"]
          allowed_parameters = {
            "foo" = []
            "bar" = ["zip", "zap"]
          }
        }
    "#]);
    let params = |v: serde_json::Value| v.as_object().unwrap().clone();
    let ok = params(serde_json::json!({"foo": "anything", "bar": "zip"}));
    let bad = params(serde_json::json!({"bar": "nope"}));
    assert!(
        acl.allowed_with_parameters("secret/restricted", Create, &ok)
            .is_allowed()
    );
    assert_eq!(
        acl.allowed_with_parameters("secret/restricted", Create, &bad),
        Decision::Deny(DenyReason::ParameterNotAllowed)
    );
    // A read's parameters are its query string: constrained too.
    assert_eq!(
        acl.allowed_with_parameters("secret/restricted", Read, &bad),
        Decision::Deny(DenyReason::ParameterNotAllowed)
    );
    for op in [List, Delete] {
        assert!(
            acl.allowed_with_parameters("secret/restricted", op, &bad)
                .is_allowed()
        );
    }
}
