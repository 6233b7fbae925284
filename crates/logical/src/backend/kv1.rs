//! KV version 1 endpoints of a mount, and of the cubbyhole (every token's
//! own KV version 1 space): read, write, list, delete at `<mount>/<path>`.

use crate::router::{Ctx, Endpoint};
use crate::{Error, Response, Result};
use serde_json::{Value, json};
use tresor_kv::{KvV1, SecretMap};
use tresor_request::Operation::{Delete, List, Read, Update};

pub(crate) const ENDPOINTS: &[Endpoint] = &[Endpoint::new(
    "*path",
    &[
        (Read, read),
        (List, list),
        (Update, write),
        (Delete, delete),
    ],
)
.existence(exists)];

pub(crate) const CUBBYHOLE: &[Endpoint] = &[Endpoint::new(
    "*path",
    &[
        (Read, cubby_read),
        (List, cubby_list),
        (Update, cubby_write),
        (Delete, cubby_delete),
    ],
)
.existence(cubby_exists)];

/// The caller's own cubbyhole.
fn cubbyhole(ctx: &Ctx<'_>) -> Result<KvV1> {
    let prefix = ctx.unsealed.tokens.private_prefix(&ctx.caller()?.token)?;
    Ok(KvV1::new(
        std::sync::Arc::clone(ctx.unsealed.store.barrier()),
        prefix,
    ))
}

fn path<'c>(ctx: &'c Ctx<'_>) -> Result<&'c str> {
    let path = ctx.capture("path");
    if path.is_empty() || path.ends_with('/') {
        return Err(Error::bad_request(
            "a secret's path is required (for example `app/db`)",
        ));
    }
    Ok(path)
}

/// A path that is not a secret's is "existing": the handler refuses it.
fn exists_in(kv: &KvV1, ctx: &Ctx<'_>) -> Result<bool> {
    match path(ctx) {
        Ok(path) => Ok(kv.read(path)?.is_some()),
        Err(_) => Ok(true),
    }
}

fn read_from(kv: &KvV1, ctx: &Ctx<'_>) -> Result<Response> {
    let data = kv.read(path(ctx)?)?.ok_or(Error::NotFound)?;
    Ok(Response::data(Value::Object(data.as_map().clone())))
}

fn write_to(kv: &KvV1, ctx: &Ctx<'_>) -> Result<Response> {
    if ctx.data().is_empty() {
        return Err(Error::bad_request("missing data fields"));
    }
    kv.write(path(ctx)?, &SecretMap::from_map(ctx.data().clone()))?;
    Ok(Response::NoContent)
}

fn list_in(kv: &KvV1, ctx: &Ctx<'_>) -> Result<Response> {
    let keys = kv.list(ctx.capture("path"), None, None)?;
    if keys.is_empty() {
        return Err(Error::NotFound);
    }
    Ok(Response::data(json!({ "keys": keys })))
}

fn delete_from(kv: &KvV1, ctx: &Ctx<'_>) -> Result<Response> {
    kv.delete(path(ctx)?)?;
    Ok(Response::NoContent)
}

fn exists(ctx: &Ctx<'_>) -> Result<bool> {
    exists_in(&ctx.kv1()?, ctx)
}

fn read(ctx: &Ctx<'_>) -> Result<Response> {
    read_from(&ctx.kv1()?, ctx)
}

fn write(ctx: &Ctx<'_>) -> Result<Response> {
    write_to(&ctx.kv1()?, ctx)
}

fn list(ctx: &Ctx<'_>) -> Result<Response> {
    list_in(&ctx.kv1()?, ctx)
}

fn delete(ctx: &Ctx<'_>) -> Result<Response> {
    delete_from(&ctx.kv1()?, ctx)
}

fn cubby_exists(ctx: &Ctx<'_>) -> Result<bool> {
    exists_in(&cubbyhole(ctx)?, ctx)
}

fn cubby_read(ctx: &Ctx<'_>) -> Result<Response> {
    read_from(&cubbyhole(ctx)?, ctx)
}

fn cubby_write(ctx: &Ctx<'_>) -> Result<Response> {
    write_to(&cubbyhole(ctx)?, ctx)
}

fn cubby_list(ctx: &Ctx<'_>) -> Result<Response> {
    list_in(&cubbyhole(ctx)?, ctx)
}

fn cubby_delete(ctx: &Ctx<'_>) -> Result<Response> {
    delete_from(&cubbyhole(ctx)?, ctx)
}
