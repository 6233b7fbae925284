//! The `sys/` endpoints: seal state, mounts and their tuning, policies,
//! audit devices, the keyring, capabilities, response wrapping.

mod audit;
mod capabilities;
mod mounts;
mod policies;
mod wrapping;

use crate::node::Node;
use crate::params::{bool_param, required_str, u64_param};
use crate::router::{Access, Ctx, Endpoint};
use crate::{Error, Response, Result};
use serde_json::json;
use tresor_barrier::SealKind;
use tresor_barrier::seal::Share;
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
    Endpoint::new("mounts", &[(Read, mounts::list)]),
    Endpoint::new(
        "mounts/*path/tune",
        &[(Read, mounts::read_tune), (Update, mounts::write_tune)],
    ),
    Endpoint::new(
        "mounts/*path",
        &[
            (Read, mounts::read),
            (Update, mounts::enable),
            (Delete, mounts::disable),
        ],
    ),
    Endpoint::new("remount", &[(Update, mounts::remount)]).sudo(),
    Endpoint::new("remount/status/:id", &[(Read, mounts::remount_status)]),
    Endpoint::new("auth", &[(Read, mounts::list_auth)]),
    Endpoint::new(
        "auth/*path/tune",
        &[
            (Read, mounts::read_auth_tune),
            (Update, mounts::write_auth_tune),
        ],
    )
    .sudo(),
    Endpoint::new(
        "auth/*path",
        &[
            (Read, mounts::read_auth),
            (Update, mounts::enable_auth),
            (Delete, mounts::disable_auth),
        ],
    )
    .sudo(),
    Endpoint::new("internal/ui/mounts", &[(Read, mounts::ui_mounts)]).access(Access::Anyone),
    Endpoint::new("internal/ui/mounts/*path", &[(Read, mounts::ui_mount)]).access(Access::AnyToken),
    Endpoint::new("policies/acl", &[(List, policies::list_policies)]),
    Endpoint::new(
        "policies/acl/:name",
        &[
            (Read, policies::read_policy),
            (Update, policies::write_policy),
            (Delete, policies::delete_policy),
        ],
    )
    .alias("sys/policy/:name"),
    Endpoint::new(
        "policy",
        &[
            (Read, policies::list_policies_legacy),
            (List, policies::list_policies_legacy),
        ],
    ),
    Endpoint::new(
        "policy/:name",
        &[
            (Read, policies::read_policy_legacy),
            (Update, policies::write_policy),
            (Delete, policies::delete_policy),
        ],
    )
    .alias("sys/policies/acl/:name"),
    Endpoint::new("audit", &[(Read, audit::list_audit)]).sudo(),
    Endpoint::new(
        "audit/:path",
        &[
            (Update, audit::enable_audit),
            (Delete, audit::disable_audit),
        ],
    )
    .sudo(),
    Endpoint::new("audit-hash/:path", &[(Update, audit::audit_hash)]),
    Endpoint::new("audit-checkpoint/:id", &[(Read, audit::audit_checkpoint)]).sudo(),
    Endpoint::new("seal", &[(Update, seal)]).sudo(),
    Endpoint::new("key-status", &[(Read, key_status)]),
    Endpoint::new("rotate", &[(Update, rotate)]).sudo(),
    Endpoint::new("capabilities-self", &[(Update, capabilities::of_caller)]),
    Endpoint::new("capabilities", &[(Update, capabilities::of_token)]),
    Endpoint::new(
        "capabilities-accessor",
        &[(Update, capabilities::of_accessor)],
    ),
    Endpoint::new("wrapping/wrap", &[(Update, wrapping::wrap)]),
    Endpoint::new("wrapping/unwrap", &[(Update, wrapping::unwrap)]),
    Endpoint::new("wrapping/rewrap", &[(Update, wrapping::rewrap)]),
    Endpoint::new(
        "wrapping/lookup",
        &[(Read, wrapping::lookup), (Update, wrapping::lookup)],
    )
    .access(Access::Anyone),
];

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
    let (n, t) = match config.as_ref().map(|c| &c.seal) {
        Some(SealKind::Shamir { shares, threshold }) => (*shares, *threshold),
        Some(SealKind::KeyFile { .. }) => (1, 1),
        None => (0, 0),
    };
    let kind = config.as_ref().map_or("shamir", |c| c.type_name());
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
            "recovery_seal": config.as_ref().is_some_and(|c| c.kms.is_some()),
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
    // With a KMS seal, Vault takes recovery shares instead.
    let (shares, threshold) = if node.seals_with_kms() {
        ("recovery_shares", "recovery_threshold")
    } else {
        ("secret_shares", "secret_threshold")
    };
    let count = |name, default| -> Result<u8> {
        u8::try_from(u64_param(&req.data, name)?.unwrap_or(default))
            .map_err(|_| Error::bad_request(format!("`{name}` must be at most 255")))
    };
    let out = node.initialize(count(shares, 5)?, count(threshold, 3)?)?;
    let hex: Vec<String> = out.shares.iter().map(|s| s.to_hex().to_string()).collect();
    let b64: Vec<String> = out
        .shares
        .iter()
        .map(|s| s.to_base64().to_string())
        .collect();
    let body = if out.recovery {
        json!({
            "keys": [],
            "keys_base64": [],
            "recovery_keys": hex,
            "recovery_keys_base64": b64,
            "root_token": out.root_token.as_str(),
        })
    } else {
        json!({
            "keys": hex,
            "keys_base64": b64,
            "root_token": out.root_token.as_str(),
        })
    };
    Ok(Response::raw(200, body))
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

/// One server, no HA cluster: what OpenBao answers then.
fn leader(_: &Node, _: &Request) -> Result<Response> {
    Ok(Response::raw(200, json!({ "ha_enabled": false })))
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
        "encryptions": status.encryptions,
    })))
}

fn rotate(ctx: &Ctx<'_>) -> Result<Response> {
    ctx.unsealed.store.barrier().rotate()?;
    Ok(Response::NoContent)
}
