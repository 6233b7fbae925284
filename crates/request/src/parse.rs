//! From the parts of an HTTP request to a canonical [`Request`], and back
//! (the way back exists so tests can check that the canonical form is a
//! fixed point).

use crate::{ClientToken, Operation, Request, RequestError};
use serde_json::{Map, Value};
use std::time::Duration;

/// The parts of an HTTP request the server reads, as sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawRequest<'a> {
    pub method: &'a str,
    /// The path after `/v1/`, still percent-encoded.
    pub path: &'a str,
    /// Everything after `?`, still percent-encoded.
    pub query: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// Every `X-Vault-Token` header value.
    pub vault_token: &'a [&'a str],
    /// Every `Authorization` header value.
    pub authorization: &'a [&'a str],
    /// The `X-Vault-Wrap-TTL` header, if sent.
    pub wrap_ttl: Option<&'a str>,
}

const MERGE_PATCH: &str = "application/merge-patch+json";
const FORM: &str = "application/x-www-form-urlencoded";

impl Request {
    /// The canonical request for these parts; `id` and `remote_address` are
    /// left for the edge to fill in.
    pub fn from_raw(raw: &RawRequest<'_>) -> Result<Request, RequestError> {
        let query = parse_pairs(raw.query.unwrap_or_default()).map_err(RequestError::Query)?;
        let (operation, data) = match raw.method {
            // HEAD is a GET whose answer has no body.
            "GET" | "HEAD" => {
                let mut data = query;
                let list = match data.get("list") {
                    Some(Value::String(text)) => parse_bool(text).ok_or_else(|| {
                        RequestError::Query(format!("`list` must be true or false, not `{text}`"))
                    })?,
                    Some(_) => {
                        return Err(RequestError::Query("`list` was given twice".into()));
                    }
                    None => false,
                };
                if list {
                    data.remove("list");
                    (Operation::List, data)
                } else {
                    (Operation::Read, data)
                }
            }
            "LIST" => (Operation::List, query),
            "DELETE" => (Operation::Delete, query),
            "POST" | "PUT" => {
                refuse_query_on_write(&query)?;
                (Operation::Update, parse_body(raw.content_type, raw.body)?)
            }
            "PATCH" => {
                refuse_query_on_write(&query)?;
                if media_type(raw.content_type) != Some(MERGE_PATCH) {
                    return Err(RequestError::PatchContentType);
                }
                (Operation::Patch, parse_json_body(raw.body)?)
            }
            other => return Err(RequestError::UnsupportedMethod(other.to_owned())),
        };
        let path = canonical_path(raw.path, operation == Operation::List)?;
        let data = legacy_parameters(&path, operation, data)?;
        Ok(Request {
            id: String::new(),
            operation,
            path,
            data,
            client_token: client_token(raw.vault_token, raw.authorization)?,
            remote_address: None,
            wrap_ttl: raw.wrap_ttl.map(wrap_ttl).transpose()?.flatten(),
        })
    }

    /// HTTP parts that [`Request::from_raw`] turns back into this request.
    pub fn to_raw(&self) -> OwnedRaw {
        let method = match self.operation {
            Operation::Read => "GET",
            Operation::List => "LIST",
            Operation::Create | Operation::Update => "PUT",
            Operation::Patch => "PATCH",
            Operation::Delete => "DELETE",
        };
        let mut path: Vec<String> = self
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(encode)
            .collect();
        if self.operation == Operation::List {
            path.push(String::new());
        }
        let (query, body) = if self.operation.writes() {
            let body = serde_json::to_vec(&Value::Object(self.data.clone()))
                .expect("JSON values serialize");
            (None, body)
        } else {
            (Some(encode_pairs(&self.data)), Vec::new())
        };
        OwnedRaw {
            method,
            path: path.join("/"),
            query,
            content_type: if self.operation == Operation::Patch {
                MERGE_PATCH
            } else {
                "application/json"
            },
            body,
            token: self.client_token.as_ref().map(|t| t.expose().to_owned()),
            wrap_ttl: self.wrap_ttl.map(|d| format!("{}s", d.as_secs())),
        }
    }
}

/// Owned HTTP parts, from [`Request::to_raw`].
#[derive(Debug, Clone)]
pub struct OwnedRaw {
    pub method: &'static str,
    pub path: String,
    pub query: Option<String>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub token: Option<String>,
    pub wrap_ttl: Option<String>,
}

impl OwnedRaw {
    /// Borrows these parts as a [`RawRequest`]; `token` must outlive it.
    pub fn as_raw<'a>(&'a self, token: &'a [&'a str]) -> RawRequest<'a> {
        RawRequest {
            method: self.method,
            path: &self.path,
            query: self.query.as_deref(),
            content_type: Some(self.content_type),
            body: &self.body,
            vault_token: token,
            authorization: &[],
            wrap_ttl: self.wrap_ttl.as_deref(),
        }
    }
}

