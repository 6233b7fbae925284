//! One delivery path for `tresor apply`, `tresor k8s apply` and rotation:
//! a platform's values to every place its spec names besides the store (its
//! cluster, and each secret's AWS Secrets Manager and Vault targets), with
//! one report. A failure at one place does not stop the others.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use tresor_kv::SecretMap;
use tresor_platform::{
    Destination, KeyRef, Plan, PlatformError, PushReport, SecretSpec, SecretStore, Spec,
};
use zeroize::Zeroizing;

/// Why values could not be gathered or delivered. Never holds a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    #[error("secret `{0}` is not in the store yet")]
    MissingSecret(String),
    #[error("key `{secret}/{key}` is not in the store yet")]
    MissingKey { secret: String, key: String },
    #[error(transparent)]
    Store(#[from] PlatformError),
    #[cfg(feature = "kubernetes")]
    #[error(transparent)]
    Kube(Box<tresor_kube::KubeError>),
    #[error("cannot start an I/O runtime to deliver: {0}")]
    Runtime(std::io::Error),
}

impl DeliveryError {
    /// Whether the input was at fault (a secret not stored yet, a bad
    /// spec) rather than a place failing.
    pub fn is_usage(&self) -> bool {
        match self {
            DeliveryError::MissingSecret(_) | DeliveryError::MissingKey { .. } => true,
            DeliveryError::Store(e) => e.is_usage(),
            _ => false,
        }
    }
}

/// What to deliver: some secrets of one spec, each with its values.
pub struct Values<'a> {
    spec: &'a Spec,
    secrets: Vec<(&'a SecretSpec, Cow<'a, SecretMap>)>,
    /// Where a Vault token named by `auth.token_ref` is read when its
    /// secret is not among these.
    store: Option<&'a dyn SecretStore>,
}

impl<'a> Values<'a> {
    /// What `plan` writes: every declared secret, in the plan's order.
    pub fn planned(spec: &'a Spec, plan: &'a Plan) -> Self {
        let secrets = plan
            .secrets
            .iter()
            .filter_map(|p| {
                let secret = spec.secrets.iter().find(|s| s.name == p.name)?;
                Some((secret, Cow::Borrowed(p.data())))
            })
            .collect();
        Self {
            spec,
            secrets,
            store: None,
        }
    }

    /// `secrets` as `store` holds them now, each with all its declared
    /// keys. The store may be closed once they are read (see
    /// [`Values::tokens_from`]).
    pub fn stored(
        spec: &'a Spec,
        store: &dyn SecretStore,
        secrets: impl IntoIterator<Item = &'a SecretSpec>,
    ) -> Result<Self, DeliveryError> {
        let mut found = Vec::new();
        for secret in secrets {
            let data = store
                .read(&secret.path)?
                .data
                .ok_or_else(|| DeliveryError::MissingSecret(secret.name.clone()))?;
            if let Some(key) = secret
                .keys
                .iter()
                .find(|k| data.get(&k.name).and_then(|v| v.as_str()).is_none())
            {
                return Err(DeliveryError::MissingKey {
                    secret: secret.name.clone(),
                    key: key.name.clone(),
                });
            }
            found.push((secret, Cow::Owned(data)));
        }
        Ok(Self {
            spec,
            secrets: found,
            store: None,
        })
    }

    /// Vault tokens that targets take from declared keys (`auth.token_ref`)
    /// are read from `store` when their secret is not among these values.
    pub fn tokens_from(self, store: &'a dyn SecretStore) -> Self {
        Self {
            store: Some(store),
            ..self
        }
    }

    /// The value of a declared key: among these values, else in the store.
    fn value(&self, key: &KeyRef) -> Option<Zeroizing<String>> {
        let string = |data: &SecretMap| {
            data.get(&key.key)
                .and_then(|v| v.as_str())
                .map(|v| Zeroizing::new(v.to_owned()))
        };
        if let Some((_, data)) = self.secrets.iter().find(|(s, _)| s.name == key.secret) {
            return string(data);
        }
        let secret = self.spec.secrets.iter().find(|s| s.name == key.secret)?;
        let stored = self.store?.read(&secret.path).ok()?.data?;
        string(&stored)
    }

