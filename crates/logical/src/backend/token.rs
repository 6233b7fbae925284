//! `auth/token/*`: create, look up, renew and revoke tokens.

use crate::params::{bool_param, duration_param, required_str, strings_param, u64_param};
use crate::router::{Ctx, Endpoint};
use crate::{Error, Response, Result};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};
use tresor_policy::Capability;
use tresor_request::Operation::{List, Read, Update};
use tresor_tokens::{Accessor, CreateRequest, Token, TokenEntry};

pub(crate) const ENDPOINTS: &[Endpoint] = &[
    endpoint("create", &[(Update, create)], false),
    endpoint("create-orphan", &[(Update, create_orphan)], false),
    endpoint(
        "lookup-self",
        &[(Read, lookup_self), (Update, lookup_self)],
        false,
    ),
    endpoint("lookup", &[(Read, lookup), (Update, lookup)], false),
    endpoint("lookup-accessor", &[(Update, lookup_accessor)], false),
    endpoint("renew-self", &[(Update, renew_self)], false),
    endpoint("renew", &[(Update, renew)], false),
    endpoint("renew-accessor", &[(Update, renew_accessor)], false),
    endpoint("revoke-self", &[(Update, revoke_self)], false),
    endpoint("revoke", &[(Update, revoke)], false),
    endpoint("revoke-orphan", &[(Update, revoke_orphan)], true),
    endpoint("revoke-accessor", &[(Update, revoke_accessor)], false),
    endpoint("accessors", &[(List, accessors)], true),
    endpoint("tidy", &[(Update, tidy)], false),
];

const fn endpoint(
    pattern: &'static str,
    operations: &'static [(tresor_request::Operation, crate::router::Handler)],
    sudo: bool,
) -> Endpoint {
    Endpoint {
        pattern,
        operations,
        sudo,
        existence: None,
        alias: None,
    }
}

fn bad_token() -> Error {
    Error::bad_request("bad token")
}

fn token_param(ctx: &Ctx<'_>) -> Result<Token> {
    required_str(ctx.data(), "token").map(Token::new)
}

fn accessor_param(ctx: &Ctx<'_>) -> Result<Accessor> {
    required_str(ctx.data(), "accessor").map(Accessor::new)
}

fn increment(ctx: &Ctx<'_>) -> Result<Duration> {
    Ok(duration_param(ctx.data(), "increment")?.unwrap_or_default())
}

fn create(ctx: &Ctx<'_>) -> Result<Response> {
    create_token(ctx, false)
}

fn create_orphan(ctx: &Ctx<'_>) -> Result<Response> {
    create_token(ctx, true)
}

fn create_token(ctx: &Ctx<'_>, orphan_endpoint: bool) -> Result<Response> {
    let b = ctx.data();
    let meta = match b.get("meta") {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_string()))
                    .ok_or_else(|| Error::bad_request("`meta` values must be strings"))
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(Error::bad_request("`meta` must be an object of strings")),
    };
    let caller = ctx.caller;
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
        display_name: ctx.request.param_str("display_name").unwrap_or_default(),
        caller_is_root_or_sudo: caller.entry.is_root()
            || caller
                .acl
                .capabilities(&ctx.request.path)
                .contains(Capability::Sudo),
    };
    let (token, entry) = ctx.unsealed.tokens.create(Some(&caller.entry), request)?;
    Ok(auth_response(&entry, Some(&token)))
}

fn lookup_self(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(lookup_response(&ctx.caller.entry, Some(&ctx.caller.token)))
}

fn lookup(ctx: &Ctx<'_>) -> Result<Response> {
    let token = token_param(ctx)?;
    let entry = ctx.unsealed.tokens.lookup(&token)?.ok_or_else(bad_token)?;
    Ok(lookup_response(&entry, Some(&token)))
}

fn lookup_accessor(ctx: &Ctx<'_>) -> Result<Response> {
    let entry = ctx
        .unsealed
        .tokens
        .lookup_accessor(&accessor_param(ctx)?)?
        .ok_or_else(bad_token)?;
    Ok(lookup_response(&entry, None))
}

fn renew_self(ctx: &Ctx<'_>) -> Result<Response> {
    let entry = ctx
        .unsealed
        .tokens
        .renew(&ctx.caller.token, increment(ctx)?)?;
    Ok(auth_response(&entry, Some(&ctx.caller.token)))
}

fn renew(ctx: &Ctx<'_>) -> Result<Response> {
    let token = token_param(ctx)?;
    let entry = ctx.unsealed.tokens.renew(&token, increment(ctx)?)?;
    Ok(auth_response(&entry, Some(&token)))
}

fn renew_accessor(ctx: &Ctx<'_>) -> Result<Response> {
    let entry = ctx
        .unsealed
        .tokens
        .renew_accessor(&accessor_param(ctx)?, increment(ctx)?)?;
    Ok(auth_response(&entry, None))
}

fn revoke_self(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.unsealed.tokens.revoke(&ctx.caller.token)?;
    Ok(Response::NoContent)
}

fn revoke(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.unsealed.tokens.revoke(&token_param(ctx)?)?;
    Ok(Response::NoContent)
}

fn revoke_orphan(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.unsealed.tokens.revoke_orphan(&token_param(ctx)?)?;
    Ok(Response::NoContent)
}

fn revoke_accessor(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.unsealed.tokens.revoke_accessor(&accessor_param(ctx)?)?;
    Ok(Response::NoContent)
}

fn accessors(ctx: &Ctx<'_>) -> Result<Response> {
    let limit = u64_param(ctx.data(), "limit")?
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX))
        .unwrap_or(usize::MAX);
    let after = ctx.data().get("after").and_then(Value::as_str);
    let page = ctx.unsealed.tokens.list_accessors(after, limit)?;
    let keys: Vec<&str> = page.accessors.iter().map(|a| a.expose()).collect();
    Ok(Response::data(json!({ "keys": keys, "next": page.next })))
}

fn tidy(ctx: &Ctx<'_>) -> Result<Response> {
    let removed = ctx.unsealed.tokens.tidy(SystemTime::now())?;
    Ok(Response::data(json!({ "removed": removed })))
}

fn lookup_response(entry: &TokenEntry, token: Option<&Token>) -> Response {
    let view = entry.view(SystemTime::now(), token);
    Response::data(serde_json::to_value(view).expect("a token view serializes"))
}

/// The `auth` block Vault returns when it issues or renews a token.
fn auth_response(entry: &TokenEntry, token: Option<&Token>) -> Response {
    let ttl = entry.ttl(SystemTime::now()).as_secs();
    Response::auth(json!({
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
    }))
}
