//! The `sys/` endpoints.

use crate::request::{ApiError, ApiResult, Method, Request, Response, strings_param, u64_param};
use crate::state::{Core, Unsealed};
use serde_json::{Value, json};
use tresor_barrier::SealKind;
use tresor_barrier::seal::Share;
use tresor_core::MountType;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Endpoints served without a token and while sealed; `None` for any other path.
pub fn unauthenticated(core: &Core, req: &Request) -> Option<ApiResult> {
    match (req.path.as_str(), req.method) {
        ("sys/health", Method::Get | Method::Head) => Some(health(core, req)),
        ("sys/seal-status", Method::Get | Method::Head) => Some(seal_status(core)),
        ("sys/init", Method::Get | Method::Head) => Some(
            core.seal_config()
                .map(|c| Response::raw(200, json!({ "initialized": c.is_some() }))),
        ),
        ("sys/init", Method::Write) => Some(init(core, req)),
        ("sys/unseal", Method::Write) => Some(unseal(core, req)),
        _ => None,
    }
}

fn health(core: &Core, req: &Request) -> ApiResult {
    let initialized = core.seal_config()?.is_some();
    let sealed = core.is_sealed();
    let code = |name: &str, default: u16| -> Result<u16, ApiError> {
        match req.query.get(name) {
            Some(v) => v
                .parse()
                .map_err(|_| ApiError::bad_request(format!("`{name}` must be a status code"))),
            None => Ok(default),
        }
    };
    let status = if !initialized {
        code("uninitcode", 501)?
    } else if sealed {
        code("sealedcode", 503)?
    } else {
        code("activecode", 200)?
    };
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    Ok(Response::raw(
        status,
        json!({
            "initialized": initialized,
            "sealed": sealed,
            "standby": false,
            "performance_standby": false,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            "server_time": now,
            "version": VERSION,
            "cluster_name": "tresor",
            "cluster_id": "",
            "storage_type": core.storage_kind(),
        }),
    ))
}

fn seal_status(core: &Core) -> ApiResult {
    let config = core.seal_config()?;
    let (kind, n, t) = match config.as_ref().map(|c| &c.seal) {
        Some(SealKind::Shamir { shares, threshold }) => ("shamir", *shares, *threshold),
        Some(SealKind::KeyFile { .. }) => ("key-file", 1, 1),
        None => ("shamir", 0, 0),
    };
    Ok(Response::raw(
        200,
        json!({
            "type": kind,
            "initialized": config.is_some(),
            "sealed": core.is_sealed(),
            "t": t,
            "n": n,
            "progress": core.progress(),
            "nonce": "",
            "version": VERSION,
            "build_date": "",
            "migration": false,
            "recovery_seal": false,
            "storage_type": core.storage_kind(),
        }),
    ))
}

fn init(core: &Core, req: &Request) -> ApiResult {
    let shares = u64_param(&req.body, "secret_shares")?.unwrap_or(5);
    let threshold = u64_param(&req.body, "secret_threshold")?.unwrap_or(3);
    let (shares, threshold) = match (u8::try_from(shares), u8::try_from(threshold)) {
        (Ok(s), Ok(t)) => (s, t),
        _ => {
            return Err(ApiError::bad_request(
                "secret_shares and secret_threshold must be at most 255",
            ));
        }
    };
    let out = core.initialize(shares, threshold)?;
    let hex: Vec<String> = out.shares.iter().map(|s| s.to_hex().to_string()).collect();
    let b64: Vec<String> = out
        .shares
        .iter()
        .map(|s| s.to_base64().to_string())
        .collect();
    Ok(Response::raw(
        200,
        json!({
            "keys": hex,
            "keys_base64": b64,
            "root_token": out.root_token.as_str(),
        }),
    ))
}

fn unseal(core: &Core, req: &Request) -> ApiResult {
    if crate::request::bool_param(&req.body, "reset")?.unwrap_or(false) {
        core.reset_progress();
        return seal_status(core);
    }
    if !core.is_sealed() {
        return seal_status(core);
    }
    let key = req
        .param_str("key")
        .ok_or_else(|| ApiError::bad_request("missing required parameter `key`"))?;
    let share = Share::parse(&key).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Err(e) = core.submit_share(share) {
        core.reset_progress();
        return Err(e);
    }
    seal_status(core)
}

/// Whether a `sys/` path needs `sudo` on top of its capability.
pub fn needs_sudo(path: &str) -> bool {
    path == "sys/seal"
        || path == "sys/rotate"
        || path == "sys/audit"
        || path.starts_with("sys/audit/")
        || path.starts_with("sys/audit-checkpoint/")
}

