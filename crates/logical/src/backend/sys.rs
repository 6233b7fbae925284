//! The `sys/` endpoints: seal state, mounts and their tuning, policies,
//! audit devices, the keyring, capabilities.

use crate::node::Node;
use crate::params::{bool_param, duration_param, required_str, strings_param, u64_param};
use crate::router::{Ctx, Endpoint, Existence};
use crate::{Error, Response, Result};
use serde_json::{Map, Value, json};
use tresor_barrier::SealKind;
use tresor_barrier::seal::Share;
use tresor_core::{ListingVisibility, MountEntry, MountType, Tune};
use tresor_request::Operation::{self, Delete, List, Read, Update};
use tresor_request::Request;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Serves an [`OpenEndpoint`]: the node is all it needs.
pub(crate) type OpenHandler = fn(&Node, &Request) -> Result<Response>;

/// An endpoint served without a token, while sealed too, and not audited
/// (as Vault's `sys/health`, `sys/init`, ...).
pub(crate) struct OpenEndpoint {
    pub pattern: &'static str,
    pub operations: &'static [(Operation, OpenHandler)],
}

pub(crate) const OPEN: &[OpenEndpoint] = &[
    OpenEndpoint {
        pattern: "health",
        operations: &[(Read, health)],
    },
    OpenEndpoint {
        pattern: "seal-status",
        operations: &[(Read, seal_status)],
    },
    OpenEndpoint {
        pattern: "init",
        operations: &[(Read, init_status), (Update, init)],
    },
    OpenEndpoint {
        pattern: "unseal",
        operations: &[(Update, unseal)],
    },
    OpenEndpoint {
        pattern: "leader",
        operations: &[(Read, leader)],
    },
];

pub(crate) const ENDPOINTS: &[Endpoint] = &[
    endpoint("mounts", &[(Read, list_mounts)], false),
    endpoint(
        "mounts/*path/tune",
        &[(Read, read_tune), (Update, write_tune)],
        false,
    ),
    endpoint(
        "mounts/*path",
        &[
            (Read, read_mount),
            (Update, enable_mount),
            (Delete, disable_mount),
        ],
        false,
    ),
    endpoint("policies/acl", &[(List, list_policies)], false),
    aliased(
        "policies/acl/:name",
        &[
            (Read, read_policy),
            (Update, write_policy),
            (Delete, delete_policy),
        ],
        "sys/policy/:name",
    ),
    endpoint(
        "policy",
        &[(Read, list_policies_legacy), (List, list_policies_legacy)],
        false,
    ),
    aliased(
        "policy/:name",
        &[
            (Read, read_policy_legacy),
            (Update, write_policy),
            (Delete, delete_policy),
        ],
        "sys/policies/acl/:name",
    ),
    endpoint("audit", &[(Read, list_audit)], true),
    endpoint(
        "audit/:path",
        &[(Update, enable_audit), (Delete, disable_audit)],
        true,
    ),
    endpoint("audit-hash/:path", &[(Update, audit_hash)], false),
    endpoint("audit-checkpoint/:id", &[(Read, audit_checkpoint)], true),
    endpoint("seal", &[(Update, seal)], true),
    endpoint("key-status", &[(Read, key_status)], false),
    endpoint("rotate", &[(Update, rotate)], true),
    endpoint("capabilities-self", &[(Update, capabilities_self)], false),
    endpoint("internal/ui/mounts", &[(Read, ui_mounts)], false),
    endpoint("internal/ui/mounts/*path", &[(Read, ui_mount)], false),
];

const fn endpoint(
    pattern: &'static str,
    operations: &'static [(Operation, crate::router::Handler)],
    sudo: bool,
) -> Endpoint {
    Endpoint {
        pattern,
        operations,
        sudo,
        existence: None::<Existence>,
        alias: None,
    }
}

/// An endpoint that reaches what another path of Vault's API reaches too.
const fn aliased(
    pattern: &'static str,
    operations: &'static [(Operation, crate::router::Handler)],
    alias: &'static str,
) -> Endpoint {
    Endpoint {
        alias: Some(alias),
        ..endpoint(pattern, operations, false)
    }
}

