//! From a canonical path to the endpoint that serves it.
//!
//! Every backend (the system backend, the token store, each mounted engine)
//! declares its endpoints in one table: a path pattern, the operations it
//! serves with a handler each, whether it needs `sudo`, and how to tell a
//! create from an update. An operation an endpoint does not list is refused
//! (405), never served by another operation's handler.

use crate::auth::Caller;
use crate::node::{Node, Unsealed};
use crate::{Error, Response, Result};
use tresor_core::MountEntry;
use tresor_kv::{KvEngine, KvV1};
use tresor_request::{Operation, Request};

/// What a handler is given: the request and everything it was decided with.
pub(crate) struct Ctx<'a> {
    pub node: &'a Node,
    pub unsealed: &'a Unsealed,
    /// `None` only on endpoints anyone may call ([`Access::Anyone`]).
    pub caller: Option<&'a Caller>,
    pub request: &'a Request,
    pub mount: Option<&'a MountEntry>,
    pub captures: &'a Captures,
}

impl Ctx<'_> {
    /// A captured part of the path (see [`Endpoint::pattern`]).
    pub fn capture(&self, name: &str) -> &str {
        self.captures.get(name)
    }

    /// The token the request was made with.
    pub fn caller(&self) -> Result<&Caller> {
        self.caller.ok_or(Error::PermissionDenied)
    }

    fn routed_mount(&self) -> Result<&MountEntry> {
        self.mount.ok_or_else(|| {
            Error::Internal("an engine's endpoint was routed without its mount".into())
        })
    }

    /// The KV version 2 engine of the mount the request was routed to.
    pub fn kv(&self) -> Result<KvEngine> {
        Ok(self.unsealed.store.kv(self.routed_mount()?)?)
    }

    /// The transit engine of the mount the request was routed to.
    pub fn transit(&self) -> Result<tresor_transit::TransitEngine> {
        Ok(self.unsealed.store.transit_of(self.routed_mount()?)?)
    }

    /// The KV version 1 engine of the mount the request was routed to.
    pub fn kv1(&self) -> Result<KvV1> {
        Ok(self.unsealed.store.kv1(self.routed_mount()?)?)
    }

    pub fn data(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.request.data
    }
}

