//! The audit entry model (shaped like Vault's) and its redacted JSON form.
//!
//! Callers fill [`AuditEntry`] with raw values; only [`AuditEntry::to_redacted_json`] turns it
//! into text, and it hashes every token, accessor and data string on the way, so no code path
//! writes a raw secret.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::AuditError;
use crate::salt::Salt;

/// Whether an entry records a request (before it is served) or its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Request,
    Response,
}

/// One audit record. `response` is only written for [`EntryKind::Response`] entries.
#[derive(Clone)]
pub struct AuditEntry {
    pub kind: EntryKind,
    pub auth: Option<AuthInfo>,
    pub request: RequestInfo,
    pub response: Option<ResponseInfo>,
    /// Error message returned to the client, written as is: it must not contain secrets.
    pub error: Option<String>,
}

/// The token behind a request, or the token a response issued.
#[derive(Clone, Default)]
pub struct AuthInfo {
    /// Hashed in the log.
    pub client_token: Option<String>,
    /// Hashed in the log.
    pub accessor: Option<String>,
    pub display_name: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    /// Written as is, like Vault: token metadata is not meant to hold secrets.
    pub metadata: BTreeMap<String, String>,
    pub token_type: Option<String>,
    pub token_ttl: Option<u64>,
}

/// What the client asked for.
#[derive(Clone, Default)]
pub struct RequestInfo {
    pub id: String,
    pub operation: String,
    pub path: String,
    pub mount_type: Option<String>,
    /// Hashed in the log.
    pub client_token: Option<String>,
    /// Hashed in the log.
    pub client_token_accessor: Option<String>,
    /// Every string inside is hashed in the log.
    pub data: Option<Value>,
    pub remote_address: Option<String>,
    pub namespace: Option<String>,
}

impl RequestInfo {
    /// What the log records of a canonical request: everything the ACL and
    /// the handler see of it (the caller fills in the mount and accessor).
    pub fn of(request: &tresor_request::Request) -> Self {
        RequestInfo {
            id: request.id.clone(),
            operation: request.operation.as_str().to_owned(),
            path: request.path.clone(),
            mount_type: None,
            client_token: request.client_token.as_ref().map(|t| t.expose().to_owned()),
            client_token_accessor: None,
            data: (!request.data.is_empty()).then(|| Value::Object(request.data.clone())),
            remote_address: request.remote_address.map(|a| a.to_string()),
            namespace: None,
        }
    }
}

/// What the server answered.
#[derive(Clone, Default)]
pub struct ResponseInfo {
    pub mount_type: Option<String>,
    /// A token issued by the response (login, token create); tokens hashed in the log.
    pub auth: Option<AuthInfo>,
    /// Every string inside is hashed in the log.
    pub data: Option<Value>,
}

impl AuditEntry {
    /// The entry as one JSON object, every secret replaced by `hmac-sha256:<hex>`.
    pub fn to_redacted_json(
        &self,
        salt: &Salt,
        time: OffsetDateTime,
    ) -> Result<String, AuditError> {
        Self::to_redacted_json_all(std::slice::from_ref(self), salt, time)
            .map(|mut lines| lines.remove(0))
    }

    /// Several entries stamped with the same time. A request's entries repeat
    /// its token, accessor and data, so each distinct string is hashed once.
    pub fn to_redacted_json_all(
        entries: &[AuditEntry],
        salt: &Salt,
        time: OffsetDateTime,
    ) -> Result<Vec<String>, AuditError> {
        let time = time
            .format(&Rfc3339)
            .map_err(|e| AuditError::Encode(e.to_string()))?;
        let redactor = Redactor {
            salt,
            memo: RefCell::new(Vec::new()),
        };
        entries
            .iter()
            .map(|entry| entry.redacted_line(&redactor, &time))
            .collect()
    }

    fn redacted_line<'a>(
        &'a self,
        redactor: &Redactor<'_, 'a>,
        time: &str,
    ) -> Result<String, AuditError> {
        let line = Line {
            kind: match self.kind {
                EntryKind::Request => "request",
                EntryKind::Response => "response",
            },
            time,
            auth: self.auth.as_ref().map(|a| redactor.auth(a)),
            request: redactor.request(&self.request),
            response: match self.kind {
                EntryKind::Request => None,
                EntryKind::Response => self.response.as_ref().map(|r| redactor.response(r)),
            },
            error: self.error.as_deref(),
        };
        serde_json::to_string(&line).map_err(|e| AuditError::Encode(e.to_string()))
    }
}