fn health(node: &Node, req: &Request) -> Result<Response> {
    let initialized = node.seal_config()?.is_some();
    let sealed = node.is_sealed();
    let code = |name: &str, default: u16| -> Result<u16> {
        match u64_param(&req.data, name)? {
            Some(code) => u16::try_from(code)
                .ok()
                .filter(|c| (100..600).contains(c))
                .ok_or_else(|| Error::bad_request(format!("`{name}` must be a status code"))),
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
    let now = std::time::SystemTime::now();
    Ok(Response::raw(
        status,
        json!({
            "initialized": initialized,
            "sealed": sealed,
            "standby": false,
            "performance_standby": false,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": now
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            "server_time": humantime::format_rfc3339_seconds(now).to_string(),
            "version": VERSION,
            "cluster_name": "tresor",
            "cluster_id": "",
            "storage_type": node.storage_kind(),
        }),
    ))
}

fn seal_status(node: &Node, _: &Request) -> Result<Response> {
    seal_status_of(node)
}

fn seal_status_of(node: &Node) -> Result<Response> {
    let config = node.seal_config()?;
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
            "sealed": node.is_sealed(),
            "t": t,
            "n": n,
            "progress": node.progress(),
            "nonce": "",
            "version": VERSION,
            "build_date": "",
            "migration": false,
            "recovery_seal": false,
            "storage_type": node.storage_kind(),
        }),
    ))
}

fn init_status(node: &Node, _: &Request) -> Result<Response> {
    Ok(Response::raw(
        200,
        json!({ "initialized": node.seal_config()?.is_some() }),
    ))
}

fn init(node: &Node, req: &Request) -> Result<Response> {
    let shares = u64_param(&req.data, "secret_shares")?.unwrap_or(5);
    let threshold = u64_param(&req.data, "secret_threshold")?.unwrap_or(3);
    let (Ok(shares), Ok(threshold)) = (u8::try_from(shares), u8::try_from(threshold)) else {
        return Err(Error::bad_request(
            "secret_shares and secret_threshold must be at most 255",
        ));
    };
    let out = node.initialize(shares, threshold)?;
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

fn unseal(node: &Node, req: &Request) -> Result<Response> {
    if bool_param(&req.data, "reset")?.unwrap_or(false) {
        node.reset_progress();
        return seal_status_of(node);
    }
    if !node.is_sealed() {
        return seal_status_of(node);
    }
    // A share that does not parse is refused without touching the
    // progress: anyone may call this endpoint.
    let share = Share::parse(&required_str(&req.data, "key")?)?;
    node.submit_share(share)?;
    seal_status_of(node)
}

fn leader(node: &Node, _: &Request) -> Result<Response> {
    Ok(Response::raw(
        200,
        json!({
            "ha_enabled": false,
            "is_self": !node.is_sealed(),
            "active_time": "0001-01-01T00:00:00Z",
            "leader_address": "",
            "leader_cluster_address": "",
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
            "raft_committed_index": 0,
            "raft_applied_index": 0,
        }),
    ))
}

pub(crate) fn mount_json(m: &MountEntry) -> Value {
    json!({
        "type": m.kind.name(),
        "description": m.description,
        "accessor": m.accessor,
        "uuid": m.uuid,
        "config": {
            "default_lease_ttl": m.config.default_lease_ttl,
            "max_lease_ttl": m.config.max_lease_ttl,
            "force_no_cache": false,
            "listing_visibility": m.config.listing_visibility.name(),
        },
        "options": m.kind.options(),
        "local": false,
        "seal_wrap": false,
        "external_entropy_access": false,
        "plugin_version": "",
        "running_plugin_version": "",
    })
}

fn list_mounts(ctx: &Ctx<'_>) -> Result<Response> {
    let mut data = Map::new();
    for m in ctx.unsealed.store.mounts()? {
        data.insert(m.path.clone(), mount_json(&m));
    }
    // Vault also puts the mounts at the top level; old clients read them there.
    Ok(Response::Envelope(crate::Envelope {
        data: Some(Value::Object(data)),
        data_at_top: true,
        ..crate::Envelope::default()
    }))
}

fn mount_of(ctx: &Ctx<'_>) -> Result<MountEntry> {
    let path = ctx.capture("path");
    ctx.unsealed
        .store
        .mount(path)
        .map_err(|_| Error::bad_request(format!("no mount at {path}/")))
}

fn read_mount(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(Response::data(mount_json(&mount_of(ctx)?)))
}

fn enable_mount(ctx: &Ctx<'_>) -> Result<Response> {
    let data = ctx.data();
    let kind = required_str(data, "type")?;
    let version = match data.get("options") {
        Some(Value::Object(options)) => options.get("version").and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }),
        _ => None,
    };
    match (kind.as_str(), version.as_deref()) {
        ("kv-v2", _) | ("kv", None | Some("2")) => {}
        ("kv", Some(_)) => return Err(Error::bad_request("only KV version 2 is supported")),
        _ => {
            return Err(Error::bad_request(format!(
                "plugin not found in the catalog: {kind}"
            )));
        }
    }
    let description = ctx.request.param_str("description").unwrap_or_default();
    ctx.unsealed
        .store
        .enable(ctx.capture("path"), MountType::KvV2, &description)?;
    Ok(Response::NoContent)
}

