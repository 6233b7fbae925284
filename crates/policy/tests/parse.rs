//! Parsing: HCL and JSON forms, and errors that name the line and the fix.

use tresor_policy::{
    Capability, Location, Policy, PolicyError, ensure_deletable, ensure_writable, normalize_name,
};

fn error(text: &str) -> PolicyError {
    Policy::parse("p", text).unwrap_err()
}

fn at(line: usize, column: usize) -> Location {
    Location { line, column }
}

#[test]
fn hcl_and_json_forms_parse_to_the_same_rules() {
    let hcl = Policy::parse(
        "p",
        r#"
# comment
path "secret/data/app/*" {
  capabilities = ["read", "list",]
  required_parameters = ["Name"]
  allowed_parameters = {
    "name" = []
    level = [1, true, "x-*"]
  }
  denied_parameters = { "*" = [] }
}
"#,
    )
    .unwrap();
    let json = Policy::parse(
        "p",
        r#"{
  "path": {
    "secret/data/app/*": {
      "capabilities": ["read", "list"],
      "required_parameters": ["Name"],
      "allowed_parameters": {"name": [], "level": [1, true, "x-*"]},
      "denied_parameters": {"*": []}
    }
  }
}"#,
    )
    .unwrap();
    assert_eq!(hcl.rules().len(), 1);
    assert_eq!(json.rules().len(), 1);
    let (h, j) = (&hcl.rules()[0], &json.rules()[0]);
    assert_eq!(h.pattern(), j.pattern());
    assert_eq!(h.capabilities(), j.capabilities());
    assert_eq!(h.parameters(), j.parameters());
    assert_eq!(h.location(), at(3, 1));
    assert!(h.capabilities().contains(Capability::List));
}

#[test]
fn json_path_may_be_a_list_of_objects() {
    let policy = Policy::parse(
        "p",
        r#"{"path": [{"a/*": {"capabilities": ["read"]}}, {"b": {"capabilities": ["list"]}}]}"#,
    )
    .unwrap();
    assert_eq!(policy.rules().len(), 2);
}

#[test]
fn unknown_capability_names_line_and_column() {
    let err = error("path \"a\" {\n  capabilities = [\n    \"read\",\n    \"raed\"\n  ]\n}\n");
    assert_eq!(
        err,
        PolicyError::UnknownCapability {
            at: at(4, 5),
            name: "raed".into()
        }
    );
    let message = err.to_string();
    assert!(message.contains("line 4, column 5"), "{message}");
    assert!(message.contains("use create, read"), "{message}");
}

