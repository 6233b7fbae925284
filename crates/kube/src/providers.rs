//! Manifests for pods that read their secrets from AWS Secrets Manager or
//! Vault rather than from a Kubernetes Secret: per consumer, a
//! `SecretProviderClass` for the Secrets Store CSI driver (AWS or Vault
//! provider), the Vault Agent Injector annotations for its pod template,
//! and the Vault policy granting `read` on exactly its paths. None of them
//! holds a value: only names and paths.

use crate::render::{consumers, env_name, metadata};
use crate::yaml::Node;
use tresor_platform::{Consumer, SecretSpec, Spec};

/// The Vault Kubernetes-auth role (and policy) of a consumer: named after
/// its workload, as its ServiceAccount is.
pub fn vault_role(consumer: &Consumer) -> String {
    consumer.name.clone()
}

/// The name of a consumer's Vault policy.
pub fn vault_policy_name(spec: &Spec, namespace: Option<&str>, consumer: &Consumer) -> String {
    match namespace {
        Some(ns) => format!("{}-{ns}-{}", spec.name, consumer.name),
        None => format!("{}-{}", spec.name, consumer.name),
    }
}

/// Each consumer with its namespace and the secrets (as declared) it reads.
fn by_consumer(spec: &Spec) -> Vec<(Option<String>, Consumer, Vec<&SecretSpec>)> {
    consumers(spec)
        .into_iter()
        .map(|((ns, consumer), names)| {
            let secrets = names
                .iter()
                .filter_map(|n| spec.secrets.iter().find(|s| &s.name == n))
                .collect();
            (ns, consumer, secrets)
        })
        .collect()
}

/// A JMESPath expression selecting one field of a JSON object: quoted
/// unless it is a plain identifier (`api-key` needs quotes).
pub fn jmes_field(field: &str) -> String {
    let plain = field
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        field.to_owned()
    } else {
        serde_json::to_string(field).expect("strings serialize")
    }
}

/// The file name a key gets in the CSI volume: the key's name, or
/// `secret.key` when two of the consumer's secrets share a key name.
fn alias(secrets: &[&SecretSpec], secret: &SecretSpec, key: &str) -> String {
    let shared = secrets.iter().filter(|s| s.key(key).is_some()).count() > 1;
    if shared {
        format!("{}.{key}", secret.name)
    } else {
        key.to_owned()
    }
}

/// The `objects` parameter (a YAML document inside a string, as the
/// providers read it) for the AWS provider.
fn aws_objects(secrets: &[&SecretSpec]) -> (String, Option<String>) {
    let mut objects = Vec::new();
    let mut region = None;
    for secret in secrets {
        let Some(aws) = &secret.targets.aws else {
            continue;
        };
        region = region.or_else(|| aws.region.clone());
        let paths = aws
            .json
            .iter()
            .map(|(field, key)| {
                Node::map([
                    ("objectAlias", Node::str(alias(secrets, secret, key))),
                    ("path", Node::str(jmes_field(field))),
                ])
            })
            .collect();
        objects.push(Node::map([
            ("jmesPath", Node::Seq(paths)),
            ("objectName", Node::str(&aws.name)),
            ("objectType", Node::str("secretsmanager")),
        ]));
    }
    (Node::Seq(objects).to_yaml(), region)
}

fn vault_objects(secrets: &[&SecretSpec]) -> String {
    let mut objects = Vec::new();
    for secret in secrets {
        let Some(vault) = &secret.targets.vault else {
            continue;
        };
        for key in &secret.keys {
            objects.push(Node::map([
                ("objectName", Node::str(alias(secrets, secret, &key.name))),
                (
                    "secretPath",
                    Node::str(format!("{}/data/{}", vault.mount, vault.path)),
                ),
                ("secretKey", Node::str(&key.name)),
            ]));
        }
    }
    Node::Seq(objects).to_yaml()
}

fn provider_class(
    name: String,
    namespace: Option<&str>,
    provider: &str,
    parameters: Vec<(String, Node)>,
) -> Node {
    Node::map([
        ("apiVersion", Node::str("secrets-store.csi.x-k8s.io/v1")),
        ("kind", Node::str("SecretProviderClass")),
        ("metadata", metadata(&name, namespace)),
        (
            "spec",
            Node::map([
                ("parameters", Node::Map(parameters)),
                ("provider", Node::str(provider)),
            ]),
        ),
    ])
}

