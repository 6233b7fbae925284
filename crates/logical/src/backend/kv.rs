//! KV version 2 endpoints of a mount: config, data, metadata, delete,
//! undelete, destroy, subkeys.

use crate::params::{bool_param, duration_param, u64_param};
use crate::router::{Ctx, Endpoint};
use crate::{Error, Response, Result};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use tresor_kv::{ConfigUpdate, MetadataUpdate, SecretMap};
use tresor_request::Operation::{Delete, List, Patch, Read, Update};

pub(crate) const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        pattern: "config",
        operations: &[(Read, read_config), (Update, write_config)],
        sudo: false,
        existence: None,
        alias: None,
    },
    Endpoint {
        pattern: "data/*path",
        operations: &[
            (Read, read),
            (Update, write),
            (Patch, patch),
            (Delete, delete_latest),
        ],
        sudo: false,
        existence: Some(exists),
        alias: None,
    },
    Endpoint {
        pattern: "metadata/*path",
        operations: &[
            (Read, read_metadata),
            (List, list),
            (Update, write_metadata),
            (Patch, patch_metadata),
            (Delete, delete_metadata),
        ],
        sudo: false,
        existence: Some(exists),
        alias: None,
    },
    Endpoint {
        pattern: "delete/*path",
        operations: &[(Update, delete_versions)],
        sudo: false,
        existence: None,
        alias: None,
    },
    Endpoint {
        pattern: "undelete/*path",
        operations: &[(Update, undelete_versions)],
        sudo: false,
        existence: None,
        alias: None,
    },
    Endpoint {
        pattern: "destroy/*path",
        operations: &[(Update, destroy_versions)],
        sudo: false,
        existence: None,
        alias: None,
    },
    Endpoint {
        pattern: "subkeys/*path",
        operations: &[(Read, subkeys)],
        sudo: false,
        existence: None,
        alias: None,
    },
];

/// The secret's path inside the mount; empty only where a list names the
/// mount's root.
fn secret_path<'c>(ctx: &'c Ctx<'_>) -> Result<&'c str> {
    let path = ctx.capture("path");
    if path.is_empty() || path.ends_with('/') {
        return Err(Error::bad_request(
            "a secret's path is required (for example `app/db`)",
        ));
    }
    Ok(path)
}

fn exists(ctx: &Ctx<'_>) -> Result<bool> {
    let path = ctx.capture("path");
    if path.is_empty() {
        return Ok(true);
    }
    Ok(ctx.kv().metadata(path)?.is_some())
}

fn read_config(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(Response::data(ctx.kv().config()?.to_json()))
}

fn write_config(ctx: &Ctx<'_>) -> Result<Response> {
    let data = ctx.data();
    let update = ConfigUpdate {
        max_versions: u64_param(data, "max_versions")?.map(to_u32).transpose()?,
        cas_required: bool_param(data, "cas_required")?,
        delete_version_after: duration_param(data, "delete_version_after")?,
    };
    ctx.kv().set_config(update)?;
    Ok(Response::NoContent)
}

fn to_u32(n: u64) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::bad_request("max_versions is too large"))
}

fn read(ctx: &Ctx<'_>) -> Result<Response> {
    let path = secret_path(ctx)?;
    let Some(read) = ctx.kv().read(path, u64_param(ctx.data(), "version")?)? else {
        return Err(Error::NotFound);
    };
    let metadata = serde_json::to_value(&read.metadata).expect("metadata serializes");
    Ok(match read.data {
        Some(data) => Response::data(json!({ "data": data, "metadata": metadata })),
        None => Response::missing(json!({ "data": null, "metadata": metadata })),
    })
}

fn data_of(ctx: &Ctx<'_>) -> Result<SecretMap> {
    match ctx.data().get("data") {
        Some(Value::Object(map)) => Ok(SecretMap::from_map(map.clone())),
        None | Some(Value::Null) => Err(Error::bad_request("no data provided")),
        Some(_) => Err(Error::bad_request("`data` must be a JSON object")),
    }
}

fn cas_of(ctx: &Ctx<'_>) -> Result<Option<u64>> {
    match ctx.data().get("options") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(options)) => u64_param(options, "cas"),
        Some(_) => Err(Error::bad_request("`options` must be a JSON object")),
    }
}

fn write(ctx: &Ctx<'_>) -> Result<Response> {
    let path = secret_path(ctx)?;
    let info = ctx.kv().write(path, &data_of(ctx)?, cas_of(ctx)?)?;
    Ok(Response::data(
        serde_json::to_value(info).expect("metadata serializes"),
    ))
}