#[test]
fn root_is_not_a_writable_capability() {
    assert!(matches!(
        error(r#"path "a" { capabilities = ["root"] }"#),
        PolicyError::UnknownCapability { .. }
    ));
}

#[test]
fn hcl_syntax_error_names_the_line() {
    let err = error(
        "path \"a\" {\n  capabilities = [\"read\"]\n}\npath \"b\" {\n  capabilities = [\"read\"\n}\n",
    );
    let PolicyError::HclSyntax { at: location, .. } = &err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(location.line, 6);
    assert!(err.to_string().starts_with("line 6,"), "{err}");
}

#[test]
fn json_syntax_error_names_the_line() {
    let err = error("{\n  \"path\": {\n    \"a\": {\"capabilities\": [\"read\"]},\n  }\n}");
    let PolicyError::JsonSyntax { at: location, .. } = err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(location.line, 4);
}

#[test]
fn json_unknown_capability_names_the_line() {
    let err = error(
        "{\n  \"path\": {\n    \"a\": {\n      \"capabilities\": [\"read\", \"writ\"]\n    }\n  }\n}",
    );
    assert_eq!(
        err,
        PolicyError::UnknownCapability {
            at: at(4, 32),
            name: "writ".into()
        }
    );
}

#[test]
fn structural_errors_name_the_line_and_the_fix() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "\n\npath \"secret/*/x\" { capabilities = [\"read\"] }",
            3,
            "use `+` for one segment",
        ),
        (
            "path \"a\" {\n  capability = [\"read\"]\n}",
            2,
            "allowed here: capabilities",
        ),
        (
            "path \"a\" {\n  capabilities = \"read\"\n}",
            2,
            "a list of strings",
        ),
        ("path \"a\" {\n}", 1, "grants no capabilities"),
        (
            "\npath \"a\" \"b\" {\n capabilities = [\"read\"]\n}",
            2,
            "exactly one quoted pattern",
        ),
        (
            "path \"a\" {\n capabilities = [\"read\"]\n policy = \"read\"\n}",
            3,
            "not supported",
        ),
        (
            "path \"a\" {\n capabilities = [\"read\"]\n allowed_parameters {\n }\n}",
            3,
            "`key = value`",
        ),
        (
            "path \"a\" {\n capabilities = [\"read\"]\n}\nsecret = 1",
            4,
            "unexpected `secret`",
        ),
        (
            "path \"secret/{{identity.entity.id}}/*\" {\n capabilities = [\"read\"]\n}",
            1,
            "templated",
        ),
        (
            "path \"a\" {\n capabilities = [\"read\"]\n allowed_parameters = { \"*\" = [\"x\"] }\n}",
            3,
            "an empty list",
        ),
    ];
    for (text, line, needle) in cases {
        let message = error(text).to_string();
        assert!(
            message.starts_with(&format!("line {line},")),
            "{text:?}: {message}"
        );
        assert!(message.contains(needle), "{text:?}: {message}");
    }
}

#[test]
fn empty_policies_are_rejected() {
    assert_eq!(error("   \n"), PolicyError::Empty);
    assert_eq!(error("# only a comment\n"), PolicyError::NoRules);
    assert_eq!(error("{}"), PolicyError::NoRules);
}

#[test]
fn default_policy_text_parses() {
    let policy = Policy::builtin_default();
    assert_eq!(policy.name(), "default");
    assert!(policy.rules().len() >= 4);
}

#[test]
fn names_are_normalized_like_vault() {
    assert_eq!(normalize_name("  Dev-ReadOnly ").unwrap(), "dev-readonly");
    assert_eq!(
        Policy::parse("MyPol", r#"path "a" { capabilities = ["read"] }"#)
            .unwrap()
            .name(),
        "mypol"
    );
    for bad in ["", "   ", "a/b", "a\nb"] {
        assert!(
            matches!(normalize_name(bad), Err(PolicyError::InvalidName { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn builtin_names_are_protected() {
    assert!(matches!(
        ensure_writable("root"),
        Err(PolicyError::Builtin { name: "root", .. })
    ));
    assert_eq!(ensure_writable("default").unwrap(), "default");
    assert!(matches!(
        ensure_deletable("root"),
        Err(PolicyError::Builtin { name: "root", .. })
    ));
    assert!(matches!(
        ensure_deletable("default"),
        Err(PolicyError::Builtin {
            name: "default",
            ..
        })
    ));
    assert_eq!(ensure_deletable("team").unwrap(), "team");
}

#[test]
fn the_store_never_normalizes_a_name_after_the_check() {
    // `ROOT`, ` admin` or `Default` would name another policy once
    // normalized: refused, so a request authorized for one name cannot
    // change another.
    for spelled in ["ROOT", "Default", " admin", "admin ", "Team"] {
        assert!(
            matches!(
                ensure_writable(spelled),
                Err(PolicyError::InvalidName { .. })
            ),
            "{spelled:?}"
        );
        assert!(
            matches!(
                ensure_deletable(spelled),
                Err(PolicyError::InvalidName { .. })
            ),
            "{spelled:?}"
        );
    }
    assert!(Policy::parse("root", r#"path "a" { capabilities = ["read"] }"#).is_err());
}
