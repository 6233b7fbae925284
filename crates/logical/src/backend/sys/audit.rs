//! `sys/audit*`: the audit devices, their hashes and saved positions.

use crate::params::required_str;
use crate::router::Ctx;
use crate::{Error, Response, Result};
use serde_json::{Map, Value, json};

pub(super) fn list_audit(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(Response::data(ctx.unsealed.audit.list()))
}

pub(super) fn enable_audit(ctx: &Ctx<'_>) -> Result<Response> {
    let data = ctx.data();
    let kind = required_str(data, "type")?;
    let options = match data.get("options") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(options)) => options.clone(),
        Some(_) => return Err(Error::bad_request("`options` must be a JSON object")),
    };
    let description = ctx.request.param_str("description").unwrap_or_default();
    ctx.unsealed
        .audit
        .enable(ctx.capture("path"), &kind, &description, &options)?;
    Ok(Response::NoContent)
}

pub(super) fn disable_audit(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.unsealed.audit.disable(ctx.capture("path"))?;
    Ok(Response::NoContent)
}

pub(super) fn audit_hash(ctx: &Ctx<'_>) -> Result<Response> {
    let input = required_str(ctx.data(), "input")?;
    let hash = ctx.unsealed.audit.hash(ctx.capture("path"), &input)?;
    Ok(Response::data(json!({ "hash": hash })))
}

pub(super) fn audit_checkpoint(ctx: &Ctx<'_>) -> Result<Response> {
    match ctx.unsealed.audit.checkpoint(ctx.capture("id"))? {
        Some(checkpoint) => Ok(Response::data(json!(checkpoint))),
        None => Err(Error::NotFound),
    }
}