pub(crate) type Handler = fn(&Ctx<'_>) -> Result<Response>;
pub(crate) type Existence = fn(&Ctx<'_>) -> Result<bool>;

/// One endpoint of a backend.
pub(crate) struct Endpoint {
    /// Segments separated by `/`: a literal, `:name` (one segment) or
    /// `*name` (what is left, slashes included, possibly empty) which may be
    /// followed by literals only.
    pub pattern: &'static str,
    /// The operations served; `Update` also serves `Create`.
    pub operations: &'static [(Operation, Handler)],
    /// Root-protected, as Vault's `PathsSpecial.Root`.
    pub sudo: bool,
    /// Whether a write's target exists, to tell `create` from `update`;
    /// `None`: every write is an update, as in Vault.
    pub existence: Option<Existence>,
    /// Another path (a pattern over the same captures) that reaches the same
    /// thing, such as Vault's legacy `sys/policy/:name`: a `deny` written for
    /// either spelling holds for both.
    pub alias: Option<&'static str>,
    pub access: Access,
}

/// Who may call an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// A token whose policies allow the operation on the path.
    Policy,
    /// Any valid token: the handler decides what it may see (as Vault's
    /// `sys/internal/ui/mounts/<path>`).
    AnyToken,
    /// Anyone, with or without a token (`sys/wrapping/lookup`); still
    /// audited.
    Anyone,
}

impl Endpoint {
    /// Serves `operations` on `pattern` to tokens whose policies allow them.
    pub const fn new(pattern: &'static str, operations: &'static [(Operation, Handler)]) -> Self {
        Endpoint {
            pattern,
            operations,
            sudo: false,
            existence: None,
            alias: None,
            access: Access::Policy,
        }
    }

    /// Needs `sudo` too.
    pub const fn sudo(self) -> Self {
        Endpoint { sudo: true, ..self }
    }

    /// Tells a create from an update with `existence`.
    pub const fn existence(self, existence: Existence) -> Self {
        Endpoint {
            existence: Some(existence),
            ..self
        }
    }

    /// Also reached through `alias` (see [`Endpoint::alias`]).
    pub const fn alias(self, alias: &'static str) -> Self {
        Endpoint {
            alias: Some(alias),
            ..self
        }
    }

    pub const fn access(self, access: Access) -> Self {
        Endpoint { access, ..self }
    }

    /// The handler for `operation`, if this endpoint serves it.
    pub fn handler(&self, operation: Operation) -> Option<Handler> {
        let wanted = match operation {
            Operation::Create => Operation::Update,
            other => other,
        };
        self.operations
            .iter()
            .find(|(op, _)| *op == wanted)
            .map(|(_, handler)| *handler)
    }
}

impl Captures {
    /// `pattern` with its `:name` segments replaced by what was captured.
    pub fn fill(&self, pattern: &str) -> String {
        pattern
            .split('/')
            .map(|part| match part.strip_prefix(':') {
                Some(name) => self.get(name),
                None => part,
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// The parts of a path an endpoint's pattern captured.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Captures(Vec<(&'static str, String)>);

impl Captures {
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }
}

/// The first endpoint of `table` whose pattern matches `rest`.
pub(crate) fn find<'t>(table: &'t [Endpoint], rest: &str) -> Option<(&'t Endpoint, Captures)> {
    table
        .iter()
        .find_map(|endpoint| matches(endpoint.pattern, rest).map(|c| (endpoint, c)))
}

/// Matches `path` (a path inside a backend; a list's ends in `/`) against a
/// pattern (see [`Endpoint::pattern`]).
pub(crate) fn matches(pattern: &'static str, path: &str) -> Option<Captures> {
    let mut captures = Vec::new();
    let mut rest = path;
    let mut parts = pattern.split('/');
    while let Some(part) = parts.next() {
        if let Some(name) = part.strip_prefix('*') {
            let suffix: Vec<&str> = parts.collect();
            let captured = if suffix.is_empty() {
                rest
            } else {
                let tail = format!("/{}", suffix.join("/"));
                let captured = rest.strip_suffix(tail.as_str())?;
                if captured.is_empty() {
                    return None;
                }
                captured
            };
            captures.push((name, captured.to_owned()));
            return Some(Captures(captures));
        }
        let (segment, after) = match rest.split_once('/') {
            Some((segment, after)) => (segment, Some(after)),
            None => (rest, None),
        };
        if let Some(name) = part.strip_prefix(':') {
            if segment.is_empty() {
                return None;
            }
            captures.push((name, segment.to_owned()));
        } else if segment != part {
            return None;
        }
        match after {
            Some(after) => rest = after,
            None => {
                // The path ends here: only a final `*name` may still match (empty).
                return match parts.next() {
                    None => Some(Captures(captures)),
                    Some(last) if last.starts_with('*') && parts.next().is_none() => {
                        captures.push((&last[1..], String::new()));
                        Some(Captures(captures))
                    }
                    Some(_) => None,
                };
            }
        }
    }
    // The pattern ended with a segment; a path with more left (other than
    // a list's final `/`) is another endpoint.
    rest.is_empty().then_some(Captures(captures))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(pattern: &'static str, path: &str) -> Option<Vec<(&'static str, String)>> {
        matches(pattern, path).map(|c| c.0)
    }

    #[test]
    fn literals_names_and_rests() {
        let one = |n: &'static str, v: &str| Some(vec![(n, v.to_owned())]);
        assert_eq!(captured("config", "config"), Some(vec![]));
        assert_eq!(captured("config", "config/"), Some(vec![]));
        assert_eq!(captured("config", "configs"), None);
        assert_eq!(captured("config", "config/x"), None);
        assert_eq!(captured("data/*path", "data/a/b"), one("path", "a/b"));
        assert_eq!(captured("data/*path", "data"), one("path", ""));
        assert_eq!(captured("metadata/*path", "metadata/"), one("path", ""));
        assert_eq!(captured("metadata/*path", "metadata/a/"), one("path", "a/"));
        assert_eq!(captured("data/*path", "database/x"), None);
        assert_eq!(
            captured("policies/acl/:name", "policies/acl/admin"),
            one("name", "admin")
        );
        assert_eq!(captured("policies/acl/:name", "policies/acl"), None);
        assert_eq!(captured("policies/acl/:name", "policies/acl/a/b"), None);
        assert_eq!(captured("policies/acl", "policies/acl/"), Some(vec![]));
    }

    #[test]
    fn a_rest_followed_by_literals_is_never_empty() {
        let one = |v: &str| Some(vec![("path", v.to_owned())]);
        assert_eq!(
            captured("mounts/*path/tune", "mounts/secret/tune"),
            one("secret")
        );
        assert_eq!(
            captured("mounts/*path/tune", "mounts/team/a/tune"),
            one("team/a")
        );
        assert_eq!(captured("mounts/*path/tune", "mounts/tune"), None);
        assert_eq!(captured("mounts/*path/tune", "mounts/secret"), None);
        assert_eq!(
            captured("mounts/*path", "mounts/secret/tune"),
            one("secret/tune")
        );
    }
}
