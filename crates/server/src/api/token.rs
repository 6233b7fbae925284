//! `auth/token/*`: create, look up, renew and revoke tokens.

use crate::auth::{Caller, token_error};
use crate::request::{
    ApiError, ApiResult, Method, Request, Response, bool_param, duration_param, strings_param,
    u64_param,
};
use crate::state::Unsealed;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};
use tresor_tokens::{Accessor, CreateRequest, Token, TokenEntry};

/// Token endpoints that need `sudo`, as in Vault.
pub fn needs_sudo(path: &str) -> bool {
    matches!(path, "auth/token/accessors" | "auth/token/revoke-orphan")
}

pub fn handle(u: &Unsealed, req: &Request, caller: &Caller, rest: &str) -> ApiResult {
    match (rest, req.method) {
        ("create" | "create-orphan", Method::Write) => {
            create(u, req, caller, rest == "create-orphan")
        }
        ("lookup-self", Method::Get | Method::Write) => {
            Ok(lookup_response(req, &caller.entry, Some(&caller.token)))
        }
        ("lookup", Method::Write | Method::Get) => {
            let token = token_param(req)?;
            let entry = u
                .tokens
                .lookup(&token)
                .map_err(token_error)?
                .ok_or_else(bad_token)?;
            Ok(lookup_response(req, &entry, Some(&token)))
        }
        ("lookup-accessor", Method::Write) => {
            let accessor = accessor_param(req)?;
            let entry = u
                .tokens
                .lookup_accessor(&accessor)
                .map_err(token_error)?
                .ok_or_else(bad_token)?;
            Ok(lookup_response(req, &entry, None))
        }
        ("renew-self", Method::Write) => {
            let entry = u
                .tokens
                .renew(&caller.token, increment(req)?)
                .map_err(token_error)?;
            Ok(auth_response(req, &entry, Some(&caller.token)))
        }
        ("renew", Method::Write) => {
            let token = token_param(req)?;
            let entry = u
                .tokens
                .renew(&token, increment(req)?)
                .map_err(token_error)?;
            Ok(auth_response(req, &entry, Some(&token)))
        }
        ("renew-accessor", Method::Write) => {
            let accessor = accessor_param(req)?;
            let entry = u
                .tokens
                .renew_accessor(&accessor, increment(req)?)
                .map_err(token_error)?;
            Ok(auth_response(req, &entry, None))
        }
        ("revoke-self", Method::Write) => {
            u.tokens.revoke(&caller.token).map_err(token_error)?;
            Ok(Response::no_content())
        }
        ("revoke", Method::Write) => {
            u.tokens.revoke(&token_param(req)?).map_err(token_error)?;
            Ok(Response::no_content())
        }
        ("revoke-orphan", Method::Write) => {
            u.tokens
                .revoke_orphan(&token_param(req)?)
                .map_err(token_error)?;
            Ok(Response::no_content())
        }
        ("revoke-accessor", Method::Write) => {
            u.tokens
                .revoke_accessor(&accessor_param(req)?)
                .map_err(token_error)?;
            Ok(Response::no_content())
        }
        ("accessors", Method::List) | ("accessors", Method::Get) => {
            let limit = req
                .query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(usize::MAX);
            let page = u
                .tokens
                .list_accessors(req.query.get("after").map(String::as_str), limit)
                .map_err(token_error)?;
            let keys: Vec<&str> = page.accessors.iter().map(|a| a.expose()).collect();
            Ok(Response::data(
                &req.id,
                json!({ "keys": keys, "next": page.next }),
            ))
        }
        ("tidy", Method::Write) => {
            let removed = u.tokens.tidy(SystemTime::now()).map_err(token_error)?;
            Ok(Response::data(&req.id, json!({ "removed": removed })))
        }
        _ => Err(ApiError::new(
            404,
            format!(
                "no handler for route \"{}\". route entry not found.",
                req.path
            ),
        )),
    }
}

fn bad_token() -> ApiError {
    ApiError::bad_request("bad token")
}

fn token_param(req: &Request) -> Result<Token, ApiError> {
    req.param_str("token")
        .filter(|t| !t.is_empty())
        .map(Token::new)
        .ok_or_else(|| ApiError::bad_request("missing required parameter `token`"))
}

fn accessor_param(req: &Request) -> Result<Accessor, ApiError> {
    req.param_str("accessor")
        .filter(|a| !a.is_empty())
        .map(Accessor::new)
        .ok_or_else(|| ApiError::bad_request("missing required parameter `accessor`"))
}

fn increment(req: &Request) -> Result<Duration, ApiError> {
    Ok(duration_param(&req.body, "increment")?.unwrap_or_default())
}

fn create(u: &Unsealed, req: &Request, caller: &Caller, orphan_endpoint: bool) -> ApiResult {
    let b = &req.body;
    let meta = match b.get("meta") {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_string()))
                    .ok_or_else(|| ApiError::bad_request("`meta` values must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::bad_request("`meta` must be an object of strings")),
    };
    let request = CreateRequest {
        policies: strings_param(b, "policies")?.unwrap_or_default(),
        ttl: duration_param(b, "ttl")?.unwrap_or_default(),
        explicit_max_ttl: duration_param(b, "explicit_max_ttl")?.unwrap_or_default(),
        period: duration_param(b, "period")?.unwrap_or_default(),
        renewable: bool_param(b, "renewable")?.unwrap_or(true),
        num_uses: u64_param(b, "num_uses")?.unwrap_or(0),
        no_parent: bool_param(b, "no_parent")?.unwrap_or(false),
        orphan_endpoint,
        no_default_policy: bool_param(b, "no_default_policy")?.unwrap_or(false),
        meta,
        display_name: req.param_str("display_name").unwrap_or_default(),
        caller_is_root_or_sudo: caller.entry.is_root()
            || caller
                .acl
                .capabilities(&req.path)
                .contains(tresor_policy::Capability::Sudo),
    };
    let (token, entry) = u
        .tokens
        .create(Some(&caller.entry), request)
        .map_err(token_error)?;
    Ok(auth_response(req, &entry, Some(&token)))
}

fn lookup_response(req: &Request, entry: &TokenEntry, token: Option<&Token>) -> Response {
    let view = entry.view(SystemTime::now(), token);
    Response::data(
        &req.id,
        serde_json::to_value(view).expect("a token view serializes"),
    )
}

/// The `auth` block Vault returns when it issues or renews a token.
fn auth_response(req: &Request, entry: &TokenEntry, token: Option<&Token>) -> Response {
    let ttl = entry.ttl(SystemTime::now()).as_secs();
    let auth = json!({
        "client_token": token.map(|t| t.expose().to_string()).unwrap_or_default(),
        "accessor": entry.accessor().expose(),
        "policies": entry.policies(),
        "token_policies": entry.policies(),
        "identity_policies": null,
        "metadata": entry.meta(),
        "lease_duration": ttl,
        "renewable": entry.renewable(),
        "entity_id": "",
        "token_type": "service",
        "orphan": entry.is_orphan(),
        "mfa_requirement": null,
        "num_uses": entry.num_uses(),
    });
    Response {
        status: 200,
        body: Some(crate::request::envelope(&req.id, None, Some(auth))),
    }
}
