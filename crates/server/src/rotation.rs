//! `[rotation]` in tresor.toml: the server runs the due rotations of a
//! platform spec on a schedule, against its own store, and writes each one
//! to the audit log. Several servers on one store may all run it: the
//! rotation record's lease (a check-and-set write) lets one rotate a secret
//! at a time, and the others skip it.

use serde::{Deserialize, Deserializer};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tresor_audit::{AuditEntry, AuthInfo, EntryKind, RequestInfo, ResponseInfo};
use tresor_logical::{Node, Unsealed};
use tresor_platform::StoreSpec;
use tresor_rotation::{Engine, Kubernetes, RotateError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// The platform spec whose `rotation:` policies the server runs; read
    /// again at every check, so edits apply without a restart.
    pub spec: PathBuf,
    /// How often to look for due rotations.
    #[serde(default = "default_check_interval", deserialize_with = "duration")]
    pub check_interval: Duration,
}

fn default_check_interval() -> Duration {
    Duration::from_secs(60)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    match tresor_kv::parse_duration(&text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(serde::de::Error::custom(
            "check_interval must be longer than zero, for example \"1m\"",
        )),
        Err(e) => Err(serde::de::Error::custom(e)),
    }
}

/// Checks for due rotations every `check_interval`, forever.
pub async fn schedule(core: Arc<Node>, config: RotationConfig) {
    let mut interval = tokio::time::interval(config.check_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let core = Arc::clone(&core);
        let spec = config.spec.clone();
        let _ = tokio::task::spawn_blocking(move || {
            // A sealed server has nothing to rotate with.
            if let Ok(unsealed) = core.unsealed() {
                run_due(&unsealed, &spec);
            }
        })
        .await;
    }
}

/// One check: retire replaced logins past their grace period, rotate what
/// is due or unfinished, deliver what changed.
fn run_due(unsealed: &Unsealed, file: &Path) {
    let spec = match tresor_platform::load(file) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::error!(error = %e, "rotation: the platform spec cannot be used; nothing rotated");
            return;
        }
    };
    let mount = match &spec.store {
        StoreSpec::Embedded { mount, .. } => mount.clone(),
        StoreSpec::Server { .. } => "secret".into(),
    };
    let kv = match unsealed.store.mount(&mount) {
        Ok(m) => unsealed.store.kv(&m),
        Err(e) => {
            tracing::error!(error = %e, mount, "rotation: the spec's KV mount is not usable");
            return;
        }
    };
    let engine = Engine::new(&spec, &kv);
    let rows = match tresor_rotation::status(&spec, Some(&kv), SystemTime::now()) {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "rotation: cannot read the rotation status");
            return;
        }
    };
    let mut changed = Vec::new();
    for row in rows.iter().filter(|r| r.rotator.is_some()) {
        let Ok(secret) = engine.secret(&row.secret) else {
            continue;
        };
        match engine.retire_due(secret, SystemTime::now()) {
            Ok(Some(role)) => {
                tracing::info!(
                    secret = row.secret,
                    role,
                    "rotation: replaced login retired"
                );
                audit(
                    unsealed,
                    &mount,
                    &row.secret,
                    "retire",
                    Ok(json!({ "role": role })),
                );
            }
            Ok(None) | Err(RotateError::Busy { .. }) => {}
            Err(e) => {
                tracing::warn!(secret = row.secret, error = %e, "rotation: retirement failed");
                audit(unsealed, &mount, &row.secret, "retire", Err(&e));
            }
        }
        if !row.due() {
            continue;
        }
        match engine.rotate_if_due(secret, SystemTime::now()) {
            Ok(None) => {}
            Ok(Some(rotated)) => {
                tracing::info!(
                    secret = row.secret,
                    version = rotated.version,
                    "rotation: rotated"
                );
                let data = json!({
                    "version": rotated.version,
                    "changed": rotated.changed,
                    "resumed_after": rotated.resumed_after,
                });
                audit(unsealed, &mount, &row.secret, "rotate", Ok(data));
                changed.extend(rotated.changed);
            }
            // Another server has it: that one finishes and audits it.
            Err(RotateError::Busy { holder, .. }) => {
                tracing::info!(
                    secret = row.secret,
                    holder,
                    "rotation: skipped, another process holds the lease"
                );
            }
            Err(e) => {
                tracing::warn!(secret = row.secret, error = %e, "rotation: failed");
                audit(unsealed, &mount, &row.secret, "rotate", Err(&e));
            }
        }
    }
    deliver(&engine, &changed);
}

/// Delivers what this check rotated and what earlier checks left
/// undelivered; a failure is logged and the next check retries.
fn deliver(engine: &Engine, changed: &[String]) {
    let delivery = match engine.deliver(changed) {
        Ok(delivery) => delivery,
        Err(e) => {
            tracing::warn!(error = %e, "rotation: delivery failed; the next check retries");
            return;
        }
    };
    for line in delivery.targets.lines().lines() {
        tracing::info!(line, "rotation: delivered");
    }
    if let Some(counts) = delivery.targets.counts() {
        tracing::warn!(
            counts,
            "rotation: delivery incomplete; the next check retries"
        );
    }
    match delivery.kubernetes {
        Ok(Kubernetes::Applied(lines)) => {
            for line in lines {
                tracing::info!(line, "rotation: delivered");
            }
        }
        Ok(Kubernetes::NoCluster) if !changed.is_empty() => tracing::info!(
            secrets = ?changed,
            "rotation: not delivered, the spec names no cluster (kubernetes.context)"
        ),
        Ok(Kubernetes::NoCluster) => {}
        Ok(Kubernetes::Unsupported) => tracing::warn!(
            secrets = ?changed,
            "rotation: not delivered, this build has no Kubernetes support"
        ),
        Err(e) => tracing::warn!(error = %e, "rotation: delivery failed; the next check retries"),
    }
}

/// One audit entry per rotation or retirement: what happened, never a value.
fn audit(
    unsealed: &Unsealed,
    mount: &str,
    secret: &str,
    operation: &str,
    outcome: Result<serde_json::Value, &RotateError>,
) {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).expect("the operating system's random generator failed");
    let (data, error) = match outcome {
        Ok(data) => (Some(data), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let entry = AuditEntry {
        kind: EntryKind::Response,
        auth: Some(AuthInfo {
            display_name: "rotation-scheduler".into(),
            ..AuthInfo::default()
        }),
        request: RequestInfo {
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            operation: operation.into(),
            path: format!("{mount}/rotation/{secret}"),
            mount_type: Some("kv".into()),
            ..RequestInfo::default()
        },
        response: Some(ResponseInfo {
            mount_type: Some("kv".into()),
            auth: None,
            data,
        }),
        error,
    };
    if let Err(e) = unsealed.audit.log(&entry) {
        tracing::error!(error = ?e, secret, "rotation: the audit log refused the entry");
    }
}