/// Per consumer reading secrets delivered to AWS or Vault, one
/// `SecretProviderClass` per provider, named `<consumer>-aws` or
/// `<consumer>-vault`. `vault_address` is used for targets naming no
/// address.
pub fn secret_provider_classes(spec: &Spec, vault_address: Option<&str>) -> Vec<(String, Node)> {
    let mut out = Vec::new();
    for (ns, consumer, secrets) in by_consumer(spec) {
        let ns = ns.as_deref();
        let prefix = ns.map(|n| format!("{n}.")).unwrap_or_default();
        if secrets.iter().any(|s| s.targets.aws.is_some()) {
            let (objects, region) = aws_objects(&secrets);
            let mut parameters = vec![("objects".to_owned(), Node::Str(objects))];
            if let Some(region) = region {
                parameters.push(("region".into(), Node::Str(region)));
            }
            let name = format!("{}-aws", consumer.name);
            out.push((
                format!("{prefix}{name}.secretproviderclass.yaml"),
                provider_class(name, ns, "aws", parameters),
            ));
        }
        if let Some(first) = secrets.iter().find_map(|s| s.targets.vault.as_ref()) {
            let mut parameters = vec![
                ("objects".to_owned(), Node::Str(vault_objects(&secrets))),
                ("roleName".to_owned(), Node::Str(vault_role(&consumer))),
            ];
            if let Some(address) = first.address.as_deref().or(vault_address) {
                parameters.push(("vaultAddress".into(), Node::str(address)));
            }
            let name = format!("{}-vault", consumer.name);
            out.push((
                format!("{prefix}{name}.secretproviderclass.yaml"),
                provider_class(name, ns, "vault", parameters),
            ));
        }
    }
    out
}

/// The Agent template of one secret: its keys as `ENV_NAME=value` lines.
fn agent_template(secret: &SecretSpec, data_path: &str) -> String {
    let mut text = format!("{{{{- with secret \"{data_path}\" -}}}}\n");
    for key in &secret.keys {
        text.push_str(&format!(
            "{}={{{{ index .Data.data \"{}\" }}}}\n",
            env_name(&key.name),
            key.name
        ));
    }
    text.push_str("{{- end }}\n");
    text
}

/// Per consumer reading secrets delivered to Vault, a strategic-merge
/// patch of its workload adding the Vault Agent Injector annotations: the
/// role, and per secret a file `/vault/secrets/<secret>` rendered as
/// env-style lines (`kubectl patch <kind> <name> --patch-file FILE`).
pub fn agent_patches(spec: &Spec) -> Vec<(String, Node)> {
    let mut out = Vec::new();
    for (ns, consumer, secrets) in by_consumer(spec) {
        let mut annotations = vec![
            (
                "vault.hashicorp.com/agent-inject".to_owned(),
                Node::str("true"),
            ),
            (
                "vault.hashicorp.com/role".to_owned(),
                Node::Str(vault_role(&consumer)),
            ),
        ];
        for secret in &secrets {
            let Some(vault) = &secret.targets.vault else {
                continue;
            };
            let data_path = format!("{}/data/{}", vault.mount, vault.path);
            annotations.push((
                format!("vault.hashicorp.com/agent-inject-secret-{}", secret.name),
                Node::str(&data_path),
            ));
            annotations.push((
                format!("vault.hashicorp.com/agent-inject-template-{}", secret.name),
                Node::Str(agent_template(secret, &data_path)),
            ));
        }
        if annotations.len() == 2 {
            continue;
        }
        let mut meta = vec![("name".to_owned(), Node::str(&consumer.name))];
        if let Some(ns) = &ns {
            meta.push(("namespace".into(), Node::str(ns)));
        }
        let patch = Node::map([
            ("apiVersion", Node::str("apps/v1")),
            ("kind", Node::str(consumer.kind.kind())),
            ("metadata", Node::Map(meta)),
            (
                "spec",
                Node::map([(
                    "template",
                    Node::map([(
                        "metadata",
                        Node::map([("annotations", Node::Map(annotations))]),
                    )]),
                )]),
            ),
        ]);
        let prefix = ns.map(|n| format!("{n}.")).unwrap_or_default();
        out.push((
            format!(
                "{prefix}{}-{}.vault-agent.patch.yaml",
                consumer.kind.name(),
                consumer.name
            ),
            patch,
        ));
    }
    out
}

/// Per consumer reading secrets delivered to Vault, the policy it needs:
/// `read` on exactly the data paths of its secrets, nothing else. Named
/// by [`vault_policy_name`]; bind it to the role [`vault_role`].
pub fn vault_policies(spec: &Spec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (ns, consumer, secrets) in by_consumer(spec) {
        let mut paths: Vec<String> = secrets
            .iter()
            .filter_map(|s| s.targets.vault.as_ref())
            .map(|v| format!("{}/data/{}", v.mount, v.path))
            .collect();
        if paths.is_empty() {
            continue;
        }
        paths.sort();
        paths.dedup();
        let name = vault_policy_name(spec, ns.as_deref(), &consumer);
        let mut text = format!(
            "# Vault policy `{name}` for {consumer}{}: bind it to the Kubernetes auth role `{}`.\n",
            ns.as_deref()
                .map(|n| format!(" in namespace {n}"))
                .unwrap_or_default(),
            vault_role(&consumer)
        );
        for path in paths {
            text.push_str(&format!(
                "path \"{path}\" {{\n  capabilities = [\"read\"]\n}}\n"
            ));
        }
        out.push((format!("{name}.vault-policy.hcl"), text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jmes_paths_quote_what_is_not_an_identifier() {
        assert_eq!(jmes_field("username"), "username");
        assert_eq!(jmes_field("api-key"), "\"api-key\"");
        assert_eq!(jmes_field("_x1"), "_x1");
        assert_eq!(jmes_field("1x"), "\"1x\"");
    }
}
