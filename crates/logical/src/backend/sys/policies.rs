//! `sys/policies/acl/*` and the legacy `sys/policy/*`.

use crate::params::required_str;
use crate::router::Ctx;
use crate::{Error, Response, Result};
use serde_json::json;

pub(super) fn list_policies(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(Response::data(
        json!({ "keys": ctx.unsealed.policies.list()? }),
    ))
}

pub(super) fn list_policies_legacy(ctx: &Ctx<'_>) -> Result<Response> {
    let names = ctx.unsealed.policies.list()?;
    Ok(Response::Envelope(crate::Envelope {
        data: Some(json!({ "policies": names, "keys": names })),
        data_at_top: true,
        ..crate::Envelope::default()
    }))
}

pub(super) fn policy_text(ctx: &Ctx<'_>) -> Result<(String, String)> {
    let name = ctx.capture("name").to_owned();
    let text = if name == tresor_policy::ROOT_POLICY_NAME {
        Some(String::new())
    } else {
        ctx.unsealed.policies.read(&name)?
    };
    Ok((name, text.ok_or(Error::NotFound)?))
}

pub(super) fn read_policy(ctx: &Ctx<'_>) -> Result<Response> {
    let (name, text) = policy_text(ctx)?;
    Ok(Response::data(json!({ "name": name, "policy": text })))
}

pub(super) fn read_policy_legacy(ctx: &Ctx<'_>) -> Result<Response> {
    let (name, text) = policy_text(ctx)?;
    Ok(Response::data(json!({ "name": name, "rules": text })))
}

/// Both `sys/policies/acl/:name` and the legacy `sys/policy/:name`, whose
/// `rules` the canonical request already names `policy`.
pub(super) fn write_policy(ctx: &Ctx<'_>) -> Result<Response> {
    let text = required_str(ctx.data(), "policy")?;
    ctx.unsealed.policies.write(ctx.capture("name"), &text)?;
    Ok(Response::NoContent)
}

pub(super) fn delete_policy(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.unsealed.policies.delete(ctx.capture("name"))?;
    Ok(Response::NoContent)
}