fn patch(ctx: &Ctx<'_>) -> Result<Response> {
    let path = secret_path(ctx)?;
    let patch = Value::Object(data_of(ctx)?.as_map().clone());
    let info = ctx.kv().patch(path, &patch, cas_of(ctx)?)?;
    Ok(Response::data(
        serde_json::to_value(info).expect("metadata serializes"),
    ))
}

fn delete_latest(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.kv().delete_latest(secret_path(ctx)?)?;
    Ok(Response::NoContent)
}

fn list(ctx: &Ctx<'_>) -> Result<Response> {
    let limit = u64_param(ctx.data(), "limit")?.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let after = ctx.data().get("after").and_then(Value::as_str);
    let keys = ctx.kv().list(ctx.capture("path"), after, limit)?;
    if keys.is_empty() {
        return Err(Error::NotFound);
    }
    Ok(Response::data(json!({ "keys": keys })))
}

fn read_metadata(ctx: &Ctx<'_>) -> Result<Response> {
    match ctx.kv().metadata(secret_path(ctx)?)? {
        Some(view) => Ok(Response::data(
            serde_json::to_value(view).expect("metadata serializes"),
        )),
        None => Err(Error::NotFound),
    }
}

fn write_metadata(ctx: &Ctx<'_>) -> Result<Response> {
    update_metadata(ctx, false)
}

fn patch_metadata(ctx: &Ctx<'_>) -> Result<Response> {
    update_metadata(ctx, true)
}

fn update_metadata(ctx: &Ctx<'_>, merge: bool) -> Result<Response> {
    let path = secret_path(ctx)?;
    let data = ctx.data();
    let custom_metadata = match data.get("custom_metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(custom_map(map, merge)?),
        Some(_) => {
            return Err(Error::bad_request(
                "`custom_metadata` must be an object of strings",
            ));
        }
    };
    let update = MetadataUpdate {
        max_versions: u64_param(data, "max_versions")?.map(to_u32).transpose()?,
        cas_required: bool_param(data, "cas_required")?,
        delete_version_after: duration_param(data, "delete_version_after")?,
        custom_metadata,
        merge,
        cas: u64_param(data, "cas")?,
    };
    ctx.kv().write_metadata(path, &update)?;
    Ok(Response::NoContent)
}

fn delete_metadata(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.kv().delete_metadata(secret_path(ctx)?)?;
    Ok(Response::NoContent)
}

fn custom_map(map: &Map<String, Value>, merge: bool) -> Result<BTreeMap<String, Option<String>>> {
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), Some(s.clone()))),
            Value::Null if merge => Ok((k.clone(), None)),
            _ => Err(Error::bad_request(
                "`custom_metadata` values must be strings",
            )),
        })
        .collect()
}

fn versions(ctx: &Ctx<'_>) -> Result<Vec<u64>> {
    let bad = || Error::bad_request("`versions` must be a list of version numbers");
    match ctx.data().get("versions") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::Number(n) => n.as_u64().ok_or_else(bad),
                Value::String(s) => s.parse().map_err(|_| bad()),
                _ => Err(bad()),
            })
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|v| v.trim().parse().map_err(|_| bad()))
            .collect(),
        None | Some(Value::Null) => Err(Error::bad_request("no versions provided")),
        Some(_) => Err(bad()),
    }
}

fn delete_versions(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.kv()
        .delete_versions(secret_path(ctx)?, &versions(ctx)?)?;
    Ok(Response::NoContent)
}

fn undelete_versions(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.kv()
        .undelete_versions(secret_path(ctx)?, &versions(ctx)?)?;
    Ok(Response::NoContent)
}

fn destroy_versions(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.kv()
        .destroy_versions(secret_path(ctx)?, &versions(ctx)?)?;
    Ok(Response::NoContent)
}

fn subkeys(ctx: &Ctx<'_>) -> Result<Response> {
    let path = secret_path(ctx)?;
    let depth = u64_param(ctx.data(), "depth")?
        .map(|d| usize::try_from(d).unwrap_or(usize::MAX))
        .unwrap_or(0);
    let Some(read) = ctx
        .kv()
        .subkeys(path, u64_param(ctx.data(), "version")?, depth)?
    else {
        return Err(Error::NotFound);
    };
    let metadata = serde_json::to_value(&read.metadata).expect("metadata serializes");
    Ok(match read.subkeys {
        Some(subkeys) => Response::data(json!({ "subkeys": subkeys, "metadata": metadata })),
        None => Response::missing(json!({ "subkeys": null, "metadata": metadata })),
    })
}
