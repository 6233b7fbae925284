use super::*;
use proptest::prelude::*;
use serde_json::json;

fn get(path: &str, query: Option<&str>) -> Result<Request, RequestError> {
    Request::from_raw(&RawRequest {
        method: "GET",
        path,
        query,
        ..RawRequest::default()
    })
}

fn write(
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &str,
) -> Result<Request, RequestError> {
    Request::from_raw(&RawRequest {
        method,
        path,
        query,
        content_type: Some("application/json"),
        body: body.as_bytes(),
        ..RawRequest::default()
    })
}

#[test]
fn list_is_the_list_verb_or_get_with_list_true() {
    let listed = get("secret/metadata/app", Some("list=true")).unwrap();
    assert_eq!(listed.operation, Operation::List);
    assert_eq!(listed.path, "secret/metadata/app/");
    assert!(
        listed.data.is_empty(),
        "`list` is the operation, not a parameter"
    );
    for spelling in ["1", "t", "T", "TRUE", "True"] {
        let q = format!("list={spelling}");
        assert_eq!(get("a", Some(&q)).unwrap().operation, Operation::List);
    }
    let read = get("secret/data/app", Some("list=false")).unwrap();
    assert_eq!(read.operation, Operation::Read);
    assert_eq!(read.path, "secret/data/app");
    assert!(matches!(
        get("a", Some("list=yes")),
        Err(RequestError::Query(_))
    ));
    assert!(matches!(
        get("a", Some("list=true&list=true")),
        Err(RequestError::Query(_))
    ));
    let verb = Request::from_raw(&RawRequest {
        method: "LIST",
        path: "secret/metadata",
        ..RawRequest::default()
    })
    .unwrap();
    assert_eq!(
        (verb.operation, verb.path.as_str()),
        (Operation::List, "secret/metadata/")
    );
}

#[test]
fn spellings_of_one_path_are_one_path() {
    for spelling in [
        "secret/data/admin/root",
        "/secret/data/admin/root",
        "//secret/data/admin/root",
        "secret//data/admin/root/",
        "secret/data/admin%2Froot",
        "secret%2Fdata%2Fadmin%2Froot",
        "%73ecret/data/admin/root",
    ] {
        assert_eq!(
            get(spelling, None).unwrap().path,
            "secret/data/admin/root",
            "{spelling}"
        );
    }
}

#[test]
fn dot_segments_control_characters_whitespace_and_bad_escapes_are_refused() {
    for bad in [
        "secret/data/../admin",
        "secret/./data",
        "secret/data/%2E%2E/admin",
        "secret/data/%2e",
        "secret/data/a%00b",
        "secret/data/a%0Ab",
        "sys/policies/acl/%20admin",
        "sys/policies/acl/admin%09",
        "secret/data/%zz",
        "secret/data/%4",
        "secret/data/%FF",
        "",
        "/",
        "//",
    ] {
        assert!(
            matches!(get(bad, None), Err(RequestError::Path(_))),
            "{bad}: {:?}",
            get(bad, None)
        );
    }
    // A `%25` is a percent sign: decoded once, never twice.
    assert_eq!(
        get("secret/data/a%252e", None).unwrap().path,
        "secret/data/a%2e"
    );
}

#[test]
fn policy_names_are_lowercase_before_anyone_checks_them() {
    assert_eq!(
        get("sys/policies/acl/ADMIN", None).unwrap().path,
        "sys/policies/acl/admin"
    );
    assert_eq!(
        get("sys/policy/Admin", None).unwrap().path,
        "sys/policy/admin"
    );
    assert_eq!(
        get("secret/data/ADMIN", None).unwrap().path,
        "secret/data/ADMIN"
    );
    assert_eq!(
        get("SYS/policy/Admin", None).unwrap().path,
        "SYS/policy/Admin"
    );
}

