//! The store a command uses: the embedded one or a server's, behind one
//! interface, so that each `kv`, `secrets` and `operator` command has one
//! code path and one way of printing: both sides answer with the JSON
//! shapes of Vault's API.

use crate::failure::Failure;
use crate::global::{GlobalArgs, shares_from_env};
use crate::output::wipe;
use anyhow::anyhow;
use serde_json::{Map, Value, json};
use tresor_client::{Client, Method};
use tresor_core::{Access, MountType, Unseal};
use tresor_kv::{KvEngine, MetadataUpdate, SecretMap};

/// A secret's place: its mount (`secret/`) and its path inside it.
pub struct KvPath {
    pub mount: String,
    pub path: String,
}

impl KvPath {
    /// The API path of one section of the secret (`data`, `metadata`...).
    pub fn api(&self, section: &str) -> String {
        format!("{}{section}/{}", self.mount, self.path)
    }
}

/// A read of one version.
pub enum KvRead {
    Found {
        data: SecretMap,
        metadata: Value,
    },
    /// The version exists but is deleted or destroyed.
    Gone {
        metadata: Value,
    },
    Missing,
}

/// What the store commands need, from the embedded store or from a server.
pub trait Store {
    /// Where `path` lives: under `mount` when given, else under the mount
    /// its first segments name.
    fn kv_path(&self, mount: Option<&str>, path: &str) -> Result<KvPath, Failure>;
    fn kv_read(&self, at: &KvPath, version: Option<u64>) -> Result<KvRead, Failure>;
    /// Returns the new version's metadata.
    fn kv_write(&self, at: &KvPath, data: &SecretMap, cas: Option<u64>) -> Result<Value, Failure>;
    fn kv_patch(&self, at: &KvPath, data: &SecretMap, cas: Option<u64>) -> Result<Value, Failure>;
    fn kv_rollback(&self, at: &KvPath, version: u64) -> Result<Value, Failure>;
    /// Empty when there is nothing under the path.
    fn kv_list(
        &self,
        at: &KvPath,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, Failure>;
    /// The current version when `versions` is empty.
    fn kv_delete(&self, at: &KvPath, versions: &[u64]) -> Result<(), Failure>;
    fn kv_undelete(&self, at: &KvPath, versions: &[u64]) -> Result<(), Failure>;
    fn kv_destroy(&self, at: &KvPath, versions: &[u64]) -> Result<(), Failure>;
    fn kv_metadata(&self, at: &KvPath) -> Result<Option<Value>, Failure>;
    fn kv_write_metadata(&self, at: &KvPath, update: &MetadataUpdate) -> Result<(), Failure>;
    fn kv_delete_metadata(&self, at: &KvPath) -> Result<(), Failure>;
    /// Mount path -> mount description, as `sys/mounts` has them.
    fn mounts(&self) -> Result<Map<String, Value>, Failure>;
    /// Mounts an engine at `path`; returns the mount's path (`path/`).
    fn enable(&self, path: &str, kind: MountType, description: &str) -> Result<String, Failure>;
    fn disable(&self, path: &str) -> Result<(), Failure>;
    /// `term` and `install_time` of the active encryption key (and the
    /// number of `terms` when known).
    fn key_status(&self) -> Result<Value, Failure>;
    fn rotate(&self) -> Result<Value, Failure>;
    /// The position last saved for the audit chain `chain_id`
    /// (`{chain_id, seq, hash}`), if any.
    fn audit_checkpoint(&self, chain_id: &str) -> Result<Option<Value>, Failure>;
}

/// The server when one is named (`--address`, `TRESOR_ADDR`, `VAULT_ADDR`),
/// else the embedded store, opened with `access`.
pub fn open(global: &GlobalArgs, access: Access) -> Result<Box<dyn Store>, Failure> {
    match remote(global)? {
        Some(client) => {
            if !client.has_token() {
                return Err(tresor_client::Error::NoToken.into());
            }
            Ok(Box::new(Server { client }))
        }
        None => Ok(Box::new(Embedded {
            store: open_embedded(global, access)?,
        })),
    }
}

/// Opens and unseals the embedded store named by the global options.
pub fn open_embedded(global: &GlobalArgs, access: Access) -> Result<tresor_core::Store, Failure> {
    Ok(tresor_core::open_with(
        &global.store,
        &unseal(global)?,
        access,
        &global.locking,
    )?)
}

/// What unseals the embedded store named by the global options: its key
/// file, the shares in TRESOR_UNSEAL_KEYS, or the KMS its seal record names.
pub fn unseal(global: &GlobalArgs) -> Result<Unseal, Failure> {
    Ok(Unseal {
        key_file: global.key_file.clone(),
        shares: shares_from_env()?,
        kms: kms_connector(),
    })
}

/// The AWS KMS client of a store's seal record. TRESOR_AWSKMS_KEY_ID and
/// TRESOR_AWSKMS_ENDPOINT override what the record says (a key re-created
/// under another id, a new VPC endpoint).
#[cfg(feature = "aws")]
pub fn kms_connector() -> Option<tresor_core::KmsConnector> {
    Some(std::sync::Arc::new(|record: &tresor_barrier::KmsSeal| {
        let mut settings = tresor_awskms::Settings::from_record(record).ok_or_else(|| {
            tresor_barrier::BarrierError::Kms(
                "the store names a KMS this tresor does not know".into(),
            )
        })?;
        if let Some(key_id) = std::env::var("TRESOR_AWSKMS_KEY_ID")
            .ok()
            .filter(|v| !v.is_empty())
        {
            settings.key_id = key_id;
        }
        if let Some(endpoint) = std::env::var("TRESOR_AWSKMS_ENDPOINT")
            .ok()
            .filter(|v| !v.is_empty())
        {
            settings.endpoint = Some(endpoint);
        }
        let kms: std::sync::Arc<dyn tresor_barrier::Kms> =
            std::sync::Arc::new(tresor_awskms::AwsKms::new(settings)?);
        Ok(kms)
    }))
}

#[cfg(not(feature = "aws"))]
pub fn kms_connector() -> Option<tresor_core::KmsConnector> {
    None
}

/// A client of the server the options or the environment name, if any.
pub fn remote(global: &GlobalArgs) -> Result<Option<Client>, Failure> {
    Ok(Client::from_env(global.address.as_deref())?)
}

/// A client of the named server, for commands that only make sense there.
pub fn require_remote(global: &GlobalArgs, command: &str) -> Result<Client, Failure> {
    remote(global)?.ok_or_else(|| {
        Failure::usage(anyhow!(
            "`tresor {command}` talks to a server: set TRESOR_ADDR (or VAULT_ADDR), or pass --address"
        ))
    })
}

impl From<tresor_client::Error> for Failure {
    fn from(error: tresor_client::Error) -> Self {
        if error.is_client_error() {
            Failure::usage(error)
        } else {
            Failure::runtime(error)
        }
    }
}

struct Embedded {
    store: tresor_core::Store,
}

impl Embedded {
    fn kv(&self, at: &KvPath) -> Result<KvEngine, Failure> {
        Ok(self.store.kv(&self.store.mount(&at.mount)?)?)
    }
}

/// The engine's records serialize to the JSON the server answers with.
macro_rules! to_json {
    ($value:expr) => {
        serde_json::to_value($value).expect("engine records serialize")
    };
}

impl Store for Embedded {
    fn kv_path(&self, mount: Option<&str>, path: &str) -> Result<KvPath, Failure> {
        let (entry, path) = match mount {
            Some(mount) => (self.store.mount(mount)?, path.trim_matches('/').to_string()),
            None => self.store.resolve(path)?,
        };
        Ok(KvPath {
            mount: entry.path,
            path,
        })
    }

