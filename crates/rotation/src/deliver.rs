//! After promotion: the changed secrets' stored values to every place the
//! spec delivers them, through the delivery path of `tresor apply`.

use crate::RotateError;
use tresor_delivery::{Cluster, DeliveryError, Kubernetes, Options, Report, Values};
use tresor_platform::{Entry, PushReport, PushResult, SecretSpec, SecretStore, Spec};

/// Whether any of `names` is delivered beyond the store.
pub(crate) fn needed(spec: &Spec, names: &[String]) -> bool {
    spec.kubernetes.context.is_some()
        || spec
            .secrets
            .iter()
            .filter(|s| names.contains(&s.name))
            .any(has_targets)
}

fn has_targets(secret: &SecretSpec) -> bool {
    secret.targets.aws.is_some() || secret.targets.vault.is_some()
}

/// Delivers the named secrets' stored values to the spec's cluster and to
/// their AWS and Vault targets. A failure at one place does not stop the
/// others; a secret that cannot be read is reported failed, and the rest
/// still go.
pub fn deliver(
    spec: &Spec,
    store: &dyn SecretStore,
    names: &[String],
) -> Result<Report, RotateError> {
    let mut readable = Vec::new();
    let mut unread = Vec::new();
    for secret in spec.secrets.iter().filter(|s| names.contains(&s.name)) {
        match store.read(&secret.path) {
            Ok(stored) if stored.data.is_some() => readable.push(secret),
            Ok(_) => unread.push((secret, RotateError::Missing(secret.name.clone()))),
            Err(e) => unread.push((secret, RotateError::Store(e))),
        }
    }
    let mut report = if readable.is_empty() {
        let kubernetes = match spec.kubernetes.context {
            Some(_) if unread.is_empty() => Ok(Kubernetes::Applied(Vec::new())),
            Some(_) => Err(DeliveryError::MissingSecret(unread[0].0.name.clone())),
            None => Ok(Kubernetes::NoCluster),
        };
        Report {
            kubernetes,
            targets: PushReport::default(),
        }
    } else {
        let values = Values::stored(spec, store, readable)
            .map_err(|e| match e {
                DeliveryError::MissingSecret(secret) | DeliveryError::MissingKey { secret, .. } => {
                    RotateError::Missing(secret)
                }
                DeliveryError::Store(e) => RotateError::Store(e),
                other => RotateError::Delivery(other),
            })?
            .tokens_from(store);
        let options = Options {
            cluster: spec.kubernetes.context.clone().map(|context| Cluster {
                context: Some(context),
                ..Cluster::default()
            }),
            targets: true,
        };
        tresor_delivery::deliver(&values, &options)
    };
    for (secret, why) in unread {
        report.targets.entries.push(Entry {
            kind: "store",
            secret: secret.name.clone(),
            place: secret.name.clone(),
            result: PushResult::Failed(why.to_string()),
        });
    }
    Ok(report)
}