#[test]
fn the_legacy_policy_text_parameter_has_one_name() {
    let legacy = write("PUT", "sys/policy/p", None, r#"{"rules": "x"}"#).unwrap();
    assert_eq!(Value::Object(legacy.data), json!({"policy": "x"}));
    assert!(
        write(
            "PUT",
            "sys/policy/p",
            None,
            r#"{"rules": "x", "policy": "y"}"#
        )
        .is_err()
    );
    let current = write("PUT", "sys/policies/acl/p", None, r#"{"rules": "x"}"#).unwrap();
    assert_eq!(
        Value::Object(current.data),
        json!({"rules": "x"}),
        "only the legacy path"
    );
}

#[test]
fn parameters_come_from_the_query_on_reads_and_the_body_on_writes() {
    let read = get("secret/data/app", Some("version=2&a=1&a=2&b=x+y%21")).unwrap();
    assert_eq!(
        Value::Object(read.data),
        json!({"version": "2", "a": ["1", "2"], "b": "x y!"})
    );
    let delete = Request::from_raw(&RawRequest {
        method: "DELETE",
        path: "sys/mounts/x",
        query: Some("force=true"),
        body: b"{\"ignored\": true}",
        ..RawRequest::default()
    })
    .unwrap();
    assert_eq!(Value::Object(delete.data), json!({"force": "true"}));

    let put = write("PUT", "sys/policies/acl/p", None, r#"{"policy": "x"}"#).unwrap();
    assert_eq!(
        (put.operation, Value::Object(put.data)),
        (Operation::Update, json!({"policy": "x"}))
    );
    assert_eq!(
        write("POST", "auth/token/revoke-accessor", Some("accessor=X"), "").unwrap_err(),
        RequestError::QueryOnWrite("accessor".into())
    );
    assert!(matches!(
        write("POST", "a", None, "[1]"),
        Err(RequestError::Json(_))
    ));
    assert!(matches!(
        write("POST", "a", None, "{} x"),
        Err(RequestError::Json(_))
    ));
    assert!(write("POST", "a", None, " \n").unwrap().data.is_empty());

    let form = Request::from_raw(&RawRequest {
        method: "POST",
        path: "a",
        content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
        body: b"policy=x&ttl=1h",
        ..RawRequest::default()
    })
    .unwrap();
    assert_eq!(
        Value::Object(form.data),
        json!({"policy": "x", "ttl": "1h"})
    );
}

#[test]
fn patch_needs_merge_patch_and_unknown_methods_are_refused() {
    let patch = |content_type| {
        Request::from_raw(&RawRequest {
            method: "PATCH",
            path: "secret/data/a",
            content_type,
            body: b"{\"data\": {}}",
            ..RawRequest::default()
        })
    };
    assert_eq!(
        patch(Some("application/json")).unwrap_err(),
        RequestError::PatchContentType
    );
    assert_eq!(patch(None).unwrap_err(), RequestError::PatchContentType);
    assert_eq!(
        patch(Some("application/merge-patch+json; charset=utf-8"))
            .unwrap()
            .operation,
        Operation::Patch
    );
    for method in ["OPTIONS", "TRACE", "get", "SCAN", "CONNECT"] {
        let result = Request::from_raw(&RawRequest {
            method,
            path: "a",
            ..RawRequest::default()
        });
        assert!(
            matches!(result, Err(RequestError::UnsupportedMethod(_))),
            "{method}"
        );
    }
}

#[test]
fn the_token_comes_from_one_header() {
    let with = |vault_token: &[&str], authorization: &[&str]| {
        Request::from_raw(&RawRequest {
            method: "GET",
            path: "a",
            vault_token,
            authorization,
            ..RawRequest::default()
        })
        .map(|r| r.client_token.map(|t| t.expose().to_owned()))
    };
    assert_eq!(with(&["s.abc"], &[]).unwrap().as_deref(), Some("s.abc"));
    assert_eq!(
        with(&[], &["Bearer s.abc"]).unwrap().as_deref(),
        Some("s.abc")
    );
    assert_eq!(
        with(&["s.a"], &["Bearer s.b"]).unwrap().as_deref(),
        Some("s.a")
    );
    assert_eq!(with(&[], &["Basic dXNlcg=="]).unwrap(), None);
    assert_eq!(with(&["  "], &[]).unwrap(), None);
    assert!(with(&["s.a", "s.b"], &[]).is_err());
    assert!(with(&[], &["Bearer a", "Bearer b"]).is_err());
    let token = with(&["s.secret"], &[]).unwrap();
    let debug = format!("{:?}", ClientToken::new(token.unwrap()));
    assert!(!debug.contains("s.secret"));
}

#[test]
fn wrap_ttl_is_a_duration() {
    let with = |ttl| {
        Request::from_raw(&RawRequest {
            method: "GET",
            path: "a",
            wrap_ttl: Some(ttl),
            ..RawRequest::default()
        })
    };
    assert_eq!(with("60s").unwrap().wrap_ttl, Some(Duration::from_secs(60)));
    assert_eq!(
        with("300").unwrap().wrap_ttl,
        Some(Duration::from_secs(300))
    );
    assert_eq!(with("0").unwrap().wrap_ttl, None);
    // Whole seconds, as Vault reads them (a fuzzer found 36.9 s).
    assert_eq!(
        with("0.615m").unwrap().wrap_ttl,
        Some(Duration::from_secs(36))
    );
    assert_eq!(with("500ms").unwrap().wrap_ttl, None);
    assert!(matches!(with("soon"), Err(RequestError::WrapTtl(_))));
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_-]{1,8}",
        "[a-z]{1,3}[ %+&=?#é]{1,2}[a-z]{1,3}",
        Just("admin".to_string()),
        Just("...".to_string()),
    ]
}

/// A spelling of `segments` that an attacker might send: slashes doubled,
/// leading or trailing, and characters percent-encoded at random.
fn spell(segments: &[String], doubled: &[bool], encoded: &[bool]) -> String {
    let mut out = String::from(if doubled[0] { "//" } else { "" });
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            let slash = if encoded[i % encoded.len()] {
                "%2F"
            } else {
                "/"
            };
            out.push_str(slash);
            if doubled[i % doubled.len()] {
                out.push('/');
            }
        }
        for (j, c) in segment.chars().enumerate() {
            let force = !(c.is_ascii_alphanumeric() || "-_.~".contains(c));
            if force || encoded[(i + j) % encoded.len()] {
                let mut buffer = [0u8; 4];
                for b in c.encode_utf8(&mut buffer).bytes() {
                    out.push_str(&format!("%{b:02x}"));
                }
            } else {
                out.push(c);
            }
        }
    }
    if doubled[doubled.len() - 1] {
        out.push('/');
    }
    out
}

