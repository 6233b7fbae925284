//! Manifests: Secrets byte-identical to `kubectl create secret generic
//! ... --dry-run=client -o yaml`, least-privilege RBAC per consumer, env
//! blocks with `secretKeyRef`, and an `EncryptionConfiguration`.

use crate::yaml::{Node, sort_by_key_order};
use base64::Engine;
use std::collections::BTreeMap;
use tresor_platform::{Consumer, Spec};
use zeroize::Zeroizing;

/// The label tresor puts on everything it delivers.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "tresor");

/// A Secret as kubectl prints it: keys in go-yaml's order, values in
/// base64 on one line, no `type` (the server defaults to Opaque).
/// The text holds the values: callers keep it in memory that is wiped.
pub fn secret_yaml(
    name: &str,
    namespace: Option<&str>,
    data: &[(String, &[u8])],
) -> Zeroizing<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let data: Vec<(String, Node)> = data
        .iter()
        .map(|(k, v)| (k.clone(), Node::Str(b64.encode(v))))
        .collect();
    let mut metadata = vec![
        ("creationTimestamp".to_owned(), Node::Null),
        ("name".to_owned(), Node::str(name)),
    ];
    if let Some(ns) = namespace {
        metadata.push(("namespace".into(), Node::str(ns)));
    }
    let doc = Node::map([
        ("apiVersion", Node::str("v1")),
        ("data", Node::Map(data)),
        ("kind", Node::str("Secret")),
        ("metadata", Node::Map(metadata)),
    ]);
    let text = Zeroizing::new(doc.to_yaml());
    wipe(doc);
    text
}

fn wipe(node: Node) {
    use zeroize::Zeroize;
    match node {
        Node::Str(mut s) => s.zeroize(),
        Node::Map(entries) => entries.into_iter().for_each(|(_, v)| wipe(v)),
        Node::Seq(items) => items.into_iter().for_each(wipe),
        Node::Null => {}
    }
}

/// Each consumer with the namespace it lives in and the Secrets it reads.
pub fn consumers(spec: &Spec) -> BTreeMap<(Option<String>, Consumer), Vec<String>> {
    let mut out: BTreeMap<(Option<String>, Consumer), Vec<String>> = BTreeMap::new();
    for secret in &spec.secrets {
        for consumer in &secret.consumers {
            out.entry((secret.namespace.clone(), consumer.clone()))
                .or_default()
                .push(secret.name.clone());
        }
    }
    out
}

/// The names of a consumer's RBAC objects: its ServiceAccount is named
/// after the workload; Role and RoleBinding carry a `tresor-` prefix.
pub fn role_name(consumer: &Consumer) -> String {
    format!("tresor-{}-{}", consumer.kind.name(), consumer.name)
}

pub(crate) fn metadata(name: &str, namespace: Option<&str>) -> Node {
    let mut m = vec![
        (
            "labels".to_owned(),
            Node::map([(MANAGED_BY.0, Node::str(MANAGED_BY.1))]),
        ),
        ("name".to_owned(), Node::str(name)),
    ];
    if let Some(ns) = namespace {
        m.push(("namespace".into(), Node::str(ns)));
    }
    Node::Map(m)
}