/// Decodes once, drops empty segments (so `a//b`, `/a` and `a/` are `a/b`
/// and `a`), refuses `.` and `..` segments, control characters and
/// whitespace around a segment, lowercases policy names (the policy store
/// keeps them lowercase, as Vault does), and ends a list's path with `/`.
fn canonical_path(raw: &str, list: bool) -> Result<String, RequestError> {
    let decoded = decode(raw, false).map_err(RequestError::Path)?;
    if decoded.chars().any(char::is_control) {
        return Err(RequestError::Path("control characters are not allowed"));
    }
    let mut segments: Vec<String> = Vec::new();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." {
            return Err(RequestError::Path(
                "`.` and `..` segments are not allowed; send the path they stand for",
            ));
        }
        if segment.trim() != segment {
            return Err(RequestError::Path(
                "a path segment may not start or end with whitespace",
            ));
        }
        segments.push(segment.to_owned());
    }
    if segments.is_empty() {
        return Err(RequestError::Path("the path is empty"));
    }
    let names_from = match segments.as_slice() {
        [sys, policies, acl, _, ..] if sys == "sys" && policies == "policies" && acl == "acl" => 3,
        [sys, policy, _, ..] if sys == "sys" && policy == "policy" => 2,
        _ => segments.len(),
    };
    for name in &mut segments[names_from..] {
        *name = name.to_lowercase();
    }
    let mut path = segments.join("/");
    if list {
        path.push('/');
    }
    Ok(path)
}

/// Vault's legacy `sys/policy/<name>` takes the text as `rules` as well as
/// `policy`: the canonical request names it `policy` either way, so the
/// parameter constraints on `policy` see it under the name they know.
fn legacy_parameters(
    path: &str,
    operation: Operation,
    mut data: Map<String, Value>,
) -> Result<Map<String, Value>, RequestError> {
    if !operation.writes() || !path.starts_with("sys/policy/") {
        return Ok(data);
    }
    if let Some(rules) = data.remove("rules") {
        if data.contains_key("policy") {
            return Err(RequestError::Body(
                "send the policy's text once, as `policy` (or `rules`), not both".into(),
            ));
        }
        data.insert("policy".into(), rules);
    }
    Ok(data)
}

fn refuse_query_on_write(query: &Map<String, Value>) -> Result<(), RequestError> {
    if query.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = query.keys().map(String::as_str).collect();
    Err(RequestError::QueryOnWrite(names.join(", ")))
}

fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Map<String, Value>, RequestError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let looks_like_json = matches!(first, Some(b'{' | b'['));
    if media_type(content_type) == Some(FORM) && first.is_some() && !looks_like_json {
        let text = std::str::from_utf8(body)
            .map_err(|_| RequestError::Body("the form is not UTF-8".into()))?;
        return parse_pairs(text).map_err(RequestError::Body);
    }
    parse_json_body(body)
}

fn parse_json_body(body: &[u8]) -> Result<Map<String, Value>, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RequestError::Json("the body must be a JSON object".into())),
        Err(e) => Err(RequestError::Json(e.to_string())),
    }
}

/// The media type of a `Content-Type` value, without its parameters.
fn media_type(content_type: Option<&str>) -> Option<&str> {
    content_type
        .map(|c| c.split(';').next().unwrap_or_default().trim())
        .filter(|c| !c.is_empty())
}

fn client_token(
    vault_token: &[&str],
    authorization: &[&str],
) -> Result<Option<ClientToken>, RequestError> {
    let token = match (vault_token, authorization) {
        ([], []) => return Ok(None),
        ([token], _) => *token,
        ([], [value]) => match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token,
            // Another scheme is meant for someone else (a proxy): not a token.
            _ => return Ok(None),
        },
        ([_, _, ..], _) => return Err(RequestError::Token("send X-Vault-Token once")),
        ([], [_, _, ..]) => return Err(RequestError::Token("send Authorization once")),
    };
    let token = token.trim();
    Ok((!token.is_empty()).then(|| ClientToken::new(token)))
}

/// In whole seconds, as Vault reads it (`ParseDurationSecond`).
fn wrap_ttl(text: &str) -> Result<Option<Duration>, RequestError> {
    let ttl = parse_duration(text).map_err(RequestError::WrapTtl)?;
    let seconds = Duration::from_secs(ttl.as_secs());
    Ok((!seconds.is_zero()).then_some(seconds))
}

/// Parses a duration as Vault accepts one: `90s`, `3h`, `1h30m`, `3h0m0s`,
/// or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| format!("invalid duration `{text}`: {e}"));
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("invalid duration `{text}` ({e}); use forms like `30s`, `3h` or `1h30m`")
    })
}

/// Go's `strconv.ParseBool`, which Vault uses for `list`.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// `k=v&k2=v2` pairs (a query string or a form), decoded; a name given more
/// than once gets the list of its values, as Vault does.
fn parse_pairs(text: &str) -> Result<Map<String, Value>, String> {
    let mut data = Map::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name, true).map_err(|e| format!("parameter name: {e}"))?;
        let value = decode(value, true).map_err(|e| format!("value of `{name}`: {e}"))?;
        if name.is_empty() {
            return Err("a parameter has no name".into());
        }
        if name.chars().any(char::is_control) {
            return Err("control characters in a parameter name".into());
        }
        match data.get_mut(&name) {
            None => {
                data.insert(name, Value::String(value));
            }
            Some(Value::Array(values)) => values.push(Value::String(value)),
            Some(first) => {
                let first = first.take();
                data.insert(name, Value::Array(vec![first, Value::String(value)]));
            }
        }
    }
    Ok(data)
}

fn encode_pairs(data: &Map<String, Value>) -> String {
    let mut pairs = Vec::new();
    for (name, value) in data {
        let values = match value {
            Value::Array(values) => values.iter().collect(),
            single => vec![single],
        };
        for value in values {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            pairs.push(format!("{}={}", encode(name), encode(&text)));
        }
    }
    pairs.join("&")
}

/// Percent-decoding, once; `+` is a space in query strings and forms only.
fn decode(text: &str, plus_is_space: bool) -> Result<String, &'static str> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
                let (Some(high), Some(low)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                    return Err("`%` must be followed by two hex digits");
                };
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the decoded text is not UTF-8")
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