proptest! {
    #[test]
    fn every_spelling_of_a_path_parses_to_the_same_canonical_path(
        segments in proptest::collection::vec(segment(), 1..6),
        doubled in proptest::collection::vec(any::<bool>(), 1..8),
        encoded in proptest::collection::vec(any::<bool>(), 1..8),
        list in any::<bool>(),
    ) {
        let plain = segments.join("/");
        let spelled = spell(&segments, &doubled, &encoded);
        let query = list.then_some("list=true");
        let expected = get(&spell(&segments, &[false], &[false]), query);
        prop_assert_eq!(get(&spelled, query).map(|r| r.path), expected.map(|r| r.path), "{} as {}", plain, spelled);
    }

    #[test]
    fn the_canonical_form_is_a_fixed_point(
        method in prop_oneof![Just("GET"), Just("HEAD"), Just("LIST"), Just("DELETE"), Just("PUT"), Just("POST"), Just("PATCH")],
        path in "[a-zA-Z0-9/%. +-]{0,40}",
        query in proptest::option::of("[a-z0-9=&%+.]{0,30}"),
        body in prop_oneof![Just(String::new()), Just("{\"a\":1,\"b\":[\"x\"]}".to_string()), "[ -~]{0,20}"],
        token in proptest::option::of("[ -~]{0,10}"),
    ) {
        let tokens: Vec<&str> = token.iter().map(String::as_str).collect();
        let raw = RawRequest {
            method,
            path: &path,
            query: query.as_deref(),
            content_type: Some(if method == "PATCH" { MERGE_PATCH } else { "application/json" }),
            body: body.as_bytes(),
            vault_token: &tokens,
            ..RawRequest::default()
        };
        if let Ok(request) = Request::from_raw(&raw) {
            let owned = request.to_raw();
            let token: Vec<&str> = owned.token.iter().map(String::as_str).collect();
            let again = Request::from_raw(&owned.as_raw(&token));
            prop_assert_eq!(again.as_ref(), Ok(&request), "{:?}", owned);
        }
    }
}