/// The objects that let one consumer read exactly its Secrets: a
/// ServiceAccount, a Role granting `get` on those Secrets by name, and the
/// RoleBinding between them.
pub fn rbac_objects(namespace: Option<&str>, consumer: &Consumer, secrets: &[String]) -> Vec<Node> {
    let role = role_name(consumer);
    let mut names = secrets.to_vec();
    names.sort();
    names.dedup();
    sort_by_key_order(&mut names, |n| n);
    let mut subject = vec![
        ("kind".to_owned(), Node::str("ServiceAccount")),
        ("name".to_owned(), Node::str(&consumer.name)),
    ];
    if let Some(ns) = namespace {
        subject.push(("namespace".into(), Node::str(ns)));
    }
    vec![
        Node::map([
            ("apiVersion", Node::str("v1")),
            ("kind", Node::str("ServiceAccount")),
            ("metadata", metadata(&consumer.name, namespace)),
        ]),
        Node::map([
            ("apiVersion", Node::str("rbac.authorization.k8s.io/v1")),
            ("kind", Node::str("Role")),
            ("metadata", metadata(&role, namespace)),
            (
                "rules",
                Node::Seq(vec![Node::map([
                    ("apiGroups", Node::Seq(vec![Node::str("")])),
                    (
                        "resourceNames",
                        Node::Seq(names.into_iter().map(Node::Str).collect()),
                    ),
                    ("resources", Node::Seq(vec![Node::str("secrets")])),
                    ("verbs", Node::Seq(vec![Node::str("get")])),
                ])]),
            ),
        ]),
        Node::map([
            ("apiVersion", Node::str("rbac.authorization.k8s.io/v1")),
            ("kind", Node::str("RoleBinding")),
            ("metadata", metadata(&role, namespace)),
            (
                "roleRef",
                Node::map([
                    ("apiGroup", Node::str("rbac.authorization.k8s.io")),
                    ("kind", Node::str("Role")),
                    ("name", Node::str(&role)),
                ]),
            ),
            ("subjects", Node::Seq(vec![Node::Map(subject)])),
        ]),
    ]
}

/// All consumers' RBAC, as one multi-document YAML stream.
pub fn rbac_yaml(spec: &Spec) -> String {
    consumers(spec)
        .iter()
        .flat_map(|((ns, consumer), secrets)| rbac_objects(ns.as_deref(), consumer, secrets))
        .map(|n| n.to_yaml())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The environment variable a key becomes: `db-password` → `DB_PASSWORD`.
pub fn env_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// For each consumer, the `serviceAccountName` and `env` entries to put in
/// its pod template: every key of every Secret it consumes, by `secretKeyRef`.
pub fn env_yaml(spec: &Spec) -> String {
    let mut docs = Vec::new();
    for ((ns, consumer), secrets) in consumers(spec) {
        let mut env = Vec::new();
        for name in &secrets {
            let secret = spec
                .secrets
                .iter()
                .find(|s| &s.name == name)
                .expect("from the spec");
            for key in &secret.keys {
                env.push(Node::map([
                    ("name", Node::str(env_name(&key.name))),
                    (
                        "valueFrom",
                        Node::map([(
                            "secretKeyRef",
                            Node::map([("key", Node::str(&key.name)), ("name", Node::str(name))]),
                        )]),
                    ),
                ]));
            }
        }
        let header = match &ns {
            Some(ns) => format!("# {consumer} in namespace {ns}: merge into spec.template.spec\n"),
            None => format!("# {consumer}: merge into spec.template.spec\n"),
        };
        let body = Node::map([
            ("serviceAccountName", Node::str(&consumer.name)),
            (
                "containers",
                Node::Seq(vec![Node::map([("env", Node::Seq(env))])]),
            ),
        ]);
        docs.push(format!("{header}{}", body.to_yaml()));
    }
    docs.join("---\n")
}

/// Which provider encrypts Secrets at rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncryptionProvider {
    Aescbc,
    Secretbox,
}

/// An `EncryptionConfiguration` for Secrets with a fresh 32-byte key, and
/// `identity` last so that Secrets written before it stay readable.
pub fn encryption_config(provider: EncryptionProvider) -> Zeroizing<String> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(key.as_mut()).expect("the operating system's random generator failed");
    let secret = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.as_ref()));
    let name = match provider {
        EncryptionProvider::Aescbc => "aescbc",
        EncryptionProvider::Secretbox => "secretbox",
    };
    let doc = Node::map([
        ("apiVersion", Node::str("apiserver.config.k8s.io/v1")),
        ("kind", Node::str("EncryptionConfiguration")),
        (
            "resources",
            Node::Seq(vec![Node::map([
                (
                    "providers",
                    Node::Seq(vec![
                        Node::map([(
                            name,
                            Node::map([(
                                "keys",
                                Node::Seq(vec![Node::map([
                                    ("name", Node::str("key1")),
                                    ("secret", Node::str(secret.as_str())),
                                ])]),
                            )]),
                        )]),
                        Node::map([("identity", Node::Map(vec![]))]),
                    ]),
                ),
                ("resources", Node::Seq(vec![Node::str("secrets")])),
            ])]),
        ),
    ]);
    let text = Zeroizing::new(doc.to_yaml());
    wipe(doc);
    text
}

