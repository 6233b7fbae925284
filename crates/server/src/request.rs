//! The transport-free request and response every handler works with: the
//! HTTP layer only translates to and from these.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use zeroize::Zeroizing;

/// The operation a request asks for, as Vault names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    List,
    Write,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get | Method::Head => "read",
            Method::List => "list",
            Method::Write => "update",
            Method::Patch => "patch",
            Method::Delete => "delete",
        }
    }
}

/// A client's token: kept out of logs and `Debug`.
pub struct ClientToken(pub Zeroizing<String>);

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientToken(<redacted>)")
    }
}

#[derive(Debug)]
pub struct Request {
    pub id: String,
    pub method: Method,
    /// Without the leading `/v1/`.
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// The JSON body (an object), empty when there was none.
    pub body: Map<String, Value>,
    pub token: Option<ClientToken>,
    pub remote: Option<IpAddr>,
    /// Whether the body was sent as `application/merge-patch+json`.
    pub merge_patch: bool,
}

impl Request {
    /// A string parameter from the body, falling back to the query string.
    pub fn param_str(&self, name: &str) -> Option<String> {
        match self.body.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => self.query.get(name).cloned(),
        }
    }
}

/// What a handler answers: a status and, unless 204, a JSON body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Option<Value>,
}

impl Response {
    pub fn no_content() -> Self {
        Self {
            status: 204,
            body: None,
        }
    }

    /// Vault's envelope around `data`.
    pub fn data(request_id: &str, data: Value) -> Self {
        Self::status_data(200, request_id, data)
    }

    pub fn status_data(status: u16, request_id: &str, data: Value) -> Self {
        Self {
            status,
            body: Some(envelope(request_id, Some(data), None)),
        }
    }

    /// A body returned as it is, without the envelope (sys/health and friends).
    pub fn raw(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
        }
    }
}

pub fn envelope(request_id: &str, data: Option<Value>, auth: Option<Value>) -> Value {
    // Built field by field: `json!` would deep-copy `data` and `auth`.
    let mut body = Map::with_capacity(9);
    body.insert("request_id".into(), Value::String(request_id.to_owned()));
    body.insert("lease_id".into(), Value::String(String::new()));
    body.insert("renewable".into(), Value::Bool(false));
    body.insert("lease_duration".into(), Value::from(0));
    body.insert("data".into(), data.unwrap_or(Value::Null));
    body.insert("wrap_info".into(), Value::Null);
    body.insert("warnings".into(), Value::Null);
    body.insert("auth".into(), auth.unwrap_or(Value::Null));
    body.insert("mount_type".into(), Value::String(String::new()));
    Value::Object(body)
}

/// An error as Vault reports it: a status and `{"errors": [...]}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub errors: Vec<String>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            errors: vec![message.into()],
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn permission_denied() -> Self {
        Self::new(403, "permission denied")
    }

    pub fn not_found() -> Self {
        Self {
            status: 404,
            errors: Vec::new(),
        }
    }

    pub fn sealed() -> Self {
        Self::new(503, "Vault is sealed")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }

    pub fn into_response(self) -> Response {
        Response {
            status: self.status,
            body: Some(json!({ "errors": self.errors })),
        }
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// Reads a non-negative integer parameter, refusing other types.
pub fn u64_param(body: &Map<String, Value>, name: &str) -> Result<Option<u64>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            ApiError::bad_request(format!("`{name}` must be a non-negative integer"))
        }),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("`{name}` must be a non-negative integer"))),
        Some(_) => Err(ApiError::bad_request(format!(
            "`{name}` must be a non-negative integer"
        ))),
    }
}

/// Reads a boolean parameter (JSON booleans or the strings `true`/`false`).
pub fn bool_param(body: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("`{name}` must be a boolean"))),
        Some(_) => Err(ApiError::bad_request(format!("`{name}` must be a boolean"))),
    }
}

/// Reads a duration parameter: seconds as a number, or a string like `3h`.
pub fn duration_param(
    body: &Map<String, Value>,
    name: &str,
) -> Result<Option<std::time::Duration>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|s| Some(std::time::Duration::from_secs(s)))
            .ok_or_else(|| ApiError::bad_request(format!("`{name}` must be a duration"))),
        Some(Value::String(s)) => tresor_kv::parse_duration(s)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("`{name}`: {e}"))),
        Some(_) => Err(ApiError::bad_request(format!(
            "`{name}` must be a duration"
        ))),
    }
}

/// Reads a list of strings (a JSON array, or a comma-separated string).
pub fn strings_param(
    body: &Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<String>>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        )),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(String::from).ok_or_else(|| {
                    ApiError::bad_request(format!("`{name}` must be a list of strings"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(ApiError::bad_request(format!(
            "`{name}` must be a list of strings"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_has_vaults_fields() {
        let body = envelope("id-1", Some(json!({"k": "v"})), None);
        assert_eq!(
            body,
            json!({
                "request_id": "id-1",
                "lease_id": "",
                "renewable": false,
                "lease_duration": 0,
                "data": {"k": "v"},
                "wrap_info": null,
                "warnings": null,
                "auth": null,
                "mount_type": "",
            })
        );
    }
}