pub fn handle(core: &Core, u: &Unsealed, req: &Request) -> ApiResult {
    let path = req.path.as_str();
    let rest = |prefix: &str| {
        path.strip_prefix(prefix)
            .map(|r| r.trim_matches('/').to_string())
    };
    match req.method {
        Method::Write if path == "sys/seal" => {
            core.seal();
            Ok(Response::no_content())
        }
        Method::Get if path == "sys/key-status" => {
            let status = u
                .store
                .barrier()
                .key_status()
                .map_err(crate::errors::barrier)?;
            Ok(Response::data(
                &req.id,
                json!({
                    "term": status.term,
                    "install_time": humantime::format_rfc3339_seconds(status.install_time).to_string(),
                    "encryptions": null,
                }),
            ))
        }
        Method::Write if path == "sys/rotate" => {
            u.store.barrier().rotate().map_err(crate::errors::barrier)?;
            Ok(Response::no_content())
        }
        _ if path == "sys/mounts" || path.starts_with("sys/mounts/") => {
            mounts(u, req, &rest("sys/mounts").unwrap_or_default())
        }
        Method::Get if path.starts_with("sys/internal/ui/mounts") => {
            ui_mount(u, req, &rest("sys/internal/ui/mounts").unwrap_or_default())
        }
        _ if path == "sys/policies/acl" || path.starts_with("sys/policies/acl/") => {
            policies(u, req, &rest("sys/policies/acl").unwrap_or_default(), false)
        }
        _ if path == "sys/policy" || path.starts_with("sys/policy/") => {
            policies(u, req, &rest("sys/policy").unwrap_or_default(), true)
        }
        _ if path == "sys/audit" || path.starts_with("sys/audit/") => {
            audit(u, req, &rest("sys/audit").unwrap_or_default())
        }
        Method::Get if path.starts_with("sys/audit-checkpoint/") => {
            let chain_id = rest("sys/audit-checkpoint").unwrap_or_default();
            match u.audit.checkpoint(&chain_id)? {
                Some(checkpoint) => Ok(Response::data(&req.id, json!(checkpoint))),
                None => Err(ApiError::not_found()),
            }
        }
        Method::Write if path.starts_with("sys/audit-hash/") => {
            let device = rest("sys/audit-hash").unwrap_or_default();
            let input = req
                .param_str("input")
                .ok_or_else(|| ApiError::bad_request("missing required parameter `input`"))?;
            let hash = u.audit.hash(&device, &input)?;
            Ok(Response::data(&req.id, json!({ "hash": hash })))
        }
        _ => Err(unknown_route(req)),
    }
}

pub fn unknown_route(req: &Request) -> ApiError {
    ApiError::new(
        404,
        format!(
            "no handler for route \"{}\". route entry not found.",
            req.path
        ),
    )
}

fn mount_json(m: &tresor_core::MountEntry) -> Value {
    json!({
        "type": m.kind.name(),
        "description": m.description,
        "accessor": m.accessor,
        "uuid": m.uuid,
        "config": { "default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false },
        "options": m.kind.options(),
        "local": false,
        "seal_wrap": false,
        "external_entropy_access": false,
        "plugin_version": "",
        "running_plugin_version": "",
    })
}

fn mounts(u: &Unsealed, req: &Request, path: &str) -> ApiResult {
    let path = path.trim_end_matches("/tune");
    match req.method {
        Method::Get if path.is_empty() => {
            let mut data = serde_json::Map::new();
            for m in u.store.mounts().map_err(crate::errors::core)? {
                data.insert(m.path.clone(), mount_json(&m));
            }
            let mut body =
                crate::request::envelope(&req.id, Some(Value::Object(data.clone())), None);
            // Vault also puts the mounts at the top level; old clients read them there.
            if let Value::Object(top) = &mut body {
                for (k, v) in data {
                    top.entry(k).or_insert(v);
                }
            }
            Ok(Response::raw(200, body))
        }
        Method::Get => {
            let mount = u
                .store
                .mount(path)
                .map_err(|_| ApiError::bad_request(format!("no mount at {path}/")))?;
            Ok(Response::data(&req.id, mount_json(&mount)))
        }
        Method::Write => {
            let kind = req
                .param_str("type")
                .ok_or_else(|| ApiError::bad_request("missing required parameter `type`"))?;
            let version = match req.body.get("options") {
                Some(Value::Object(options)) => options.get("version").and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }),
                _ => None,
            };
            match (kind.as_str(), version.as_deref()) {
                ("kv-v2", _) | ("kv", None | Some("2")) => {}
                ("kv", Some(_)) => {
                    return Err(ApiError::bad_request("only KV version 2 is supported"));
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "plugin not found in the catalog: {kind}"
                    )));
                }
            }
            let description = req.param_str("description").unwrap_or_default();
            u.store
                .enable(path, MountType::KvV2, &description)
                .map_err(crate::errors::core)?;
            Ok(Response::no_content())
        }
        Method::Delete => {
            u.store.disable(path).map_err(crate::errors::core)?;
            Ok(Response::no_content())
        }
        _ => Err(ApiError::new(405, "unsupported operation")),
    }
}