fn disable_mount(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.unsealed.store.disable(ctx.capture("path"))?;
    Ok(Response::NoContent)
}

fn tune_json(m: &MountEntry) -> Value {
    json!({
        "description": m.description,
        "default_lease_ttl": m.config.default_lease_ttl,
        "max_lease_ttl": m.config.max_lease_ttl,
        "force_no_cache": false,
        "listing_visibility": m.config.listing_visibility.name(),
        "options": m.kind.options(),
    })
}

fn read_tune(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(Response::data(tune_json(&mount_of(ctx)?)))
}

fn write_tune(ctx: &Ctx<'_>) -> Result<Response> {
    let data = ctx.data();
    let ttl = |name| -> Result<Option<u64>> {
        // Vault takes "system" for "back to the default".
        match data.get(name) {
            Some(Value::String(s)) if s == "system" => Ok(Some(0)),
            _ => Ok(duration_param(data, name)?.map(|d| d.as_secs())),
        }
    };
    let listing_visibility = match data.get("listing_visibility") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(ListingVisibility::parse(s).ok_or_else(|| {
            Error::bad_request("`listing_visibility` must be \"unauth\" or \"hidden\"")
        })?),
        Some(_) => return Err(Error::bad_request("`listing_visibility` must be a string")),
    };
    if let Some(Value::Object(options)) = data.get("options")
        && let Some(other) = options.keys().find(|k| *k != "version")
    {
        return Err(Error::bad_request(format!(
            "unknown mount option `{other}`"
        )));
    }
    let tune = Tune {
        description: data
            .get("description")
            .and_then(Value::as_str)
            .map(String::from),
        default_lease_ttl: ttl("default_lease_ttl")?,
        max_lease_ttl: ttl("max_lease_ttl")?,
        listing_visibility,
    };
    mount_of(ctx)?;
    ctx.unsealed.store.tune(ctx.capture("path"), &tune)?;
    Ok(Response::NoContent)
}

fn list_policies(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(Response::data(
        json!({ "keys": ctx.unsealed.policies.list()? }),
    ))
}

fn list_policies_legacy(ctx: &Ctx<'_>) -> Result<Response> {
    let names = ctx.unsealed.policies.list()?;
    Ok(Response::Envelope(crate::Envelope {
        data: Some(json!({ "policies": names, "keys": names })),
        data_at_top: true,
        ..crate::Envelope::default()
    }))
}