    /// The Kubernetes Secrets among these: each declared key's bytes.
    #[cfg(feature = "kubernetes")]
    pub fn kubernetes(&self) -> Vec<tresor_kube::SecretValues> {
        self.secrets
            .iter()
            .filter(|(s, _)| s.targets.kubernetes)
            .map(|(secret, data)| tresor_kube::SecretValues {
                name: secret.name.clone(),
                namespace: secret.namespace.clone(),
                data: secret
                    .keys
                    .iter()
                    .filter_map(|k| {
                        let value = data.get(&k.name)?.as_str()?;
                        Some((k.name.clone(), Zeroizing::new(value.as_bytes().to_vec())))
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Where to deliver.
#[derive(Debug, Default)]
pub struct Options {
    /// The cluster, or `None` not to deliver to one.
    pub cluster: Option<Cluster>,
    /// Push to the AWS Secrets Manager and Vault targets too.
    pub targets: bool,
}

/// A cluster to apply the Kubernetes Secrets to, and how.
#[derive(Debug, Default)]
pub struct Cluster {
    /// The kubeconfig context; `None`: the current one.
    pub context: Option<String>,
    /// Delete this platform's Secrets that the spec no longer declares.
    pub prune: bool,
    /// Also apply each consumer's ServiceAccount, Role and RoleBinding.
    pub rbac: bool,
    /// Take over fields another field manager owns.
    pub force_conflicts: bool,
}

/// What became of delivering to the cluster.
#[derive(Debug, PartialEq, Eq)]
pub enum Kubernetes {
    /// No cluster was asked for (the spec names no `kubernetes.context`).
    NoCluster,
    /// This build has no Kubernetes support (the `kubernetes` feature).
    Unsupported,
    /// Applied; kubectl-style lines of what happened.
    Applied(Vec<String>),
}

/// Where the values went.
#[derive(Debug)]
pub struct Report {
    /// The cluster; an error when it was unreachable or refused.
    pub kubernetes: Result<Kubernetes, DeliveryError>,
    /// AWS Secrets Manager and Vault targets, one entry per push.
    pub targets: PushReport,
}

impl Report {
    /// Whether every place `secret` is delivered to now holds its values.
    pub fn complete(&self, secret: &str) -> bool {
        matches!(
            self.kubernetes,
            Ok(Kubernetes::NoCluster | Kubernetes::Applied(_))
        ) && self.targets.complete(secret)
    }
}

/// Delivers `values` where `options` says: first the pushes to the AWS and
/// Vault targets (several at once), then the cluster.
pub fn deliver(values: &Values<'_>, options: &Options) -> Report {
    let targets = if options.targets {
        push(values)
    } else {
        PushReport::default()
    };
    let kubernetes = match &options.cluster {
        None => Ok(Kubernetes::NoCluster),
        Some(cluster) => apply(values, cluster),
    };
    Report {
        kubernetes,
        targets,
    }
}

fn push(values: &Values<'_>) -> PushReport {
    let pairs: Vec<(&str, &SecretMap)> = values
        .secrets
        .iter()
        .filter(|(s, _)| s.targets.aws.is_some() || s.targets.vault.is_some())
        .map(|(s, data)| (s.name.as_str(), data.as_ref()))
        .collect();
    if pairs.is_empty() {
        return PushReport::default();
    }
    let tokens = |key: &KeyRef| values.value(key);
    let mut vault = tresor_vault::VaultDestination::new(&values.spec.name, &tokens);
    let mut destinations: Vec<&mut dyn Destination> = vec![&mut vault];
    #[cfg(feature = "aws")]
    let mut aws = tresor_aws::AwsDestination::new(&values.spec.name);
    #[cfg(feature = "aws")]
    destinations.push(&mut aws);
    let report = tresor_platform::push(values.spec, &pairs, &mut destinations);
    #[cfg(not(feature = "aws"))]
    let report = without_aws(report, values, &pairs);
    report
}

/// Each AWS push, failed: this build cannot make it.
#[cfg(not(feature = "aws"))]
fn without_aws(
    mut report: PushReport,
    values: &Values<'_>,
    pairs: &[(&str, &SecretMap)],
) -> PushReport {
    for (name, _) in pairs {
        if values
            .spec
            .secrets
            .iter()
            .any(|s| s.name == *name && s.targets.aws.is_some())
        {
            report.entries.push(tresor_platform::Entry {
                kind: "aws",
                secret: (*name).to_owned(),
                place: (*name).to_owned(),
                result: tresor_platform::PushResult::Failed(
                    "this build has no AWS support (the `aws` feature); deliver with a build that has it".into(),
                ),
            });
        }
    }
    report
}

#[cfg(feature = "kubernetes")]
fn apply(values: &Values<'_>, cluster: &Cluster) -> Result<Kubernetes, DeliveryError> {
    let secrets = values.kubernetes();
    let options = tresor_kube::ApplyOptions {
        prune: cluster.prune,
        rbac: cluster.rbac,
        force_conflicts: cluster.force_conflicts,
    };
    let context = cluster.context.as_deref();
    let runtime = tresor_kube::runtime().map_err(DeliveryError::Runtime)?;
    let report = runtime
        .block_on(async {
            let client = tresor_kube::connect(context).await?;
            tresor_kube::apply(
                &client,
                context,
                values.spec,
                &secrets,
                options,
                std::time::SystemTime::now(),
            )
            .await
        })
        .map_err(|e| DeliveryError::Kube(Box::new(e)))?;
    Ok(Kubernetes::Applied(report.lines))
}

#[cfg(not(feature = "kubernetes"))]
fn apply(_values: &Values<'_>, _cluster: &Cluster) -> Result<Kubernetes, DeliveryError> {
    Ok(Kubernetes::Unsupported)
}