    fn kv_read(&self, at: &KvPath, version: Option<u64>) -> Result<KvRead, Failure> {
        Ok(match self.kv(at)?.read(&at.path, version)? {
            None => KvRead::Missing,
            Some(read) => match read.data {
                Some(data) => KvRead::Found {
                    data,
                    metadata: to_json!(&read.metadata),
                },
                None => KvRead::Gone {
                    metadata: to_json!(&read.metadata),
                },
            },
        })
    }

    fn kv_write(&self, at: &KvPath, data: &SecretMap, cas: Option<u64>) -> Result<Value, Failure> {
        Ok(to_json!(&self.kv(at)?.write(&at.path, data, cas)?))
    }

    fn kv_patch(&self, at: &KvPath, data: &SecretMap, cas: Option<u64>) -> Result<Value, Failure> {
        let mut patch = Value::Object(data.as_map().clone());
        let result = self.kv(at)?.patch(&at.path, &patch, cas);
        wipe(&mut patch);
        Ok(to_json!(&result?))
    }

    fn kv_rollback(&self, at: &KvPath, version: u64) -> Result<Value, Failure> {
        Ok(to_json!(&self.kv(at)?.rollback(&at.path, version)?))
    }

    fn kv_list(
        &self,
        at: &KvPath,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, Failure> {
        Ok(self.kv(at)?.list(&at.path, after, limit)?)
    }

    fn kv_delete(&self, at: &KvPath, versions: &[u64]) -> Result<(), Failure> {
        let kv = self.kv(at)?;
        if versions.is_empty() {
            kv.delete_latest(&at.path)?;
        } else {
            kv.delete_versions(&at.path, versions)?;
        }
        Ok(())
    }

    fn kv_undelete(&self, at: &KvPath, versions: &[u64]) -> Result<(), Failure> {
        Ok(self.kv(at)?.undelete_versions(&at.path, versions)?)
    }

    fn kv_destroy(&self, at: &KvPath, versions: &[u64]) -> Result<(), Failure> {
        Ok(self.kv(at)?.destroy_versions(&at.path, versions)?)
    }

    fn kv_metadata(&self, at: &KvPath) -> Result<Option<Value>, Failure> {
        Ok(self.kv(at)?.metadata(&at.path)?.map(|v| to_json!(&v)))
    }

    fn kv_write_metadata(&self, at: &KvPath, update: &MetadataUpdate) -> Result<(), Failure> {
        self.kv(at)?.write_metadata(&at.path, update)?;
        Ok(())
    }

    fn kv_delete_metadata(&self, at: &KvPath) -> Result<(), Failure> {
        Ok(self.kv(at)?.delete_metadata(&at.path)?)
    }

    fn mounts(&self) -> Result<Map<String, Value>, Failure> {
        Ok(self
            .store
            .mounts()?
            .into_iter()
            .map(|m| {
                let description = json!({
                    "type": m.kind.name(),
                    "accessor": m.accessor,
                    "uuid": m.uuid,
                    "description": m.description,
                    "options": m.kind.options(),
                });
                (m.path, description)
            })
            .collect())
    }

    fn enable(&self, path: &str, kind: MountType, description: &str) -> Result<String, Failure> {
        Ok(self.store.enable(path, kind, description)?.path)
    }

    fn disable(&self, path: &str) -> Result<(), Failure> {
        self.store.disable(path)?;
        Ok(())
    }

    fn key_status(&self) -> Result<Value, Failure> {
        let status = self.store.barrier().key_status().map_err(Failure::from)?;
        Ok(key_status_json(&status))
    }

    fn rotate(&self) -> Result<Value, Failure> {
        Ok(key_status_json(&self.store.barrier().rotate()?))
    }

    fn audit_checkpoint(&self, chain_id: &str) -> Result<Option<Value>, Failure> {
        let checkpoint = tresor_audit::load_checkpoint(self.store.barrier(), chain_id)
            .map_err(|e| Failure::runtime(anyhow!(e)))?;
        Ok(checkpoint.map(|c| to_json!(c)))
    }
}

fn key_status_json(status: &tresor_barrier::KeyStatus) -> Value {
    json!({
        "term": status.term,
        "install_time": humantime::format_rfc3339_seconds(status.install_time).to_string(),
        "terms": status.terms,
    })
}

struct Server {
    client: Client,
}

/// The `data` of a response body.
fn data(body: Option<Value>) -> Value {
    body.map(|mut b| b["data"].take()).unwrap_or(Value::Null)
}

impl Server {
    /// Writes a body that may hold secret values, and wipes it afterwards.
    fn send_secret(&self, method: Method, path: &str, mut body: Value) -> Result<Value, Failure> {
        let result = self.client.call(method, path, Some(&body));
        wipe(&mut body);
        Ok(data(result?))
    }

