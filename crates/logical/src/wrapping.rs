//! Response wrapping: a response kept for a single-use wrapping token in
//! that token's cubbyhole, only the token handed out; unwrapped once.
//!
//! A wrapping token carries the built-in `response-wrapping` policy only,
//! which allows looking itself up and unwrapping; unwrapping revokes it
//! (with its cubbyhole), and only the request whose revocation succeeded
//! gets the response, so two racing unwraps cannot both have it.

use crate::node::Unsealed;
use crate::{Envelope, Error, Response, Result};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};
use tresor_kv::{KvV1, SecretMap};
use tresor_policy::RESPONSE_WRAPPING_POLICY_NAME;
use tresor_tokens::{CreateRequest, Token, TokenEntry};

/// The key of the wrapped response in the wrapping token's cubbyhole.
const RESPONSE_KEY: &str = "response";

/// Whether a response has something to wrap (an empty answer has not).
pub(crate) fn wrappable(response: &Response) -> bool {
    matches!(response, Response::Envelope(e) if e.data.is_some() || e.auth.is_some())
}

/// `response`, kept for a new wrapping token that lives `ttl`; the answer
/// holds only that token (`wrap_info`).
pub(crate) fn wrap(
    u: &Unsealed,
    creation_path: &str,
    ttl: Duration,
    response: &Response,
) -> Result<Response> {
    let Response::Envelope(envelope) = response else {
        return Err(Error::Internal("only an envelope can be wrapped".into()));
    };
    let wrapped = json!({
        "data": envelope.data,
        "auth": envelope.auth,
        "warnings": envelope.warnings,
    });
    let wrapped_accessor = envelope
        .auth
        .as_ref()
        .and_then(|a| a.get("accessor"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let (token, entry) = u.tokens.create(
        None,
        CreateRequest {
            policies: vec![RESPONSE_WRAPPING_POLICY_NAME.into()],
            no_default_policy: true,
            ttl,
            explicit_max_ttl: ttl,
            renewable: false,
            path: Some(creation_path.to_owned()),
            ..CreateRequest::default()
        },
    )?;
    let mut kept = serde_json::Map::new();
    kept.insert(RESPONSE_KEY.into(), Value::String(wrapped.to_string()));
    cubbyhole(u, &token)?.write(RESPONSE_KEY, &SecretMap::from_map(kept))?;
    let now = SystemTime::now();
    Ok(Response::Envelope(Envelope {
        wrap_info: Some(json!({
            "token": token.expose(),
            "accessor": entry.accessor().expose(),
            "ttl": entry.ttl(now).as_secs(),
            "creation_time": humantime::format_rfc3339_nanos(entry.creation_time()).to_string(),
            "creation_path": creation_path,
            "wrapped_accessor": wrapped_accessor,
        })),
        ..Envelope::default()
    }))
}

fn cubbyhole(u: &Unsealed, token: &Token) -> Result<KvV1> {
    Ok(KvV1::new(
        std::sync::Arc::clone(u.store.barrier()),
        u.tokens.private_prefix(token)?,
    ))
}

fn invalid() -> Error {
    Error::bad_request("wrapping token is not valid or does not exist")
}

/// The entry of `token` if it is a live wrapping token.
fn wrapping_entry(u: &Unsealed, token: &Token) -> Result<TokenEntry> {
    let entry = u.tokens.lookup(token)?.ok_or_else(invalid)?;
    if entry.policies() != [RESPONSE_WRAPPING_POLICY_NAME] {
        return Err(invalid());
    }
    Ok(entry)
}

/// The response `token` keeps, read without spending it.
fn kept(u: &Unsealed, token: &Token) -> Result<Value> {
    let entry = cubbyhole(u, token)?
        .read(RESPONSE_KEY)?
        .ok_or_else(invalid)?;
    let text = entry
        .as_map()
        .get(RESPONSE_KEY)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Internal("a wrapped response is unreadable".into()))?;
    serde_json::from_str(text)
        .map_err(|_| Error::Internal("a wrapped response is unreadable".into()))
}

/// The response `token` kept; the token is spent.
pub(crate) fn unwrap(u: &Unsealed, token: &Token) -> Result<Response> {
    wrapping_entry(u, token)?;
    let wrapped = kept(u, token)?;
    // Only the one unwrap that revokes the token may answer.
    if !u.tokens.revoke(token)? {
        return Err(invalid());
    }
    let warnings = wrapped["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let field = |name: &str| Some(wrapped[name].clone()).filter(|v| !v.is_null());
    Ok(Response::Envelope(Envelope {
        data: field("data"),
        auth: field("auth"),
        warnings,
        ..Envelope::default()
    }))
}

/// What `token` wraps, without unwrapping it.
pub(crate) fn lookup(u: &Unsealed, token: &Token) -> Result<Response> {
    let entry = wrapping_entry(u, token)?;
    Ok(Response::data(json!({
        "creation_path": entry.path(),
        "creation_time": humantime::format_rfc3339_nanos(entry.creation_time()).to_string(),
        "creation_ttl": entry.creation_ttl().as_secs(),
    })))
}

/// The same response under a new wrapping token (same path and TTL); the
/// old one is spent.
pub(crate) fn rewrap(u: &Unsealed, token: &Token) -> Result<Response> {
    let entry = wrapping_entry(u, token)?;
    let wrapped = kept(u, token)?;
    let response = Response::Envelope(Envelope {
        data: Some(wrapped["data"].clone()).filter(|v| !v.is_null()),
        auth: Some(wrapped["auth"].clone()).filter(|v| !v.is_null()),
        ..Envelope::default()
    });
    let rewrapped = wrap(u, entry.path(), entry.creation_ttl(), &response)?;
    if !u.tokens.revoke(token)? {
        if let Response::Envelope(Envelope {
            wrap_info: Some(info),
            ..
        }) = &rewrapped
            && let Some(new) = info["token"].as_str()
        {
            u.tokens.revoke(&Token::new(new))?;
        }
        return Err(invalid());
    }
    Ok(rewrapped)
}