fn ui_mount(u: &Unsealed, req: &Request, path: &str) -> ApiResult {
    if path.is_empty() {
        let mut secret = serde_json::Map::new();
        for m in u.store.mounts().map_err(crate::errors::core)? {
            secret.insert(m.path.clone(), mount_json(&m));
        }
        return Ok(Response::data(
            &req.id,
            json!({ "secret": secret, "auth": {} }),
        ));
    }
    let (mount, _) = u
        .store
        .resolve(path)
        .map_err(|_| ApiError::bad_request(format!("no mount at {path}")))?;
    let mut data = mount_json(&mount);
    data["path"] = Value::String(mount.path.clone());
    Ok(Response::data(&req.id, data))
}

fn policies(u: &Unsealed, req: &Request, name: &str, legacy: bool) -> ApiResult {
    let listing = req.method == Method::List || (name.is_empty() && req.method == Method::Get);
    if listing {
        let names = u.policies.list()?;
        let data = if legacy {
            json!({ "policies": names, "keys": names })
        } else {
            json!({ "keys": names })
        };
        let mut response = Response::data(&req.id, data.clone());
        if legacy && let Some(Value::Object(top)) = &mut response.body {
            top.insert("policies".into(), data["policies"].clone());
            top.insert("keys".into(), data["keys"].clone());
        }
        return Ok(response);
    }
    let name = name.to_lowercase();
    match req.method {
        Method::Get | Method::Head => {
            let text = if name == tresor_policy::ROOT_POLICY_NAME {
                Some(String::new())
            } else {
                u.policies.read(&name)?
            };
            let text = text.ok_or_else(ApiError::not_found)?;
            let data = if legacy {
                json!({ "name": name, "rules": text })
            } else {
                json!({ "name": name, "policy": text })
            };
            Ok(Response::data(&req.id, data))
        }
        Method::Write => {
            let text = req
                .param_str("policy")
                .or_else(|| req.param_str("rules"))
                .ok_or_else(|| ApiError::bad_request("missing required parameter `policy`"))?;
            u.policies.write(&name, &text)?;
            Ok(Response::no_content())
        }
        Method::Delete => {
            u.policies.delete(&name)?;
            Ok(Response::no_content())
        }
        _ => Err(ApiError::new(405, "unsupported operation")),
    }
}

fn audit(u: &Unsealed, req: &Request, path: &str) -> ApiResult {
    match req.method {
        Method::Get if path.is_empty() => Ok(Response::data(&req.id, u.audit.list())),
        Method::Write if !path.is_empty() => {
            let kind = req
                .param_str("type")
                .ok_or_else(|| ApiError::bad_request("missing required parameter `type`"))?;
            let file_path = match req.body.get("options") {
                Some(Value::Object(options)) => options
                    .get("file_path")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                _ => String::new(),
            };
            let description = req.param_str("description").unwrap_or_default();
            u.audit.enable(path, &kind, &description, &file_path)?;
            Ok(Response::no_content())
        }
        Method::Delete if !path.is_empty() => {
            u.audit.disable(path)?;
            Ok(Response::no_content())
        }
        _ => Err(ApiError::new(405, "unsupported operation")),
    }
}

/// `sys/capabilities-self`: the caller's capabilities on each path.
pub fn capabilities(acl: &tresor_policy::Acl, req: &Request) -> ApiResult {
    let paths = strings_param(&req.body, "paths")?
        .or(strings_param(&req.body, "path")?)
        .ok_or_else(|| ApiError::bad_request("missing required parameter `paths`"))?;
    let mut data = serde_json::Map::new();
    for path in &paths {
        let names = acl.capabilities(path.trim_start_matches('/')).names();
        data.insert(path.clone(), json!(names));
    }
    if paths.len() == 1 {
        data.insert("capabilities".into(), data[&paths[0]].clone());
    }
    Ok(Response::data(&req.id, Value::Object(data)))
}
