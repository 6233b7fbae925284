//! Delivery to a cluster: server-side apply with field manager `tresor`,
//! rolling restarts of consumers whose Secret changed (as `kubectl rollout
//! restart` does), pruning, and RBAC.

use crate::render::{MANAGED_BY, consumers, rbac_objects};
use crate::yaml::Node;
use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;
use tresor_platform::{Consumer, ConsumerKind, Spec};
use zeroize::{Zeroize, Zeroizing};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "tresor";
/// The label naming the platform (spec `name`) a Secret belongs to; `--prune`
/// deletes only Secrets carrying this platform's label.
pub const PLATFORM_LABEL: &str = "tresor.dev/platform";
/// The annotation holding a hash of the Secret's content, never a value.
pub const CONTENT_HASH: &str = "tresor.dev/content-hash";
/// kubectl's rollout-restart annotation, on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Why delivery failed. The messages name the resource and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot load the kubeconfig{}: {source}; set KUBECONFIG or pass --context", context_note(.context))]
    Config {
        context: Option<String>,
        source: kube::config::KubeconfigError,
    },
    #[error("cannot build a client for the cluster: {0}")]
    Client(#[source] kube::Error),
    #[error(
        "cannot reach the cluster at {server} while trying to {verb} {resource}: {source}; check that the cluster is up and that the kubeconfig points at it"
    )]
    Unreachable {
        server: String,
        verb: &'static str,
        resource: String,
        source: kube::Error,
    },
    #[error("forbidden: may not {verb} {resource}{}: {message}. Grant `{verb}` on {} with a Role and RoleBinding, or use a context that has it", ns_note(.namespace), kind_of(.resource))]
    Forbidden {
        verb: &'static str,
        resource: String,
        namespace: Option<String>,
        message: String,
    },
    #[error("server-side apply conflict on {resource}{}: {message}. Another field manager owns these fields; rerun with --force-conflicts to take them over", ns_note(.namespace))]
    Conflict {
        resource: String,
        namespace: Option<String>,
        message: String,
    },
    #[error("the cluster refused to {verb} {resource}{}: {message}", ns_note(.namespace))]
    Api {
        verb: &'static str,
        resource: String,
        namespace: Option<String>,
        message: String,
    },
}

fn context_note(context: &Option<String>) -> String {
    context
        .as_ref()
        .map(|c| format!(" (context {c})"))
        .unwrap_or_default()
}

fn ns_note(namespace: &Option<String>) -> String {
    namespace
        .as_ref()
        .map(|n| format!(" in namespace {n}"))
        .unwrap_or_default()
}

fn kind_of(resource: &str) -> String {
    let kind = resource.split('/').next().unwrap_or(resource);
    format!("`{kind}`")
}

/// A Secret to deliver: its name and its values, as the store holds them.
pub struct SecretValues {
    pub name: String,
    pub namespace: Option<String>,
    pub data: Vec<(String, Zeroizing<Vec<u8>>)>,
}

impl SecretValues {
    /// SHA-256 over the sorted `key=base64(value)` pairs. Generated values
    /// carry at least 128 bits, so the hash reveals nothing of them; literal
    /// values are in the spec anyway.
    pub fn content_hash(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut pairs: Vec<&(String, Zeroizing<Vec<u8>>)> = self.data.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut hasher = Sha256::new();
        hasher.update(b"tresor-secret-v1\n");
        for (key, value) in pairs {
            hasher.update(key.as_bytes());
            hasher.update(b"=");
            let encoded = Zeroizing::new(b64.encode(value.as_slice()));
            hasher.update(encoded.as_bytes());
            hasher.update(b";");
        }
        let digest = hasher.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256-{hex}")
    }
}

/// What to do besides applying the Secrets.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApplyOptions {
    /// Delete this platform's Secrets that the spec no longer declares.
    pub prune: bool,
    /// Also apply each consumer's ServiceAccount, Role and RoleBinding.
    pub rbac: bool,
    /// Take over fields another field manager owns.
    pub force_conflicts: bool,
}

/// What happened, one kubectl-style line per object (`secret/x created`).
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    /// Workloads restarted, as `namespace/kind/name`.
    pub restarted: Vec<String>,
}

/// A client for a kubeconfig context (`None`: the current context). A
/// rustls crypto provider is installed first: kube's TLS needs one.
pub async fn connect(context: Option<&str>) -> Result<Client, KubeError> {
    // Another part of the program may have installed it already: either is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_kubeconfig(&options)
        .await
        .map_err(|source| KubeError::Config {
            context: context.map(str::to_owned),
            source,
        })?;
    Client::try_from(config).map_err(KubeError::Client)
}