fn policy_text(ctx: &Ctx<'_>) -> Result<(String, String)> {
    let name = ctx.capture("name").to_owned();
    let text = if name == tresor_policy::ROOT_POLICY_NAME {
        Some(String::new())
    } else {
        ctx.unsealed.policies.read(&name)?
    };
    Ok((name, text.ok_or(Error::NotFound)?))
}

fn read_policy(ctx: &Ctx<'_>) -> Result<Response> {
    let (name, text) = policy_text(ctx)?;
    Ok(Response::data(json!({ "name": name, "policy": text })))
}

fn read_policy_legacy(ctx: &Ctx<'_>) -> Result<Response> {
    let (name, text) = policy_text(ctx)?;
    Ok(Response::data(json!({ "name": name, "rules": text })))
}

/// Both `sys/policies/acl/:name` and the legacy `sys/policy/:name`, whose
/// `rules` the canonical request already names `policy`.
fn write_policy(ctx: &Ctx<'_>) -> Result<Response> {
    let text = required_str(ctx.data(), "policy")?;
    ctx.unsealed.policies.write(ctx.capture("name"), &text)?;
    Ok(Response::NoContent)
}

fn delete_policy(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.unsealed.policies.delete(ctx.capture("name"))?;
    Ok(Response::NoContent)
}

fn list_audit(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(Response::data(ctx.unsealed.audit.list()))
}

fn enable_audit(ctx: &Ctx<'_>) -> Result<Response> {
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

fn disable_audit(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.unsealed.audit.disable(ctx.capture("path"))?;
    Ok(Response::NoContent)
}

fn audit_hash(ctx: &Ctx<'_>) -> Result<Response> {
    let input = required_str(ctx.data(), "input")?;
    let hash = ctx.unsealed.audit.hash(ctx.capture("path"), &input)?;
    Ok(Response::data(json!({ "hash": hash })))
}

fn audit_checkpoint(ctx: &Ctx<'_>) -> Result<Response> {
    match ctx.unsealed.audit.checkpoint(ctx.capture("id"))? {
        Some(checkpoint) => Ok(Response::data(json!(checkpoint))),
        None => Err(Error::NotFound),
    }
}

fn seal(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.node.seal();
    Ok(Response::NoContent)
}

fn key_status(ctx: &Ctx<'_>) -> Result<Response> {
    let status = ctx.unsealed.store.barrier().key_status()?;
    Ok(Response::data(json!({
        "term": status.term,
        "install_time": humantime::format_rfc3339_seconds(status.install_time).to_string(),
        "encryptions": null,
    })))
}

fn rotate(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.unsealed.store.barrier().rotate()?;
    Ok(Response::NoContent)
}

/// `sys/capabilities-self`: the caller's capabilities on each path.
fn capabilities_self(ctx: &Ctx<'_>) -> Result<Response> {
    let data = ctx.data();
    let paths = strings_param(data, "paths")?
        .or(strings_param(data, "path")?)
        .ok_or_else(|| Error::bad_request("missing required parameter `paths`"))?;
    let mut out = Map::new();
    for path in &paths {
        let names = ctx
            .caller
            .acl
            .capabilities(path.trim_start_matches('/'))
            .names();
        out.insert(path.clone(), json!(names));
    }
    if paths.len() == 1 {
        out.insert("capabilities".into(), out[&paths[0]].clone());
    }
    Ok(Response::data(Value::Object(out)))
}

fn ui_mounts(ctx: &Ctx<'_>) -> Result<Response> {
    let mut secret = Map::new();
    for m in ctx.unsealed.store.mounts()? {
        secret.insert(m.path.clone(), mount_json(&m));
    }
    Ok(Response::data(json!({ "secret": secret, "auth": {} })))
}

fn ui_mount(ctx: &Ctx<'_>) -> Result<Response> {
    let path = ctx.capture("path");
    let (mount, _) = ctx
        .unsealed
        .store
        .resolve(path)
        .map_err(|_| Error::bad_request(format!("no mount at {path}")))?;
    let mut data = mount_json(&mount);
    data["path"] = Value::String(mount.path.clone());
    Ok(Response::data(data))
}
