//! Compiled access control lists: many policies merged into one fast lookup structure.

use std::cmp::Reverse;
use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::capability::{Capability, CapabilitySet};
use crate::params::ParameterRules;
use crate::pattern::PathPattern;
use crate::policy::Policy;
use tresor_request::Operation;

/// The outcome of an access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Permitted. `sudo` tells whether the matched rule also grants `sudo`, which
    /// root-protected endpoints require on top of the operation's capability.
    Allow {
        sudo: bool,
    },
    Deny(DenyReason),
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// Allowed, and with `sudo`: what a root-protected endpoint needs.
    pub fn is_allowed_with_sudo(self) -> bool {
        self == Decision::Allow { sudo: true }
    }
}

/// Why access was refused; useful for logs, never shown in more detail than "permission denied".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No pattern of any policy matches the path.
    NoMatchingRule,
    /// The highest-priority matching pattern carries `deny`.
    ExplicitDeny,
    /// The matching pattern lacks the operation's capability.
    MissingCapability,
    /// A `required_parameters` entry is absent from the request.
    RequiredParameterMissing,
    /// A parameter or value is listed in `denied_parameters`.
    ParameterDenied,
    /// A parameter or value is not listed in `allowed_parameters`.
    ParameterNotAllowed,
}

/// The merged rule of one pattern across all policies.
#[derive(Debug, Clone)]
struct Rule {
    capabilities: CapabilitySet,
    parameters: ParameterRules,
}

#[derive(Debug, Clone)]
struct WildcardRule {
    pattern: PathPattern,
    rule: Rule,
}

/// A set of policies compiled for evaluation.
///
/// Exact patterns live in a hash map. Wildcard patterns are grouped by their literal prefix
/// (the text before the first wildcard) and each group is sorted by priority. Since "first
/// wildcard occurs later" is the top priority rule, trying prefixes of the path from the
/// longest down, and within a group the first pattern that matches, finds the winning
/// pattern without scanning unrelated rules.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Rule>,
    wildcard: HashMap<String, Vec<WildcardRule>>,
    /// Distinct literal-prefix lengths of `wildcard`, longest first.
    prefix_lens: Vec<usize>,
}

impl Acl {
    /// Compiles policies. The same pattern in several policies gets the union of their
    /// capabilities (with `deny` winning); a `root` policy makes the whole ACL root.
    pub fn new<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Acl {
        let mut merged: HashMap<String, (PathPattern, Rule)> = HashMap::new();
        let mut root = false;
        for policy in policies {
            root |= policy.is_root();
            for path_rule in policy.rules() {
                let pattern = path_rule.pattern();
                merged
                    .entry(pattern.as_str().to_owned())
                    .and_modify(|(_, rule)| {
                        rule.capabilities = rule.capabilities.union(path_rule.capabilities());
                        rule.parameters.merge(path_rule.parameters());
                    })
                    .or_insert_with(|| {
                        let rule = Rule {
                            capabilities: path_rule.capabilities(),
                            parameters: path_rule.parameters().clone(),
                        };
                        (pattern.clone(), rule)
                    });
            }
        }
        let mut acl = Acl {
            root,
            ..Acl::default()
        };
        for (text, (pattern, rule)) in merged {
            if pattern.is_exact() {
                acl.exact.insert(text, rule);
            } else {
                acl.wildcard
                    .entry(pattern.literal_prefix().to_owned())
                    .or_default()
                    .push(WildcardRule { pattern, rule });
            }
        }
        for group in acl.wildcard.values_mut() {
            group.sort_by(|a, b| b.pattern.priority_cmp(&a.pattern));
        }
        acl.prefix_lens = acl.wildcard.keys().map(String::len).collect();
        acl.prefix_lens.sort_unstable_by_key(|len| Reverse(*len));
        acl.prefix_lens.dedup();
        acl
    }

    /// An ACL that allows everything, including `sudo`.
    pub fn root() -> Acl {
        Acl::new([&Policy::root()])
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Checks an operation on a path, with no request parameters.
    pub fn allowed(&self, path: &str, operation: Operation) -> Decision {
        self.allowed_with_parameters(path, operation, &Map::new())
    }

    /// Checks an operation on a path; for read, create, update and patch (as Vault does), the
    /// request's top-level parameters are checked against the matched rule's constraints.
    pub fn allowed_with_parameters(
        &self,
        path: &str,
        operation: Operation,
        parameters: &Map<String, Value>,
    ) -> Decision {
        if self.root {
            return Decision::Allow { sudo: true };
        }
        let Some(rule) = self.matching_rule(path, operation) else {
            return Decision::Deny(DenyReason::NoMatchingRule);
        };
        let capabilities = rule.capabilities;
        if capabilities.is_deny() {
            return Decision::Deny(DenyReason::ExplicitDeny);
        }
        if !capabilities.contains(Capability::required_for(operation)) {
            return Decision::Deny(DenyReason::MissingCapability);
        }
        if checks_parameters(operation)
            && let Err(reason) = rule.parameters.check(parameters)
        {
            return Decision::Deny(reason);
        }
        Decision::Allow {
            sudo: capabilities.contains(Capability::Sudo),
        }
    }

    /// The capabilities the winning pattern grants on a path (empty if none matches).
    pub fn capabilities(&self, path: &str) -> CapabilitySet {
        if self.root {
            return CapabilitySet::all_granting();
        }
        self.matching_rule(path, Operation::Read)
            .map_or(CapabilitySet::EMPTY, |rule| rule.capabilities)
    }

    fn matching_rule(&self, path: &str, operation: Operation) -> Option<&Rule> {
        if let Some(rule) = self.exact.get(path) {
            return Some(rule);
        }
        // List requests name a prefix ending in `/`; Vault lets an exact rule without the
        // trailing slash grant them too.
        if operation == Operation::List
            && let Some(rule) = path.strip_suffix('/').and_then(|p| self.exact.get(p))
        {
            return Some(rule);
        }
        self.prefix_lens
            .iter()
            .filter(|len| **len <= path.len() && path.is_char_boundary(**len))
            .filter_map(|len| self.wildcard.get(&path[..*len]))
            .find_map(|group| group.iter().find(|w| w.pattern.matches(path)))
            .map(|w| &w.rule)
    }
}

/// Operations whose parameters the constraints apply to: those that read
/// parameters to act on (a read's are its query string), as in Vault.
fn checks_parameters(operation: Operation) -> bool {
    matches!(
        operation,
        Operation::Read | Operation::Create | Operation::Update | Operation::Patch
    )
}
