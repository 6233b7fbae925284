//! `sys/wrapping/*`: wrap, unwrap, look up and rewrap.

use crate::router::Ctx;
use crate::{Error, Response, Result, wrapping};
use tresor_tokens::Token;

/// The wrapping token a request names: its `token` parameter, or the token
/// it is made with.
fn token(ctx: &Ctx<'_>) -> Result<Token> {
    match ctx.request.param_str("token").filter(|t| !t.is_empty()) {
        Some(token) => Ok(Token::new(token)),
        None => ctx
            .caller
            .map(|c| c.token.clone())
            .ok_or_else(|| Error::bad_request("missing required parameter `token`")),
    }
}

/// `sys/wrapping/wrap`: the request's own data, which the wrap header then
/// wraps like any answer.
pub(super) fn wrap(ctx: &Ctx<'_>) -> Result<Response> {
    if ctx.request.wrap_ttl.is_none() {
        return Err(Error::bad_request(
            "sys/wrapping/wrap needs a wrap TTL: send X-Vault-Wrap-TTL (the CLI's -wrap-ttl)",
        ));
    }
    if ctx.data().is_empty() {
        return Err(Error::bad_request("no data to wrap"));
    }
    Ok(Response::data(serde_json::Value::Object(
        ctx.data().clone(),
    )))
}

pub(super) fn unwrap(ctx: &Ctx<'_>) -> Result<Response> {
    wrapping::unwrap(ctx.unsealed, &token(ctx)?)
}

pub(super) fn lookup(ctx: &Ctx<'_>) -> Result<Response> {
    wrapping::lookup(ctx.unsealed, &token(ctx)?)
}

pub(super) fn rewrap(ctx: &Ctx<'_>) -> Result<Response> {
    wrapping::rewrap(ctx.unsealed, &token(ctx)?)
}