/// The server a context points at, for messages.
fn server_of(context: Option<&str>) -> String {
    Kubeconfig::read()
        .ok()
        .and_then(|k| {
            let name = context.map(str::to_owned).or(k.current_context.clone())?;
            let cluster = k
                .contexts
                .iter()
                .find(|c| c.name == name)?
                .context
                .as_ref()?
                .cluster
                .clone();
            k.clusters
                .iter()
                .find(|c| c.name == cluster)?
                .cluster
                .as_ref()?
                .server
                .clone()
        })
        .unwrap_or_else(|| "the kubeconfig's server".into())
}

pub(crate) struct Ctx<'a> {
    pub(crate) client: &'a Client,
    pub(crate) context: Option<&'a str>,
}

impl Ctx<'_> {
    pub(crate) fn error(
        &self,
        e: kube::Error,
        verb: &'static str,
        resource: String,
        namespace: &str,
    ) -> KubeError {
        let namespace = Some(namespace.to_owned());
        match e {
            kube::Error::Api(status) if status.code == 403 => KubeError::Forbidden {
                verb,
                resource,
                namespace,
                message: status.message,
            },
            kube::Error::Api(status) if status.code == 409 && verb == "patch" => {
                KubeError::Conflict {
                    resource,
                    namespace,
                    message: status.message,
                }
            }
            kube::Error::Api(status) => KubeError::Api {
                verb,
                resource,
                namespace,
                message: status.message,
            },
            other => KubeError::Unreachable {
                server: server_of(self.context),
                verb,
                resource,
                source: other,
            },
        }
    }

    fn namespace<'n>(&'n self, namespace: Option<&'n str>) -> &'n str {
        namespace.unwrap_or_else(|| self.client.default_namespace())
    }
}

/// Applies the Secrets (and on request RBAC), restarts the consumers of
/// Secrets whose content changed, and prunes on request.
pub async fn apply(
    client: &Client,
    context: Option<&str>,
    spec: &Spec,
    secrets: &[SecretValues],
    options: ApplyOptions,
    now: SystemTime,
) -> Result<Report, KubeError> {
    let ctx = Ctx { client, context };
    let mut report = Report::default();
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.force = options.force_conflicts;
    let changed = apply_secrets(&ctx, spec, secrets, &params, &mut report).await?;
    if options.rbac {
        for ((namespace, consumer), secrets) in consumers(spec) {
            let ns = ctx.namespace(namespace.as_deref()).to_owned();
            for object in rbac_objects(Some(&ns), &consumer, &secrets) {
                apply_rbac_object(&ctx, &ns, object, &params, &mut report).await?;
            }
        }
    }
    restart_consumers(&ctx, spec, &changed, now, &mut report).await?;
    let namespaces: BTreeSet<String> = secrets
        .iter()
        .map(|s| ctx.namespace(s.namespace.as_deref()).to_owned())
        .collect();
    prune(&ctx, spec, &namespaces, options.prune, &mut report).await?;
    Ok(report)
}

