//! After promotion: the changed secrets' stored values to every place the
//! spec delivers them, as `tresor k8s apply` (the cluster, restarting
//! consumers) and `tresor apply` (AWS Secrets Manager and Vault targets)
//! deliver them.

use crate::RotateError;
use std::time::SystemTime;
use tresor_kv::SecretMap;
use tresor_platform::{
    DeliveryReport, Destination, Entry, Plan, PushResult, SecretSpec, SecretStore, Spec,
};

/// What became of delivering rotated secrets to the cluster.
#[derive(Debug, PartialEq, Eq)]
pub enum Kubernetes {
    /// The spec names no cluster (`kubernetes.context`): nothing to do.
    NoCluster,
    /// This build has no Kubernetes support (the `kubernetes` feature).
    Unsupported,
    /// Applied; kubectl-style lines of what happened.
    Applied(Vec<String>),
}

/// Where rotated secrets went.
#[derive(Debug)]
pub struct Delivery {
    /// The cluster; an error when it was unreachable or refused.
    pub kubernetes: Result<Kubernetes, RotateError>,
    /// AWS Secrets Manager and Vault targets, one entry per push.
    pub targets: DeliveryReport,
}

impl Delivery {
    /// Whether every place `secret` is delivered to now holds its stored
    /// values.
    pub fn complete(&self, secret: &str) -> bool {
        matches!(
            self.kubernetes,
            Ok(Kubernetes::NoCluster | Kubernetes::Applied(_))
        ) && self.targets.complete(secret)
    }
}

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
/// others.
pub fn deliver(spec: &Spec, store: &dyn SecretStore, names: &[String]) -> Delivery {
    let secrets: Vec<&SecretSpec> = spec
        .secrets
        .iter()
        .filter(|s| names.contains(&s.name))
        .collect();
    let kubernetes = match spec.kubernetes.context.as_deref() {
        None => Ok(Kubernetes::NoCluster),
        Some(_) if secrets.is_empty() => Ok(Kubernetes::Applied(Vec::new())),
        Some(context) => stored(store, &secrets).and_then(|v| apply(spec, &v, context)),
    };
    let targets = push(spec, store, &secrets);
    Delivery {
        kubernetes,
        targets,
    }
}

/// Each secret's values as the store holds them now.
fn stored<'a>(
    store: &dyn SecretStore,
    secrets: &[&'a SecretSpec],
) -> Result<Vec<(&'a SecretSpec, SecretMap)>, RotateError> {
    secrets.iter().map(|s| Ok((*s, read(store, s)?))).collect()
}

fn read(store: &dyn SecretStore, secret: &SecretSpec) -> Result<SecretMap, RotateError> {
    store
        .read(&secret.path)?
        .data
        .ok_or_else(|| RotateError::Missing(secret.name.clone()))
}

/// Pushes to the AWS and Vault targets through the path `tresor apply`
/// takes; a secret that cannot be read is reported failed at each target.
fn push(spec: &Spec, store: &dyn SecretStore, secrets: &[&SecretSpec]) -> DeliveryReport {
    let secrets: Vec<&SecretSpec> = secrets.iter().copied().filter(|s| has_targets(s)).collect();
    if secrets.is_empty() {
        return DeliveryReport::default();
    }
    let mut unread = DeliveryReport::default();
    let mut values = Vec::new();
    for secret in &secrets {
        match read(store, secret) {
            Ok(data) => values.push((*secret, data)),
            Err(e) => unread.entries.push(failed("store", secret, e.to_string())),
        }
    }
    // Vault targets may take their token from a declared key: the plan
    // resolves it as `tresor apply` would.
    let needs_plan = secrets.iter().any(|s| s.targets.vault.is_some());
    let plan = if needs_plan {
        tresor_platform::plan(spec, Some(store), SystemTime::now())
    } else {
        Ok(Plan {
            secrets: Vec::new(),
        })
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            for secret in &secrets {
                unread.entries.push(failed("store", secret, e.to_string()));
            }
            return unread;
        }
    };
    let mut vault = tresor_vault::VaultDestination::new(&spec.name, &plan);
    let mut destinations: Vec<&mut dyn Destination> = vec![&mut vault];
    #[cfg(feature = "aws")]
    let mut aws = tresor_aws::AwsDestination::new(&spec.name);
    #[cfg(feature = "aws")]
    destinations.push(&mut aws);
    let pairs: Vec<(&str, &SecretMap)> = values.iter().map(|(s, d)| (s.name.as_str(), d)).collect();
    let mut report = tresor_platform::deliver_values(spec, &pairs, &mut destinations);
    #[cfg(not(feature = "aws"))]
    for (secret, _) in values.iter().filter(|(s, _)| s.targets.aws.is_some()) {
        report.entries.push(failed(
            "aws",
            secret,
            "this build has no AWS support (the `aws` feature); deliver with a build that has it"
                .into(),
        ));
    }
    report.entries.extend(unread.entries);
    report
}

fn failed(kind: &'static str, secret: &SecretSpec, why: String) -> Entry {
    Entry {
        kind,
        secret: secret.name.clone(),
        place: secret.name.clone(),
        result: PushResult::Failed(why),
    }
}

#[cfg(feature = "kubernetes")]
fn apply(
    spec: &Spec,
    values: &[(&SecretSpec, SecretMap)],
    context: &str,
) -> Result<Kubernetes, RotateError> {
    use tresor_kube::{ApplyOptions, Delivery};
    use zeroize::Zeroizing;

    let mut deliveries = Vec::new();
    for (secret, data) in values {
        let values = secret
            .keys
            .iter()
            .map(|k| {
                let v = data
                    .get(&k.name)
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| RotateError::Missing(secret.name.clone()))?;
                Ok((k.name.clone(), Zeroizing::new(v.as_bytes().to_vec())))
            })
            .collect::<Result<Vec<_>, RotateError>>()?;
        deliveries.push(Delivery {
            name: secret.name.clone(),
            namespace: secret.namespace.clone(),
            data: values,
        });
    }
    let runtime = tresor_kube::runtime().map_err(RotateError::Runtime)?;
    let report = runtime
        .block_on(async {
            let client = tresor_kube::connect(Some(context)).await?;
            tresor_kube::apply(
                &client,
                Some(context),
                spec,
                &deliveries,
                ApplyOptions::default(),
                SystemTime::now(),
            )
            .await
        })
        .map_err(|e| RotateError::Deliver(Box::new(e)))?;
    Ok(Kubernetes::Applied(report.lines))
}

#[cfg(not(feature = "kubernetes"))]
fn apply(
    _spec: &Spec,
    _values: &[(&SecretSpec, SecretMap)],
    _context: &str,
) -> Result<Kubernetes, RotateError> {
    Ok(Kubernetes::Unsupported)
}
