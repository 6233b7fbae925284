//! After promotion: the changed Secrets to the cluster, as `tresor k8s
//! apply` delivers them, restarting their consumers.

use crate::RotateError;
use tresor_platform::{SecretStore, Spec};

/// What became of delivering rotated secrets.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivered {
    /// The spec names no cluster (`kubernetes.context`): nothing to do.
    NoCluster,
    /// This build has no Kubernetes support (the `kubernetes` feature).
    Unsupported,
    /// Applied; kubectl-style lines of what happened.
    Applied(Vec<String>),
}

/// Delivers the named secrets' stored values to the spec's cluster.
pub fn deliver(
    spec: &Spec,
    store: &dyn SecretStore,
    names: &[String],
) -> Result<Delivered, RotateError> {
    let Some(context) = spec.kubernetes.context.as_deref() else {
        return Ok(Delivered::NoCluster);
    };
    if names.is_empty() {
        return Ok(Delivered::Applied(Vec::new()));
    }
    apply(spec, store, names, context)
}

#[cfg(feature = "kubernetes")]
fn apply(
    spec: &Spec,
    store: &dyn SecretStore,
    names: &[String],
    context: &str,
) -> Result<Delivered, RotateError> {
    use std::time::SystemTime;
    use tresor_kube::{ApplyOptions, Delivery};
    use zeroize::Zeroizing;

    let mut deliveries = Vec::new();
    for secret in spec.secrets.iter().filter(|s| names.contains(&s.name)) {
        let data = store
            .read(&secret.path)?
            .data
            .ok_or_else(|| RotateError::Missing(secret.name.clone()))?;
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
    Ok(Delivered::Applied(report.lines))
}

#[cfg(not(feature = "kubernetes"))]
fn apply(
    _spec: &Spec,
    _store: &dyn SecretStore,
    _names: &[String],
    _context: &str,
) -> Result<Delivered, RotateError> {
    Ok(Delivered::Unsupported)
}
