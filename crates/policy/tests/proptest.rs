//! Properties: parsing and evaluation never panic, and the indexed ACL agrees with a
//! brute-force evaluation of the priority rules.

use std::cmp::Ordering;

use proptest::prelude::*;
use tresor_policy::{Acl, CapabilitySet, Operation, PathPattern, Policy};

const CAPS: [&str; 8] = [
    "create", "read", "update", "patch", "delete", "list", "sudo", "deny",
];

fn pattern() -> impl Strategy<Value = String> {
    let first = prop_oneof!["a", "ab", "\\+"];
    let rest = prop::collection::vec(prop_oneof!["a", "b", "ab", "\\+", ""], 0..4);
    (first, rest).prop_flat_map(|(first, rest)| {
        let body = std::iter::once(first)
            .chain(rest)
            .collect::<Vec<_>>()
            .join("/");
        prop_oneof![Just(body.clone()), Just(format!("{body}*"))]
    })
}

fn request_path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof!["a", "b", "ab", "abc", "x", ""], 1..6)
        .prop_map(|s| s.join("/"))
}

fn rule() -> impl Strategy<Value = (String, Vec<&'static str>)> {
    (pattern(), prop::sample::subsequence(CAPS.to_vec(), 1..4))
}

fn policy_text(rules: &[(String, Vec<&'static str>)]) -> String {
    rules
        .iter()
        .map(|(pattern, caps)| {
            let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
            format!(
                "path \"{pattern}\" {{ capabilities = [{}] }}\n",
                caps.join(", ")
            )
        })
        .collect()
}

/// Reference: among all matching patterns take the highest priority, union its capabilities.
fn brute_force(rules: &[(String, Vec<&'static str>)], path: &str) -> CapabilitySet {
    let parsed: Vec<(PathPattern, CapabilitySet)> = rules
        .iter()
        .map(|(p, caps)| {
            let set = caps
                .iter()
                .map(|c| tresor_policy::Capability::from_name(c).unwrap())
                .collect();
            (PathPattern::parse(p).unwrap(), set)
        })
        .collect();
    let Some(best) = parsed
        .iter()
        .filter(|(p, _)| p.matches(path))
        .map(|(p, _)| p)
        .max_by(|a, b| a.priority_cmp(b))
    else {
        return CapabilitySet::EMPTY;
    };
    parsed
        .iter()
        .filter(|(p, _)| p.priority_cmp(best) == Ordering::Equal)
        .fold(CapabilitySet::EMPTY, |acc, (_, caps)| acc.union(*caps))
}

proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = Policy::parse("p", &text);
    }

    #[test]
    fn parsing_policy_shaped_text_never_panics(
        text in "(path \"[a-z+*/{}]{0,8}\" \\{ capabilities = \\[(\"[a-z]{0,6}\",? ?){0,3}\\] \\}\n?){0,3}[{}\\[\\]\",= a-z]{0,10}"
    ) {
        let _ = Policy::parse("p", &text);
    }

    #[test]
    fn evaluation_never_panics(patterns in prop::collection::vec("[a-z+*/é]{0,10}", 0..6), path in "[a-z+*/é]{0,12}") {
        let text: String = patterns.iter().map(|p| format!("path \"{p}\" {{ capabilities = [\"read\"] }}\n")).collect();
        if let Ok(policy) = Policy::parse("p", &text) {
            let acl = Acl::new([&policy]);
            for op in [Operation::Create, Operation::Read, Operation::List] {
                let _ = acl.allowed(&path, op);
            }
            let _ = acl.capabilities(&path);
        }
    }

    #[test]
    fn indexed_acl_matches_brute_force(rules in prop::collection::vec(rule(), 1..8), path in request_path()) {
        let policy = Policy::parse("p", &policy_text(&rules)).unwrap();
        let acl = Acl::new([&policy]);
        prop_assert_eq!(acl.capabilities(&path), brute_force(&rules, &path));
    }
}
