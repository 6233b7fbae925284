//! Reading an existing Secret for `tresor import --from kubernetes`.

use crate::KubeError;
use crate::cluster::Ctx;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use zeroize::{Zeroize, Zeroizing};

/// The data of the Secret `namespace/name`, `None` when there is none.
/// `stringData` never comes back from the server, so `data` is all of it.
pub async fn read_secret(
    client: &Client,
    context: Option<&str>,
    namespace: &str,
    name: &str,
) -> Result<Option<Vec<(String, Zeroizing<Vec<u8>>)>>, KubeError> {
    let ctx = Ctx { client, context };
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let Some(mut secret) = api
        .get_opt(name)
        .await
        .map_err(|e| ctx.error(e, "get", format!("secret/{name}"), namespace))?
    else {
        return Ok(None);
    };
    let data = secret
        .data
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, mut v)| {
            let value = Zeroizing::new(v.0.clone());
            v.0.zeroize();
            (k, value)
        })
        .collect();
    Ok(Some(data))
}
