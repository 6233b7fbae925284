//! KV version 2 endpoints of a mount: config, data, metadata, delete,
//! undelete, destroy, subkeys.

use crate::request::{
    ApiError, ApiResult, Method, Request, Response, bool_param, duration_param, u64_param,
};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use tresor_kv::{ConfigUpdate, KvEngine, MetadataUpdate, SecretMap};

/// Whether a write to `rest` (the path inside the mount) creates something
/// new, for the ACL's create/update distinction.
pub fn exists(kv: &KvEngine, rest: &str) -> Result<bool, ApiError> {
    let (section, path) = split(rest);
    match section {
        "data" | "metadata" if !path.is_empty() => kv
            .metadata(path)
            .map(|m| m.is_some())
            .map_err(crate::errors::kv),
        _ => Ok(true),
    }
}

fn split(rest: &str) -> (&str, &str) {
    match rest.split_once('/') {
        Some((section, path)) => (section, path),
        None => (rest, ""),
    }
}

pub fn handle(kv: &KvEngine, req: &Request, rest: &str) -> ApiResult {
    let (section, path) = split(rest);
    match (section, req.method) {
        ("config", Method::Get | Method::Head) => Ok(Response::data(
            &req.id,
            kv.config().map_err(crate::errors::kv)?.to_json(),
        )),
        ("config", Method::Write) => write_config(kv, req),
        ("data", Method::Get | Method::Head) => read(kv, req, path),
        ("data", Method::Write) => write(kv, req, path),
        ("data", Method::Patch) => patch(kv, req, path),
        ("data", Method::Delete) => {
            kv.delete_latest(path).map_err(crate::errors::kv)?;
            Ok(Response::no_content())
        }
        ("metadata", Method::List) => list(kv, req, path),
        ("metadata", Method::Get | Method::Head)
            if req.query.get("list").is_some_and(|l| l == "true") =>
        {
            list(kv, req, path)
        }
        ("metadata", Method::Get | Method::Head) => {
            match kv.metadata(path).map_err(crate::errors::kv)? {
                Some(view) => Ok(Response::data(
                    &req.id,
                    serde_json::to_value(view).expect("metadata serializes"),
                )),
                None => Err(ApiError::not_found()),
            }
        }
        ("metadata", Method::Write) => write_metadata(kv, req, path, false),
        ("metadata", Method::Patch) => write_metadata(kv, req, path, true),
        ("metadata", Method::Delete) => {
            kv.delete_metadata(path).map_err(crate::errors::kv)?;
            Ok(Response::no_content())
        }
        ("delete", Method::Write) => {
            kv.delete_versions(path, &versions(req)?)
                .map_err(crate::errors::kv)?;
            Ok(Response::no_content())
        }
        ("undelete", Method::Write) => {
            kv.undelete_versions(path, &versions(req)?)
                .map_err(crate::errors::kv)?;
            Ok(Response::no_content())
        }
        ("destroy", Method::Write) => {
            kv.destroy_versions(path, &versions(req)?)
                .map_err(crate::errors::kv)?;
            Ok(Response::no_content())
        }
        ("subkeys", Method::Get | Method::Head) => subkeys(kv, req, path),
        ("config" | "data" | "delete" | "undelete" | "destroy" | "subkeys", _) => {
            Err(ApiError::new(405, "unsupported operation"))
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

fn write_config(kv: &KvEngine, req: &Request) -> ApiResult {
    let update = ConfigUpdate {
        max_versions: u64_param(&req.body, "max_versions")?
            .map(to_u32)
            .transpose()?,
        cas_required: bool_param(&req.body, "cas_required")?,
        delete_version_after: duration_param(&req.body, "delete_version_after")?,
    };
    kv.set_config(update).map_err(crate::errors::kv)?;
    Ok(Response::no_content())
}

fn to_u32(n: u64) -> Result<u32, ApiError> {
    u32::try_from(n).map_err(|_| ApiError::bad_request("max_versions is too large"))
}

fn version_query(req: &Request) -> Result<Option<u64>, ApiError> {
    match req.query.get("version") {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request("`version` must be a non-negative integer")),
    }
}

fn read(kv: &KvEngine, req: &Request, path: &str) -> ApiResult {
    let read = kv
        .read(path, version_query(req)?)
        .map_err(crate::errors::kv)?;
    let Some(read) = read else {
        return Err(ApiError::not_found());
    };
    let metadata = serde_json::to_value(&read.metadata).expect("metadata serializes");
    match read.data {
        Some(data) => Ok(Response::data(
            &req.id,
            json!({ "data": data, "metadata": metadata }),
        )),
        None => Ok(Response::status_data(
            404,
            &req.id,
            json!({ "data": null, "metadata": metadata }),
        )),
    }
}

fn data_of(req: &Request) -> Result<SecretMap, ApiError> {
    match req.body.get("data") {
        Some(Value::Object(map)) => Ok(SecretMap::from_map(map.clone())),
        None | Some(Value::Null) => Err(ApiError::bad_request("no data provided")),
        Some(_) => Err(ApiError::bad_request("`data` must be a JSON object")),
    }
}

fn cas_of(req: &Request) -> Result<Option<u64>, ApiError> {
    match req.body.get("options") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(options)) => u64_param(options, "cas"),
        Some(_) => Err(ApiError::bad_request("`options` must be a JSON object")),
    }
}

