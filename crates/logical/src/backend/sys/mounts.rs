//! The mount tables: secrets engines (`sys/mounts`, `sys/remount`), auth
//! methods (`sys/auth`), their tuning, and what a token may see of them
//! (`sys/internal/ui/mounts`).

use crate::params::{duration_param, required_str};
use crate::router::Ctx;
use crate::{Envelope, Error, Response, Result};
use serde_json::{Map, Value, json};
use tresor_core::{ListingVisibility, MountEntry, MountType, Tune};

/// A mount as `sys/mounts` and `sys/auth` show it.
pub(crate) fn mount_json(m: &MountEntry) -> Value {
    let mut config = json!({
        "default_lease_ttl": m.config.default_lease_ttl,
        "max_lease_ttl": m.config.max_lease_ttl,
        "force_no_cache": false,
        "listing_visibility": m.config.listing_visibility.name(),
    });
    if m.kind == MountType::Token {
        config["token_type"] = json!("default-service");
    }
    json!({
        "type": m.kind.name(),
        "description": m.description,
        "accessor": m.accessor,
        "uuid": m.uuid,
        "config": config,
        "options": m.kind.options(),
        "local": false,
        "seal_wrap": false,
        "external_entropy_access": false,
        "plugin_version": "",
        "running_plugin_version": "",
        // Vault marks its builtin secrets engines so, not its auth methods.
        "deprecation_status": if m.kind.is_auth() { "" } else { "supported" },
    })
}

/// The mounts every store has and no one mounts or unmounts, as Vault
/// lists them: the system backend and the cubbyhole.
fn builtin_mounts() -> [(&'static str, Value); 2] {
    let fixed = |kind: &str, description: &str| {
        json!({
            "type": kind,
            "description": description,
            "accessor": format!("{kind}_builtin"),
            "uuid": "",
            "config": { "default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false },
            "options": null,
            "local": kind == "cubbyhole",
            "seal_wrap": false,
            "external_entropy_access": false,
            "plugin_version": "",
            "running_plugin_version": "",
        })
    };
    let mut system = fixed(
        "system",
        "system endpoints used for control, policy and debugging",
    );
    system["seal_wrap"] = json!(true);
    system["config"]["passthrough_request_headers"] = json!(["Accept"]);
    [
        (
            "cubbyhole/",
            fixed("cubbyhole", "per-token private secret storage"),
        ),
        ("sys/", system),
    ]
}

/// Vault also puts listed mounts at the top level; old clients read them there.
fn listing(data: Map<String, Value>) -> Response {
    Response::Envelope(Envelope {
        data: Some(Value::Object(data)),
        data_at_top: true,
        ..Envelope::default()
    })
}

pub(super) fn list(ctx: &Ctx<'_>) -> Result<Response> {
    let mut data: Map<String, Value> = builtin_mounts()
        .into_iter()
        .map(|(path, json)| (path.to_owned(), json))
        .collect();
    for m in ctx.unsealed.store.mounts()? {
        data.insert(m.path.clone(), mount_json(&m));
    }
    Ok(listing(data))
}

fn mount_of(ctx: &Ctx<'_>) -> Result<MountEntry> {
    let path = ctx.capture("path");
    ctx.unsealed
        .store
        .mount(path)
        .map_err(|_| Error::bad_request(format!("no mount at {path}/")))
}

pub(super) fn read(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(Response::data(mount_json(&mount_of(ctx)?)))
}

/// `options.version` of a request, as a string.
fn version_option(data: &Map<String, Value>) -> Result<Option<String>> {
    match data.get("options") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(options)) => {
            if let Some(other) = options.keys().find(|k| *k != "version") {
                return Err(Error::bad_request(format!(
                    "unknown mount option `{other}`"
                )));
            }
            Ok(options.get("version").and_then(|v| match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }))
        }
        Some(_) => Err(Error::bad_request("`options` must be a JSON object")),
    }
}

pub(super) fn enable(ctx: &Ctx<'_>) -> Result<Response> {
    let data = ctx.data();
    let kind = required_str(data, "type")?;
    let kind = match (kind.as_str(), version_option(data)?.as_deref()) {
        ("transit", None) => MountType::Transit,
        ("kv-v2", _) | ("kv", Some("2")) => MountType::KvV2,
        // Vault's `kv` without a version is version 1.
        ("kv", None | Some("1")) => MountType::KvV1,
        ("kv", Some(other)) => {
            return Err(Error::bad_request(format!(
                "KV version {other} does not exist; use 1 or 2"
            )));
        }
        _ => {
            return Err(Error::bad_request(format!(
                "plugin not found in the catalog: {kind}"
            )));
        }
    };
    let description = ctx.request.param_str("description").unwrap_or_default();
    ctx.unsealed
        .store
        .enable(ctx.capture("path"), kind, &description)?;
    Ok(Response::NoContent)
}

