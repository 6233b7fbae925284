//! Where a platform's secrets are kept: the embedded store's KV engine, or
//! the KV v2 API of a `tresor server`. Plan and apply see only this.

use crate::PlatformError;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tresor_client::{Client, Method};
use tresor_kv::{KvEngine, MetadataUpdate, SecretMap};

/// A secret as stored: its current version (0: none), its data (none when
/// absent, deleted or destroyed), and its custom metadata.
pub struct Stored {
    pub version: u64,
    pub data: Option<SecretMap>,
    pub custom: BTreeMap<String, String>,
}

/// The operations plan and apply need from a store; shared by the threads
/// that write several secrets at once.
pub trait SecretStore: Sync {
    fn read(&self, path: &str) -> Result<Stored, PlatformError>;

    /// Writes a new version if the current one is still `cas`; `Ok(false)`
    /// when someone else wrote in between.
    fn write(&self, path: &str, data: &SecretMap, cas: u64) -> Result<bool, PlatformError>;

    /// Merges into the secret's custom metadata (`None` removes a key).
    fn merge_custom_metadata(
        &self,
        path: &str,
        custom: &BTreeMap<String, Option<String>>,
    ) -> Result<(), PlatformError>;

    /// [`SecretStore::write`], then [`SecretStore::merge_custom_metadata`]
    /// unless `custom` is empty; a store that can does both in one commit.
    fn write_with_custom_metadata(
        &self,
        path: &str,
        data: &SecretMap,
        cas: u64,
        custom: &BTreeMap<String, Option<String>>,
    ) -> Result<bool, PlatformError> {
        if !self.write(path, data, cas)? {
            return Ok(false);
        }
        if !custom.is_empty() {
            self.merge_custom_metadata(path, custom)?;
        }
        Ok(true)
    }
}

impl SecretStore for KvEngine {
    fn read(&self, path: &str) -> Result<Stored, PlatformError> {
        let custom = self
            .metadata(path)?
            .and_then(|m| m.custom_metadata)
            .unwrap_or_default();
        let (version, data) = match KvEngine::read(self, path, None)? {
            Some(read) => (read.metadata.version, read.data),
            None => (0, None),
        };
        Ok(Stored {
            version,
            data,
            custom,
        })
    }

    fn write(&self, path: &str, data: &SecretMap, cas: u64) -> Result<bool, PlatformError> {
        written(KvEngine::write(self, path, data, Some(cas)))
    }

    fn merge_custom_metadata(
        &self,
        path: &str,
        custom: &BTreeMap<String, Option<String>>,
    ) -> Result<(), PlatformError> {
        self.write_metadata(path, &merge(custom))?;
        Ok(())
    }

    /// One commit: the embedded store syncs once per secret.
    fn write_with_custom_metadata(
        &self,
        path: &str,
        data: &SecretMap,
        cas: u64,
        custom: &BTreeMap<String, Option<String>>,
    ) -> Result<bool, PlatformError> {
        written(KvEngine::write_with_metadata(
            self,
            path,
            data,
            Some(cas),
            &merge(custom),
        ))
    }
}

/// `Ok(false)` when the check-and-set found another version.
fn written<T>(result: Result<T, tresor_kv::KvError>) -> Result<bool, PlatformError> {
    match result {
        Ok(_) => Ok(true),
        Err(tresor_kv::KvError::CasMismatch { .. }) => Ok(false),
        Err(other) => Err(other.into()),
    }
}

/// A merge of `custom` into a secret's custom metadata (`None` removes a key).
fn merge(custom: &BTreeMap<String, Option<String>>) -> MetadataUpdate {
    MetadataUpdate {
        custom_metadata: Some(custom.clone()),
        merge: true,
        ..MetadataUpdate::default()
    }
}

/// A KV v2 mount of a tresor (or Vault) server.
pub struct RemoteStore {
    client: Client,
    mount: String,
}

impl RemoteStore {
    pub fn new(client: Client, mount: &str) -> Self {
        Self {
            client,
            mount: mount.trim_matches('/').to_string(),
        }
    }

    /// The server's client, for calls beyond plan and apply (listing).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl SecretStore for RemoteStore {
    fn read(&self, path: &str) -> Result<Stored, PlatformError> {
        let metadata = self
            .client
            .read(&format!("{}/metadata/{path}", self.mount))?;
        let Some(metadata) = metadata else {
            return Ok(Stored {
                version: 0,
                data: None,
                custom: BTreeMap::new(),
            });
        };
        let custom = match &metadata["data"]["custom_metadata"] {
            Value::Object(map) => map
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect(),
            _ => BTreeMap::new(),
        };
        let version = metadata["data"]["current_version"].as_u64().unwrap_or(0);
        let reply = self.client.send(
            Method::Get,
            &format!("{}/data/{path}", self.mount),
            &[],
            None,
        )?;
        let data = match (reply.status, reply.body) {
            (200, Some(mut body)) => match body["data"]["data"].take() {
                Value::Object(map) => Some(SecretMap::from_map(map)),
                _ => None,
            },
            (404, _) => None,
            (_, body) => {
                return Err(tresor_client::api_error(tresor_client::Reply {
                    status: reply.status,
                    body,
                })
                .into());
            }
        };
        Ok(Stored {
            version,
            data,
            custom,
        })
    }

    fn write(&self, path: &str, data: &SecretMap, cas: u64) -> Result<bool, PlatformError> {
        let mut body = json!({ "options": { "cas": cas }, "data": data });
        let written = self.client.call(
            Method::Post,
            &format!("{}/data/{path}", self.mount),
            Some(&body),
        );
        tresor_kv::wipe_json(&mut body);
        match written {
            Ok(_) => Ok(true),
            Err(tresor_client::Error::Api {
                status: 400,
                errors,
            }) if errors.iter().any(|e| e.contains("check-and-set")) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    fn merge_custom_metadata(
        &self,
        path: &str,
        custom: &BTreeMap<String, Option<String>>,
    ) -> Result<(), PlatformError> {
        let body = json!({ "custom_metadata": custom });
        self.client.call(
            Method::Patch,
            &format!("{}/metadata/{path}", self.mount),
            Some(&body),
        )?;
        Ok(())
    }
}