/// Which KMS plugin API the API server speaks to the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KmsApiVersion {
    /// Every API server since 1.10; off by default from 1.29.
    V1,
    /// API servers 1.27 and later (`v2beta1` before 1.29).
    V2,
}

/// Where the API server finds tresor's KMS plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsProvider {
    /// The provider's name, part of every stored value's prefix
    /// (`k8s:enc:kms:v1:<name>:`): changing it makes old values unreadable.
    pub name: String,
    /// The plugin's unix socket.
    pub socket: String,
    pub api_version: KmsApiVersion,
    /// How long the API server waits for one call.
    pub timeout: std::time::Duration,
    /// How many unwrapped data keys a v1 API server keeps (v2 has no such setting).
    pub cache_size: u32,
}

/// An `EncryptionConfiguration` sending Secrets through a KMS plugin, with
/// `identity` last so that Secrets written before it stay readable. It
/// holds no key: nothing in it is secret.
pub fn kms_encryption_config(kms: &KmsProvider) -> String {
    let version = match kms.api_version {
        KmsApiVersion::V1 => format!("      cachesize: {}\n", kms.cache_size),
        KmsApiVersion::V2 => "      apiVersion: v2\n".to_owned(),
    };
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- providers:\n  - kms:\n{version}      endpoint: {endpoint}\n      name: {name}\n      timeout: {timeout}s\n  - identity: {{}}\n  resources:\n  - secrets\n",
        endpoint = crate::yaml::scalar(&format!("unix://{}", kms.socket)),
        name = crate::yaml::scalar(&kms.name),
        timeout = kms.timeout.as_secs().max(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_shape() {
        let yaml = secret_yaml("x", Some("ns"), &[("b".into(), b"v"), ("a".into(), b"")]);
        assert_eq!(
            *yaml,
            "apiVersion: v1\ndata:\n  a: \"\"\n  b: dg==\nkind: Secret\nmetadata:\n  creationTimestamp: null\n  name: x\n  namespace: ns\n"
        );
    }

    #[test]
    fn env_names() {
        assert_eq!(env_name("db-password"), "DB_PASSWORD");
        assert_eq!(env_name("tls.crt"), "TLS_CRT");
        assert_eq!(env_name("1x"), "_1X");
    }

    #[test]
    fn kms_encryption_config_names_the_socket() {
        let mut kms = KmsProvider {
            name: "tresor".into(),
            socket: "/var/run/tresor/kms.sock".into(),
            api_version: KmsApiVersion::V1,
            timeout: std::time::Duration::from_secs(3),
            cache_size: 1000,
        };
        assert_eq!(
            kms_encryption_config(&kms),
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- providers:\n  - kms:\n      cachesize: 1000\n      endpoint: \"unix:///var/run/tresor/kms.sock\"\n      name: tresor\n      timeout: 3s\n  - identity: {}\n  resources:\n  - secrets\n"
        );
        kms.api_version = KmsApiVersion::V2;
        let v2 = kms_encryption_config(&kms);
        assert!(
            v2.contains("      apiVersion: v2\n") && !v2.contains("cachesize"),
            "{v2}"
        );
    }

    #[test]
    fn encryption_config_has_identity_last() {
        let text = encryption_config(EncryptionProvider::Secretbox);
        let secretbox = text.find("- secretbox:").unwrap();
        let identity = text.find("- identity: {}").unwrap();
        assert!(secretbox < identity, "{}", *text);
        assert!(
            text.contains("    - secrets\n") || text.contains("  - secrets\n"),
            "{}",
            *text
        );
    }
}