/// Server-side applies each Secret; returns those whose content changed,
/// as `(namespace, name)`.
async fn apply_secrets(
    ctx: &Ctx<'_>,
    spec: &Spec,
    secrets: &[SecretValues],
    params: &PatchParams,
    report: &mut Report,
) -> Result<BTreeSet<(String, String)>, KubeError> {
    let mut changed = BTreeSet::new();
    for delivery in secrets {
        let ns = ctx.namespace(delivery.namespace.as_deref()).to_owned();
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let resource = format!("secret/{}", delivery.name);
        let existing = api
            .get_metadata_opt(&delivery.name)
            .await
            .map_err(|e| ctx.error(e, "get", resource.clone(), &ns))?;
        let hash = delivery.content_hash();
        let old_hash = existing
            .as_ref()
            .and_then(|m| m.metadata.annotations.as_ref())
            .and_then(|a| a.get(CONTENT_HASH).cloned());
        let labelled = existing
            .as_ref()
            .and_then(|m| m.metadata.labels.as_ref())
            .is_some_and(|l| l.get(PLATFORM_LABEL) == Some(&spec.name));
        // A Secret made before tresor (kubectl, an import) has no hash to
        // compare: adopting it restarts its consumers only if the values differ.
        let adopted_as_is = match (&existing, &old_hash) {
            (Some(_), None) => api
                .get_opt(&delivery.name)
                .await
                .map_err(|e| ctx.error(e, "get", resource.clone(), &ns))?
                .is_some_and(|found| holds_exactly(found, &delivery.data)),
            _ => false,
        };
        let mut secret = Secret {
            metadata: ObjectMeta {
                name: Some(delivery.name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                    (PLATFORM_LABEL.to_owned(), spec.name.clone()),
                ])),
                annotations: Some(BTreeMap::from([(CONTENT_HASH.to_owned(), hash.clone())])),
                ..ObjectMeta::default()
            },
            data: Some(
                delivery
                    .data
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        };
        let applied = api
            .patch(&delivery.name, params, &Patch::Apply(&secret))
            .await;
        if let Some(data) = secret.data.as_mut() {
            data.values_mut().for_each(|v| v.0.zeroize());
        }
        if let Ok(mut back) = applied.as_ref().map(|s| s.data.clone()) {
            back.iter_mut()
                .flat_map(|d| d.values_mut())
                .for_each(|v| v.0.zeroize());
        }
        applied.map_err(|e| ctx.error(e, "patch", resource.clone(), &ns))?;
        let state = match (&existing, &old_hash) {
            (None, _) => "created",
            (Some(_), Some(old)) if *old == hash && labelled => "unchanged",
            (Some(_), Some(old)) if *old == hash => "configured",
            (Some(_), None) if adopted_as_is => "configured",
            _ => {
                changed.insert((ns.clone(), delivery.name.clone()));
                "configured"
            }
        };
        report.lines.push(format!("{resource} {state}"));
    }
    Ok(changed)
}

/// Restarts, once each, the consumers of the Secrets that changed.
async fn restart_consumers(
    ctx: &Ctx<'_>,
    spec: &Spec,
    changed: &BTreeSet<(String, String)>,
    now: SystemTime,
    report: &mut Report,
) -> Result<(), KubeError> {
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    let mut restarted = BTreeSet::new();
    for secret in &spec.secrets {
        let ns = ctx.namespace(secret.namespace.as_deref()).to_owned();
        if !changed.contains(&(ns.clone(), secret.name.clone())) {
            continue;
        }
        for consumer in &secret.consumers {
            if restarted.insert((ns.clone(), consumer.clone())) {
                let line = restart(ctx, &ns, consumer, &stamp).await?;
                if line.ends_with(" restarted") {
                    report.restarted.push(format!("{ns}/{consumer}"));
                }
                report.lines.push(line);
            }
        }
    }
    Ok(())
}

/// This platform's Secrets in `namespaces` that the spec no longer
/// declares for Kubernetes: deleted with `prune`, else named.
async fn prune(
    ctx: &Ctx<'_>,
    spec: &Spec,
    namespaces: &BTreeSet<String>,
    prune: bool,
    report: &mut Report,
) -> Result<(), KubeError> {
    let declared: BTreeSet<(String, &str)> = spec
        .secrets
        .iter()
        .filter(|s| s.targets.kubernetes)
        .map(|s| {
            (
                ctx.namespace(s.namespace.as_deref()).to_owned(),
                s.name.as_str(),
            )
        })
        .collect();
    for ns in namespaces {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        let selector = format!(
            "{}={},{PLATFORM_LABEL}={}",
            MANAGED_BY.0, MANAGED_BY.1, spec.name
        );
        let listed = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| ctx.error(e, "list", "secrets".into(), ns))?;
        for item in listed.items {
            let Some(name) = item.metadata.name else {
                continue;
            };
            if declared.contains(&(ns.clone(), name.as_str())) {
                continue;
            }
            if prune {
                api.delete(&name, &DeleteParams::default())
                    .await
                    .map_err(|e| ctx.error(e, "delete", format!("secret/{name}"), ns))?;
                report.lines.push(format!("secret/{name} pruned"));
            } else {
                report.lines.push(format!(
                    "secret/{name} is no longer in the spec (in namespace {ns}); delete it with --prune"
                ));
            }
        }
    }
    Ok(())
}