/// Hashes strings under a device's salt, remembering the hashes already made
/// for the entries at hand (borrowed from them: no secret is copied).
struct Redactor<'s, 'a> {
    salt: &'s Salt,
    memo: RefCell<Vec<(&'a str, String)>>,
}

impl<'s, 'a> Redactor<'s, 'a> {
    fn hash(&self, input: &'a str) -> String {
        let mut memo = self.memo.borrow_mut();
        if let Some((_, hash)) = memo.iter().find(|(seen, _)| *seen == input) {
            return hash.clone();
        }
        let hash = self.salt.hash(input);
        memo.push((input, hash.clone()));
        hash
    }

    fn token(&self, token: Option<&'a str>) -> Option<String> {
        token.map(|t| {
            if t.is_empty() {
                String::new()
            } else {
                self.hash(t)
            }
        })
    }

    /// `value` with every string, at any depth, hashed when it is written;
    /// keys and non-string scalars stay readable.
    fn value<'r>(&'r self, value: &'a Value) -> Redacted<'r, 's, 'a> {
        Redacted {
            value,
            redactor: self,
        }
    }

    fn auth(&self, auth: &'a AuthInfo) -> AuthLine<'a> {
        AuthLine {
            client_token: self.token(auth.client_token.as_deref()),
            accessor: self.token(auth.accessor.as_deref()),
            display_name: &auth.display_name,
            policies: &auth.policies,
            token_policies: &auth.token_policies,
            metadata: &auth.metadata,
            token_type: auth.token_type.as_deref(),
            token_ttl: auth.token_ttl,
        }
    }

    fn request<'r>(&'r self, request: &'a RequestInfo) -> RequestLine<'r, 's, 'a> {
        RequestLine {
            id: &request.id,
            operation: &request.operation,
            mount_type: request.mount_type.as_deref(),
            client_token: self.token(request.client_token.as_deref()),
            client_token_accessor: self.token(request.client_token_accessor.as_deref()),
            namespace: request.namespace.as_deref().map(|id| NamespaceLine { id }),
            path: &request.path,
            data: request.data.as_ref().map(|d| self.value(d)),
            remote_address: request.remote_address.as_deref(),
        }
    }

    fn response<'r>(&'r self, response: &'a ResponseInfo) -> ResponseLine<'r, 's, 'a> {
        ResponseLine {
            mount_type: response.mount_type.as_deref(),
            auth: response.auth.as_ref().map(|a| self.auth(a)),
            data: response.data.as_ref().map(|d| self.value(d)),
        }
    }
}

/// A JSON value written with its strings hashed, without building a copy.
struct Redacted<'r, 's, 'a> {
    value: &'a Value,
    redactor: &'r Redactor<'s, 'a>,
}

impl Serialize for Redacted<'_, '_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.value {
            Value::String(s) => serializer.serialize_str(&self.redactor.hash(s)),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&self.redactor.value(item))?;
                }
                seq.end()
            }
            Value::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, item) in entries {
                    map.serialize_entry(key, &self.redactor.value(item))?;
                }
                map.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

#[derive(Serialize)]
struct Line<'r, 's, 'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<AuthLine<'a>>,
    request: RequestLine<'r, 's, 'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<ResponseLine<'r, 's, 'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct AuthLine<'a> {
    client_token: Option<String>,
    accessor: Option<String>,
    display_name: &'a str,
    policies: &'a [String],
    token_policies: &'a [String],
    metadata: &'a BTreeMap<String, String>,
    token_type: Option<&'a str>,
    token_ttl: Option<u64>,
}

#[derive(Serialize)]
struct RequestLine<'r, 's, 'a> {
    id: &'a str,
    operation: &'a str,
    mount_type: Option<&'a str>,
    client_token: Option<String>,
    client_token_accessor: Option<String>,
    namespace: Option<NamespaceLine<'a>>,
    path: &'a str,
    data: Option<Redacted<'r, 's, 'a>>,
    remote_address: Option<&'a str>,
}

#[derive(Serialize)]
struct NamespaceLine<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct ResponseLine<'r, 's, 'a> {
    mount_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<AuthLine<'a>>,
    data: Option<Redacted<'r, 's, 'a>>,
}

// Entries carry raw tokens and secret data: Debug shows only what the log shows in clear.
impl fmt::Debug for AuditEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditEntry")
            .field("kind", &self.kind)
            .field("auth", &self.auth)
            .field("request", &self.request)
            .field("response", &self.response)
            .field("error", &self.error)
            .finish()
    }
}

impl fmt::Debug for AuthInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthInfo")
            .field("display_name", &self.display_name)
            .field("policies", &self.policies)
            .field("token_policies", &self.token_policies)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RequestInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestInfo")
            .field("id", &self.id)
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("remote_address", &self.remote_address)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ResponseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseInfo")
            .field("mount_type", &self.mount_type)
            .finish_non_exhaustive()
    }
}
