use crate::Operation;
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::time::Duration;
use zeroize::Zeroizing;

/// A client's token: kept out of logs and `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientToken(Zeroizing<String>);

impl ClientToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(Zeroizing::new(token.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientToken(<redacted>)")
    }
}

/// A canonical request (see the crate documentation for the rules).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Names the request in its audit entries; set by the edge.
    pub id: String,
    pub operation: Operation,
    /// Canonical, without a leading `/`; a list's path ends in `/`.
    pub path: String,
    /// Every parameter of the request, from the one place Vault reads them
    /// for its operation.
    pub data: Map<String, Value>,
    pub client_token: Option<ClientToken>,
    pub remote_address: Option<IpAddr>,
    /// `X-Vault-Wrap-TTL`: answer with a wrapping token instead.
    pub wrap_ttl: Option<Duration>,
}

impl Request {
    /// A request made inside the server (no client, no parameters).
    pub fn internal(operation: Operation, path: impl Into<String>) -> Self {
        Self {
            id: String::new(),
            operation,
            path: path.into(),
            data: Map::new(),
            client_token: None,
            remote_address: None,
            wrap_ttl: None,
        }
    }

    /// A string parameter (numbers and booleans as their text).
    pub fn param_str(&self, name: &str) -> Option<String> {
        match self.data.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        }
    }
}