fn to_json(node: Node) -> Value {
    match node {
        Node::Str(s) => Value::String(s),
        Node::Null => Value::Null,
        Node::Map(entries) => {
            Value::Object(entries.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        Node::Seq(items) => Value::Array(items.into_iter().map(to_json).collect()),
    }
}

async fn apply_rbac_object(
    ctx: &Ctx<'_>,
    ns: &str,
    object: Node,
    params: &PatchParams,
    report: &mut Report,
) -> Result<(), KubeError> {
    let body = to_json(object);
    let kind = body["kind"].as_str().unwrap_or_default().to_owned();
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let client = ctx.client.clone();
    let (resource, result) = match kind.as_str() {
        "ServiceAccount" => (
            format!("serviceaccount/{name}"),
            Api::<ServiceAccount>::namespaced(client, ns)
                .patch(&name, params, &Patch::Apply(&body))
                .await
                .map(|_| ()),
        ),
        "Role" => (
            format!("role.rbac.authorization.k8s.io/{name}"),
            Api::<Role>::namespaced(client, ns)
                .patch(&name, params, &Patch::Apply(&body))
                .await
                .map(|_| ()),
        ),
        _ => (
            format!("rolebinding.rbac.authorization.k8s.io/{name}"),
            Api::<RoleBinding>::namespaced(client, ns)
                .patch(&name, params, &Patch::Apply(&body))
                .await
                .map(|_| ()),
        ),
    };
    result.map_err(|e| ctx.error(e, "patch", resource.clone(), ns))?;
    report.lines.push(format!("{resource} serverside-applied"));
    Ok(())
}

/// `kubectl rollout restart`: a strategic merge patch of the pod template's
/// `kubectl.kubernetes.io/restartedAt` annotation.
async fn restart(
    ctx: &Ctx<'_>,
    ns: &str,
    consumer: &Consumer,
    stamp: &str,
) -> Result<String, KubeError> {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let client = ctx.client.clone();
    let name = &consumer.name;
    let result = match consumer.kind {
        ConsumerKind::Deployment => Api::<Deployment>::namespaced(client, ns)
            .patch(name, &params, &Patch::Strategic(&patch))
            .await
            .map(|_| ()),
        ConsumerKind::StatefulSet => Api::<StatefulSet>::namespaced(client, ns)
            .patch(name, &params, &Patch::Strategic(&patch))
            .await
            .map(|_| ()),
        ConsumerKind::DaemonSet => Api::<DaemonSet>::namespaced(client, ns)
            .patch(name, &params, &Patch::Strategic(&patch))
            .await
            .map(|_| ()),
    };
    let resource = format!("{}.apps/{name}", consumer.kind.name());
    match result {
        Ok(()) => Ok(format!("{resource} restarted")),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(format!(
            "{resource} not found in namespace {ns}: not restarted (it reads the new value when it starts)"
        )),
        Err(e) => Err(ctx.error(e, "patch", resource, ns)),
    }
}

/// A runtime for the CLI: one thread is plenty for a handful of requests.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// One problem `tresor k8s doctor` found, with what to run next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub message: String,
    /// A consumer whose pods are older than its Secret's last change: `--fix` restarts it.
    pub stale: Option<(String, Consumer)>,
}

/// The troubleshooting platform READMEs describe by hand: declared Secrets
/// missing or different from the store, consumers whose service account may
/// not read their Secret, consumers running pods older than their Secret.
pub async fn doctor(
    client: &Client,
    context: Option<&str>,
    spec: &Spec,
    deliveries: &[SecretValues],
    file: &str,
) -> Result<Vec<Finding>, KubeError> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    use k8s_openapi::api::core::v1::Pod;
    let ctx = Ctx { client, context };
    let mut findings = Vec::new();
    let finding = |message: String| Finding {
        message,
        stale: None,
    };
    for delivery in deliveries {
        let Some(secret) = spec.secrets.iter().find(|s| s.name == delivery.name) else {
            continue;
        };
        let ns = ctx.namespace(secret.namespace.as_deref()).to_owned();
        let resource = format!("secret/{}", secret.name);
        let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let Some(mut live) = api
            .get_opt(&secret.name)
            .await
            .map_err(|e| ctx.error(e, "get", resource.clone(), &ns))?
        else {
            findings.push(finding(format!(
                "{resource} is missing in namespace {ns}: run `tresor k8s apply -f {file}`"
            )));
            continue;
        };
        let data = live.data.take().unwrap_or_default();
        let same = data.len() == delivery.data.len()
            && delivery
                .data
                .iter()
                .all(|(k, v)| data.get(k).is_some_and(|b| b.0 == **v));
        for mut value in data.into_values() {
            value.0.zeroize();
        }
        if !same {
            findings.push(finding(format!(
                "{resource} in namespace {ns} differs from the store: run `tresor k8s apply -f {file}`"
            )));
        }
        // The last time tresor changed it: its field manager's timestamp.
        let changed = live
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|f| f.manager.as_deref() == Some(FIELD_MANAGER))
            .filter_map(|f| f.time.as_ref().map(|t| t.0))
            .max();
        for consumer in &secret.consumers {
            let Some((account, selector)) = workload(&ctx, &ns, consumer).await? else {
                findings.push(finding(format!(
                    "{consumer} (a consumer of {resource}) does not exist in namespace {ns}"
                )));
                continue;
            };
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(format!("system:serviceaccount:{ns}:{account}")),
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(ns.clone()),
                        verb: Some("get".into()),
                        resource: Some("secrets".into()),
                        name: Some(secret.name.clone()),
                        ..ResourceAttributes::default()
                    }),
                    ..SubjectAccessReviewSpec::default()
                },
                ..SubjectAccessReview::default()
            };
            let answer = Api::<SubjectAccessReview>::all(client.clone())
                .create(&kube::api::PostParams::default(), &review)
                .await
                .map_err(|e| ctx.error(e, "create", "subjectaccessreview".into(), &ns))?;
            if !answer.status.is_some_and(|s| s.allowed) {
                findings.push(finding(format!(
                    "{consumer}'s service account `{account}` may not get {resource} in namespace {ns}: run `tresor k8s apply -f {file} --rbac`"
                )));
            }
            let (Some(changed), Some(selector)) = (changed, selector) else {
                continue;
            };
            let pods = Api::<Pod>::namespaced(client.clone(), &ns)
                .list_metadata(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| ctx.error(e, "list", "pods".into(), &ns))?;
            let stale = pods
                .items
                .iter()
                .filter_map(|p| p.metadata.creation_timestamp.as_ref())
                .any(|created| created.0 < changed);
            if stale {
                findings.push(Finding {
                    message: format!(
                        "{consumer} in namespace {ns} runs pods started before {resource} last changed: run `tresor k8s doctor -f {file} --fix` to restart it"
                    ),
                    stale: Some((ns.clone(), consumer.clone())),
                });
            }
        }
    }
    Ok(findings)
}

