//! `sys/capabilities*`: what a token may do on paths.

use crate::params::{required_str, strings_param};
use crate::router::Ctx;
use crate::{Envelope, Error, Response, Result};
use serde_json::{Map, Value, json};
use tresor_policy::Acl;
use tresor_tokens::{Accessor, Token, TokenEntry};

/// The answer for `acl` on the request's `paths` (or `path`): each path's
/// capabilities, and with one path, also as `capabilities`.
fn capabilities(ctx: &Ctx<'_>, acl: &Acl) -> Result<Response> {
    let data = ctx.data();
    let paths = strings_param(data, "paths")?
        .or(strings_param(data, "path")?)
        .ok_or_else(|| Error::bad_request("missing required parameter `paths`"))?;
    let mut out = Map::new();
    for path in &paths {
        // Vault answers `root` for a root token, and sorts the names.
        let names = if acl.is_root() {
            vec!["root"]
        } else {
            let mut names = acl.capabilities(path.trim_start_matches('/')).names();
            names.sort_unstable();
            names
        };
        out.insert(path.clone(), json!(names));
    }
    if paths.len() == 1 {
        out.insert("capabilities".into(), out[&paths[0]].clone());
    }
    // Also at the top level, where older clients read it.
    Ok(Response::Envelope(Envelope {
        data: Some(Value::Object(out)),
        data_at_top: true,
        ..Envelope::default()
    }))
}

fn of_entry(ctx: &Ctx<'_>, entry: Option<TokenEntry>) -> Result<Response> {
    let entry = entry.ok_or_else(|| Error::bad_request("invalid token"))?;
    let acl = ctx.unsealed.policies.acl(entry.policies())?;
    capabilities(ctx, &acl)
}

/// `sys/capabilities-self`: the caller's.
pub(super) fn of_caller(ctx: &Ctx<'_>) -> Result<Response> {
    capabilities(ctx, &ctx.caller()?.acl)
}

/// `sys/capabilities`: another token's (`token`), as `vault token
/// capabilities TOKEN PATH` asks.
pub(super) fn of_token(ctx: &Ctx<'_>) -> Result<Response> {
    let token = Token::new(required_str(ctx.data(), "token")?);
    of_entry(ctx, ctx.unsealed.tokens.lookup(&token)?)
}

/// `sys/capabilities-accessor`: the token's with this `accessor`.
pub(super) fn of_accessor(ctx: &Ctx<'_>) -> Result<Response> {
    let accessor = Accessor::new(required_str(ctx.data(), "accessor")?);
    of_entry(ctx, ctx.unsealed.tokens.lookup_accessor(&accessor)?)
}