    fn versions(&self, at: &KvPath, section: &str, versions: &[u64]) -> Result<(), Failure> {
        self.client
            .write(&at.api(section), &json!({ "versions": versions }))?;
        Ok(())
    }
}

fn data_body(data: &SecretMap, cas: Option<u64>) -> Value {
    let mut body = json!({ "data": data.as_map() });
    if let Some(cas) = cas {
        body["options"] = json!({ "cas": cas });
    }
    body
}

impl Store for Server {
    fn kv_path(&self, mount: Option<&str>, path: &str) -> Result<KvPath, Failure> {
        let path = path.trim_start_matches('/');
        if let Some(mount) = mount {
            return Ok(KvPath {
                mount: format!("{}/", mount.trim_matches('/')),
                path: path.trim_end_matches('/').to_string(),
            });
        }
        let mount = match self.client.kv_mount(path) {
            Ok(mount) => mount,
            // A token may read secrets without being allowed to ask where
            // mounts are; then the first segment names the mount, as in
            // the vault CLI's fallback.
            Err(denied @ tresor_client::Error::Api { status: 403, .. }) => {
                match path.split_once('/') {
                    Some((first, _)) => format!("{first}/"),
                    None => return Err(denied.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let rest = path
            .strip_prefix(mount.as_str())
            .or_else(|| path.strip_prefix(mount.trim_end_matches('/')))
            .unwrap_or_default();
        Ok(KvPath {
            mount,
            path: rest.to_string(),
        })
    }

    fn kv_read(&self, at: &KvPath, version: Option<u64>) -> Result<KvRead, Failure> {
        let query: Vec<(&str, String)> = version
            .map(|v| ("version", v.to_string()))
            .into_iter()
            .collect();
        let tresor_client::Reply { status, body } =
            self.client
                .send(Method::Get, &at.api("data"), &query, None)?;
        let mut body = body.unwrap_or(Value::Null);
        let metadata = body["data"]["metadata"].take();
        match (status, body["data"]["data"].take()) {
            (200, Value::Object(map)) => Ok(KvRead::Found {
                data: SecretMap::from_map(map),
                metadata,
            }),
            (404, _) if metadata.is_object() => Ok(KvRead::Gone { metadata }),
            (404, _)
                if body
                    .get("errors")
                    .is_none_or(|e| e.as_array().is_some_and(Vec::is_empty)) =>
            {
                Ok(KvRead::Missing)
            }
            _ => Err(tresor_client::api_error(tresor_client::Reply {
                status,
                body: Some(body),
            })
            .into()),
        }
    }

    fn kv_write(&self, at: &KvPath, data: &SecretMap, cas: Option<u64>) -> Result<Value, Failure> {
        self.send_secret(Method::Post, &at.api("data"), data_body(data, cas))
    }

    fn kv_patch(&self, at: &KvPath, data: &SecretMap, cas: Option<u64>) -> Result<Value, Failure> {
        self.send_secret(Method::Patch, &at.api("data"), data_body(data, cas))
    }

    /// As the vault CLI does it: read the old version, write it again with
    /// `cas` set to the current version, so a concurrent write is not lost.
    fn kv_rollback(&self, at: &KvPath, version: u64) -> Result<Value, Failure> {
        let current = self
            .kv_metadata(at)?
            .and_then(|m| m["current_version"].as_u64())
            .ok_or_else(|| Failure::usage(anyhow!("no value found at {}", at.api("data"))))?;
        match self.kv_read(at, Some(version))? {
            KvRead::Found { data, .. } => self.kv_write(at, &data, Some(current)),
            KvRead::Gone { .. } => Err(Failure::usage(anyhow!(
                "version {version} at {} is deleted or destroyed; it cannot be rolled back to",
                at.api("data")
            ))),
            KvRead::Missing => Err(Failure::usage(anyhow!(
                "no version {version} at {}",
                at.api("data")
            ))),
        }
    }

    fn kv_list(
        &self,
        at: &KvPath,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, Failure> {
        Ok(self.client.list(&at.api("metadata"), after, limit)?)
    }

    fn kv_delete(&self, at: &KvPath, versions: &[u64]) -> Result<(), Failure> {
        if versions.is_empty() {
            Ok(self.client.delete(&at.api("data"))?)
        } else {
            self.versions(at, "delete", versions)
        }
    }

    fn kv_undelete(&self, at: &KvPath, versions: &[u64]) -> Result<(), Failure> {
        self.versions(at, "undelete", versions)
    }

    fn kv_destroy(&self, at: &KvPath, versions: &[u64]) -> Result<(), Failure> {
        self.versions(at, "destroy", versions)
    }

    fn kv_metadata(&self, at: &KvPath) -> Result<Option<Value>, Failure> {
        Ok(self
            .client
            .read(&at.api("metadata"))?
            .map(|b| data(Some(b))))
    }

    fn kv_write_metadata(&self, at: &KvPath, update: &MetadataUpdate) -> Result<(), Failure> {
        let mut body = Map::new();
        if let Some(n) = update.max_versions {
            body.insert("max_versions".into(), n.into());
        }
        if let Some(b) = update.cas_required {
            body.insert("cas_required".into(), b.into());
        }
        if let Some(d) = update.delete_version_after {
            body.insert(
                "delete_version_after".into(),
                format!("{}s", d.as_secs()).into(),
            );
        }
        if let Some(custom) = &update.custom_metadata {
            body.insert("custom_metadata".into(), json!(custom));
        }
        if let Some(cas) = update.cas {
            body.insert("cas".into(), cas.into());
        }
        let method = if update.merge {
            Method::Patch
        } else {
            Method::Post
        };
        self.client
            .call(method, &at.api("metadata"), Some(&Value::Object(body)))?;
        Ok(())
    }

    fn kv_delete_metadata(&self, at: &KvPath) -> Result<(), Failure> {
        Ok(self.client.delete(&at.api("metadata"))?)
    }

    fn mounts(&self) -> Result<Map<String, Value>, Failure> {
        match data(self.client.call(Method::Get, "sys/mounts", None)?) {
            Value::Object(map) => Ok(map),
            _ => Ok(Map::new()),
        }
    }

    fn enable(&self, path: &str, kind: MountType, description: &str) -> Result<String, Failure> {
        let path = path.trim_matches('/');
        let (kind, version) = kind.enable_request();
        let mut request = json!({ "type": kind, "description": description });
        if let Some(version) = version {
            request["options"] = json!({ "version": version });
        }
        self.client.write(&format!("sys/mounts/{path}"), &request)?;
        Ok(format!("{path}/"))
    }

    fn disable(&self, path: &str) -> Result<(), Failure> {
        Ok(self
            .client
            .delete(&format!("sys/mounts/{}", path.trim_matches('/')))?)
    }

    fn key_status(&self) -> Result<Value, Failure> {
        let mut status = data(self.client.call(Method::Get, "sys/key-status", None)?);
        if let Value::Object(map) = &mut status {
            map.retain(|k, _| k == "term" || k == "install_time");
        }
        Ok(status)
    }

    fn rotate(&self) -> Result<Value, Failure> {
        self.client.call(Method::Put, "sys/rotate", None)?;
        self.key_status()
    }

    fn audit_checkpoint(&self, chain_id: &str) -> Result<Option<Value>, Failure> {
        let found = self
            .client
            .read(&format!("sys/audit-checkpoint/{chain_id}"))?;
        Ok(found.map(|body| data(Some(body))))
    }
}