/// A workload's service account and pod label selector (`None`: no such workload).
async fn workload(
    ctx: &Ctx<'_>,
    ns: &str,
    consumer: &Consumer,
) -> Result<Option<(String, Option<String>)>, KubeError> {
    let client = ctx.client.clone();
    let name = &consumer.name;
    let (template, selector) = match consumer.kind {
        ConsumerKind::Deployment => Api::<Deployment>::namespaced(client, ns)
            .get_opt(name)
            .await
            .map(|d| d.and_then(|d| d.spec).map(|s| (s.template, s.selector))),
        ConsumerKind::StatefulSet => Api::<StatefulSet>::namespaced(client, ns)
            .get_opt(name)
            .await
            .map(|d| d.and_then(|d| d.spec).map(|s| (s.template, s.selector))),
        ConsumerKind::DaemonSet => Api::<DaemonSet>::namespaced(client, ns)
            .get_opt(name)
            .await
            .map(|d| d.and_then(|d| d.spec).map(|s| (s.template, s.selector))),
    }
    .map_err(|e| {
        ctx.error(
            e,
            "get",
            format!("{}.apps/{name}", consumer.kind.name()),
            ns,
        )
    })?
    .unzip();
    let Some(template) = template else {
        return Ok(None);
    };
    let account = template
        .spec
        .and_then(|s| s.service_account_name)
        .unwrap_or_else(|| "default".into());
    let selector = selector.and_then(|s| s.match_labels).map(|labels| {
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    });
    Ok(Some((account, selector)))
}

/// `doctor --fix`: restarts the consumers found stale.
pub async fn fix(
    client: &Client,
    context: Option<&str>,
    stale: &[(String, Consumer)],
    now: SystemTime,
) -> Result<Vec<String>, KubeError> {
    let ctx = Ctx { client, context };
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    let mut lines = Vec::new();
    for (ns, consumer) in stale {
        lines.push(restart(&ctx, ns, consumer, &stamp).await?);
    }
    Ok(lines)
}
/// Whether `secret` holds exactly `data`; its values are wiped once compared.
fn holds_exactly(mut secret: Secret, data: &[(String, Zeroizing<Vec<u8>>)]) -> bool {
    let found = secret.data.take().unwrap_or_default();
    let same = found.len() == data.len()
        && data
            .iter()
            .all(|(key, value)| found.get(key).is_some_and(|v| v.0 == value.as_slice()));
    for mut value in found.into_values() {
        value.0.zeroize();
    }
    same
}