pub(super) fn disable(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.unsealed.store.disable(ctx.capture("path"))?;
    Ok(Response::NoContent)
}

/// The tune settings as Vault reports them: TTLs left to the system show
/// the system's.
fn tune_json(ctx: &Ctx<'_>, m: &MountEntry) -> Value {
    let system = ctx.unsealed.tokens.limits();
    let or_system = |ttl: u64, fallback: std::time::Duration| {
        if ttl == 0 { fallback.as_secs() } else { ttl }
    };
    json!({
        "description": m.description,
        "default_lease_ttl": or_system(m.config.default_lease_ttl, system.default_ttl),
        "max_lease_ttl": or_system(m.config.max_lease_ttl, system.max_ttl),
        "force_no_cache": false,
        "listing_visibility": m.config.listing_visibility.name(),
        "options": m.kind.options(),
    })
}

pub(super) fn read_tune(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(Response::data(tune_json(ctx, &mount_of(ctx)?)))
}

/// What a tune request changes, options aside.
fn tune_of(data: &Map<String, Value>) -> Result<Tune> {
    let ttl = |name| -> Result<Option<u64>> {
        // Vault takes "system" for "back to the default", and "" (what
        // the CLI sends for a flag not given) for "unchanged".
        match data.get(name) {
            Some(Value::String(s)) if s == "system" => Ok(Some(0)),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
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
    Ok(Tune {
        description: data
            .get("description")
            .and_then(Value::as_str)
            .map(String::from),
        default_lease_ttl: ttl("default_lease_ttl")?,
        max_lease_ttl: ttl("max_lease_ttl")?,
        listing_visibility,
    })
}

/// Changes TTLs, description and listing visibility; `options.version = 2`
/// on a KV version 1 mount upgrades it in place (`kv enable-versioning`).
/// Never creates nor deletes a mount.
pub(super) fn write_tune(ctx: &Ctx<'_>) -> Result<Response> {
    let mount = mount_of(ctx)?;
    let tune = tune_of(ctx.data())?;
    let version = version_option(ctx.data())?;
    match (mount.kind, version.as_deref()) {
        (_, None) | (MountType::KvV1, Some("1")) | (MountType::KvV2, Some("2")) => {}
        (MountType::KvV1, Some("2")) => {
            ctx.unsealed.store.upgrade_to_v2(&mount.path)?;
        }
        (MountType::KvV2, Some("1")) => {
            return Err(Error::bad_request(
                "a KV version 2 mount cannot go back to version 1",
            ));
        }
        (_, Some(other)) => {
            return Err(Error::bad_request(format!(
                "version {other} is not an option of this mount"
            )));
        }
    }
    ctx.unsealed.store.tune(&mount.path, &tune)?;
    Ok(Response::NoContent)
}

/// `sys/remount`: moves a mount (its data stays, named by its uuid).
/// Vault answers with a migration to poll; this one is done at once.
pub(super) fn remount(ctx: &Ctx<'_>) -> Result<Response> {
    let from = required_str(ctx.data(), "from")?;
    let to = required_str(ctx.data(), "to")?;
    if from.starts_with("auth/") || to.starts_with("auth/") {
        return Err(Error::bad_request(
            "auth mounts cannot be moved; disable and enable the method instead",
        ));
    }
    let moved = ctx.unsealed.store.remount(&from, &to)?;
    let id = ctx.node.record_remount(&from, &moved.path);
    Ok(Response::data(json!({ "migration_id": id })))
}

pub(super) fn remount_status(ctx: &Ctx<'_>) -> Result<Response> {
    let id = ctx.capture("id");
    let (from, to) = ctx.node.remount(id).ok_or(Error::NotFound)?;
    Ok(Response::data(json!({
        "migration_id": id,
        "migration_info": {
            "source_mount": from,
            "target_mount": to,
            "status": "success",
        },
    })))
}

pub(super) fn list_auth(ctx: &Ctx<'_>) -> Result<Response> {
    let data = ctx
        .unsealed
        .store
        .auth_mounts()?
        .iter()
        .map(|m| (m.path.clone(), mount_json(m)))
        .collect();
    Ok(listing(data))
}

fn auth_mount_of(ctx: &Ctx<'_>) -> Result<MountEntry> {
    let path = ctx.capture("path");
    ctx.unsealed
        .store
        .auth_mount(path)
        .map_err(|_| Error::bad_request(format!("no auth method at auth/{path}/")))
}

pub(super) fn read_auth(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(Response::data(mount_json(&auth_mount_of(ctx)?)))
}

pub(super) fn enable_auth(ctx: &Ctx<'_>) -> Result<Response> {
    let name = required_str(ctx.data(), "type")?;
    if name == "token" {
        return Err(Error::bad_request(
            "the token auth method is always enabled at auth/token/",
        ));
    }
    let kind = MountType::auth_method(&name)
        .ok_or_else(|| Error::bad_request(format!("plugin not found in the catalog: {name}")))?;
    let description = ctx.request.param_str("description").unwrap_or_default();
    ctx.unsealed
        .store
        .enable_auth(ctx.capture("path"), kind, &description)?;
    Ok(Response::NoContent)
}

pub(super) fn disable_auth(ctx: &Ctx<'_>) -> Result<Response> {
    if ctx.capture("path").trim_matches('/') == "token" {
        return Err(Error::bad_request(
            "the token auth method cannot be disabled",
        ));
    }
    ctx.unsealed.store.disable_auth(ctx.capture("path"))?;
    Ok(Response::NoContent)
}

pub(super) fn read_auth_tune(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(Response::data(tune_json(ctx, &auth_mount_of(ctx)?)))
}

pub(super) fn write_auth_tune(ctx: &Ctx<'_>) -> Result<Response> {
    let mount = auth_mount_of(ctx)?;
    if version_option(ctx.data())?.is_some() {
        return Err(Error::bad_request("auth methods have no version option"));
    }
    ctx.unsealed
        .store
        .tune_auth(&mount.path, &tune_of(ctx.data())?)?;
    Ok(Response::NoContent)
}

/// Whether the caller may see the mount at `path` (`auth/...` for auth
/// mounts): listed to everyone, or some policy of its grants something
/// under it, as Vault decides.
fn may_see(ctx: &Ctx<'_>, path: &str, visibility: ListingVisibility) -> bool {
    visibility == ListingVisibility::Unauth
        || ctx
            .caller
            .is_some_and(|c| c.acl.grants_anything_under(path))
}

/// `sys/internal/ui/mounts`: the mounts the caller may use, without a policy
/// naming this endpoint (anyone may ask; without a token, only the mounts
/// listed to everyone, and less about them).
pub(super) fn ui_mounts(ctx: &Ctx<'_>) -> Result<Response> {
    let shown = |m: &MountEntry| match ctx.caller {
        Some(_) => mount_json(m),
        None => json!({
            "type": m.kind.name(),
            "description": m.description,
            "options": m.kind.options(),
        }),
    };
    let mut secret = Map::new();
    if ctx
        .caller
        .is_some_and(|c| c.acl.grants_anything_under("cubbyhole/"))
    {
        let [(path, cubbyhole), _] = builtin_mounts();
        secret.insert(path.into(), cubbyhole);
    }
    for m in ctx.unsealed.store.mounts()? {
        if may_see(ctx, &m.path, m.config.listing_visibility) {
            secret.insert(m.path.clone(), shown(&m));
        }
    }
    let mut auth = Map::new();
    for m in ctx.unsealed.store.auth_mounts()? {
        if may_see(
            ctx,
            &format!("auth/{}", m.path),
            m.config.listing_visibility,
        ) {
            auth.insert(m.path.clone(), shown(&m));
        }
    }
    Ok(Response::data(json!({ "secret": secret, "auth": auth })))
}

/// `sys/internal/ui/mounts/<path>`: the mount serving `path`, if the caller
/// may use it, which is what the vault CLI asks before every `kv` command.
/// A mount the caller may not see, and one that does not exist, get the same
/// refusal, so this cannot list mounts.
pub(super) fn ui_mount(ctx: &Ctx<'_>) -> Result<Response> {
    let path = ctx.capture("path");
    let refused = || {
        Error::Denied(format!(
            "preflight capability check returned 403, please ensure client's policies grant access to path \"{path}/\""
        ))
    };
    if path == "cubbyhole" || path.starts_with("cubbyhole/") {
        if !may_see(ctx, "cubbyhole/", ListingVisibility::Hidden) {
            return Err(refused());
        }
        let [(_, mut cubbyhole), _] = builtin_mounts();
        cubbyhole["path"] = json!("cubbyhole/");
        return Ok(Response::data(cubbyhole));
    }
    let (mount, full) = match path.strip_prefix("auth/") {
        Some(rest) => {
            let (mount, _) = ctx
                .unsealed
                .store
                .resolve_auth(rest)
                .map_err(|_| refused())?;
            let full = format!("auth/{}", mount.path);
            (mount, full)
        }
        None => {
            let (mount, _) = ctx.unsealed.store.resolve(path).map_err(|_| refused())?;
            let full = mount.path.clone();
            (mount, full)
        }
    };
    if !may_see(ctx, &full, ListingVisibility::Hidden) {
        return Err(refused());
    }
    let mut data = mount_json(&mount);
    data["path"] = Value::String(mount.path.clone());
    Ok(Response::data(data))
}