fn write(kv: &KvEngine, req: &Request, path: &str) -> ApiResult {
    let data = data_of(req)?;
    let info = kv
        .write(path, &data, cas_of(req)?)
        .map_err(crate::errors::kv)?;
    Ok(Response::data(
        &req.id,
        serde_json::to_value(info).expect("metadata serializes"),
    ))
}

fn patch(kv: &KvEngine, req: &Request, path: &str) -> ApiResult {
    if !req.merge_patch {
        return Err(ApiError::new(
            415,
            "PATCH requires the content type application/merge-patch+json",
        ));
    }
    let data = data_of(req)?;
    let patch = Value::Object(data.as_map().clone());
    let info = kv
        .patch(path, &patch, cas_of(req)?)
        .map_err(crate::errors::kv)?;
    Ok(Response::data(
        &req.id,
        serde_json::to_value(info).expect("metadata serializes"),
    ))
}

fn list(kv: &KvEngine, req: &Request, path: &str) -> ApiResult {
    let limit = match req.query.get("limit") {
        None => None,
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request("`limit` must be a positive integer"))?,
        ),
    };
    let keys = kv
        .list(path, req.query.get("after").map(String::as_str), limit)
        .map_err(crate::errors::kv)?;
    if keys.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Response::data(&req.id, json!({ "keys": keys })))
}

fn write_metadata(kv: &KvEngine, req: &Request, path: &str, merge: bool) -> ApiResult {
    let custom_metadata = match req.body.get("custom_metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(custom_map(map, merge)?),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`custom_metadata` must be an object of strings",
            ));
        }
    };
    let update = MetadataUpdate {
        max_versions: u64_param(&req.body, "max_versions")?
            .map(to_u32)
            .transpose()?,
        cas_required: bool_param(&req.body, "cas_required")?,
        delete_version_after: duration_param(&req.body, "delete_version_after")?,
        custom_metadata,
        merge,
        cas: u64_param(&req.body, "cas")?,
    };
    kv.write_metadata(path, &update)
        .map_err(crate::errors::kv)?;
    Ok(Response::no_content())
}

fn custom_map(
    map: &Map<String, Value>,
    merge: bool,
) -> Result<BTreeMap<String, Option<String>>, ApiError> {
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), Some(s.clone()))),
            Value::Null if merge => Ok((k.clone(), None)),
            _ => Err(ApiError::bad_request(
                "`custom_metadata` values must be strings",
            )),
        })
        .collect()
}

fn versions(req: &Request) -> Result<Vec<u64>, ApiError> {
    let bad = || ApiError::bad_request("`versions` must be a list of version numbers");
    match req.body.get("versions") {
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
        None | Some(Value::Null) => Err(ApiError::bad_request("no versions provided")),
        Some(_) => Err(bad()),
    }
}

fn subkeys(kv: &KvEngine, req: &Request, path: &str) -> ApiResult {
    let depth = match req.query.get("depth") {
        None => 0,
        Some(d) => d
            .parse()
            .map_err(|_| ApiError::bad_request("`depth` must be a non-negative integer"))?,
    };
    let Some(read) = kv
        .subkeys(path, version_query(req)?, depth)
        .map_err(crate::errors::kv)?
    else {
        return Err(ApiError::not_found());
    };
    let metadata = serde_json::to_value(&read.metadata).expect("metadata serializes");
    match read.subkeys {
        Some(subkeys) => Ok(Response::data(
            &req.id,
            json!({ "subkeys": subkeys, "metadata": metadata }),
        )),
        None => Ok(Response::status_data(
            404,
            &req.id,
            json!({ "subkeys": null, "metadata": metadata }),
        )),
    }
}
