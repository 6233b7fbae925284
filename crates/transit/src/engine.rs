use crate::key::{Key, KeyType, Settings, format_ciphertext, parse_ciphertext};
use crate::{TransitError, key};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tresor_barrier::{Barrier, Stamp, WriteSet};
use zeroize::Zeroizing;

/// How many times a write is tried again when the key changed under it.
const RETRIES: usize = 16;

/// Vault refuses an automatic rotation more often than hourly.
const MIN_AUTO_ROTATE: Duration = Duration::from_secs(3600);

/// Vault's answer when `key_version` is not an encryption version.
const TOO_OLD: &str = "ciphertext or signature version is disallowed by policy (too old)";

/// The transit engine of one mount: named keys kept encrypted in the
/// barrier under the mount's prefix (`policy/<name>`, as Vault names them),
/// and the operations on them. Nothing here knows HTTP: each operation takes
/// typed input and gives typed output or a [`TransitError`]; the outputs
/// serialize to the `data` of Vault's responses.
pub struct TransitEngine {
    barrier: Arc<Barrier>,
    prefix: String,
}

/// Parameters of a new key (`transit/keys/:name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateKey {
    pub key_type: KeyType,
    /// Each request derives its own key from its `context`.
    pub derived: bool,
    /// Refused: convergent encryption is not built.
    pub convergent_encryption: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    /// Zero: no automatic rotation; else at least an hour.
    pub auto_rotate_period: Duration,
}

impl Default for CreateKey {
    fn default() -> Self {
        Self {
            key_type: KeyType::Aes256Gcm96,
            derived: false,
            convergent_encryption: false,
            exportable: false,
            allow_plaintext_backup: false,
            auto_rotate_period: Duration::ZERO,
        }
    }
}

/// Changes to a key's settings (`transit/keys/:name/config`); `None` leaves
/// a setting as it is. Versions are signed so that a negative one gets
/// Vault's own refusal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyConfig {
    pub min_decryption_version: Option<i64>,
    pub min_encryption_version: Option<i64>,
    pub deletion_allowed: Option<bool>,
    /// Can only be turned on.
    pub exportable: Option<bool>,
    /// Can only be turned on.
    pub allow_plaintext_backup: Option<bool>,
    pub auto_rotate_period: Option<Duration>,
}

/// A key as `transit/keys/:name` shows it: never its material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: &'static str,
    pub derived: bool,
    pub deletion_allowed: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    pub min_available_version: u32,
    pub min_decryption_version: u32,
    pub min_encryption_version: u32,
    pub latest_version: u32,
    pub supports_encryption: bool,
    pub supports_decryption: bool,
    pub supports_derivation: bool,
    pub supports_signing: bool,
    pub imported_key: bool,
    pub soft_deleted: bool,
    /// Seconds.
    pub auto_rotate_period: u64,
    /// Each available version and when it was made (seconds since the epoch).
    pub keys: BTreeMap<String, i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kdf: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub convergent_encryption: Option<bool>,
}

/// What a write hands back beside its result: Vault's `warnings`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written<T> {
    pub value: T,
    pub warnings: Vec<String>,
}

/// One plaintext to encrypt: the fields of Vault's request or of one
/// `batch_input` item, base64 as Vault takes them.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct EncryptItem {
    pub plaintext: Zeroizing<String>,
    pub context: Option<String>,
    pub key_version: Option<u32>,
    pub associated_data: Option<String>,
    pub reference: Option<String>,
}

impl std::fmt::Debug for EncryptItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptItem")
            .field("plaintext", &"<redacted>")
            .field("key_version", &self.key_version)
            .field("reference", &self.reference)
            .finish_non_exhaustive()
    }
}

/// One ciphertext to decrypt or rewrap.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CiphertextItem {
    pub ciphertext: String,
    pub context: Option<String>,
    /// Rewrap only: the version to encrypt again with (0 or none: latest).
    pub key_version: Option<u32>,
    pub associated_data: Option<String>,
    pub reference: Option<String>,
}

/// One result of encrypt or rewrap, as in Vault's `batch_results`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EncryptResult {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ciphertext: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub key_version: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    pub reference: String,
}

/// One result of decrypt: the plaintext in base64, wiped when dropped.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
pub struct DecryptResult {
    pub plaintext: Zeroizing<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    pub reference: String,
}

impl std::fmt::Debug for DecryptResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptResult")
            .field("plaintext", &"<redacted>")
            .field("error", &self.error)
            .field("reference", &self.reference)
            .finish()
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The results of a batch in input order, and what kinds of failure it
/// holds, which decide the HTTP status as in Vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch<T> {
    pub results: Vec<T>,
    /// Some item was refused for its input (400).
    pub user_errors: bool,
    /// Some item succeeded.
    pub successes: bool,
}

impl<T> Batch<T> {
    /// Vault's status for a batch answer: 200, or 400 when an item failed,
    /// or then the caller's `partial_failure_response_code` if some items
    /// succeeded and it is a valid status.
    pub fn status(&self, partial_failure_response_code: Option<u16>) -> u16 {
        if !self.user_errors {
            return 200;
        }
        match partial_failure_response_code {
            Some(c) if self.successes && (1..=599).contains(&c) => c,
            _ => 400,
        }
    }
}

/// A result in a [`Batch`], which may carry an item's error.
pub trait BatchResult {
    /// The item's error; empty if it succeeded.
    fn error(&self) -> &str;
}

impl BatchResult for EncryptResult {
    fn error(&self) -> &str {
        &self.error
    }
}

impl BatchResult for DecryptResult {
    fn error(&self) -> &str {
        &self.error
    }
}

impl<T: BatchResult + Clone> Batch<T> {
    /// The one result of a request made without `batch_input`: its error,
    /// if it failed, is the request's (400).
    pub fn into_single(self) -> Result<T, TransitError> {
        let first = self
            .results
            .first()
            .cloned()
            .ok_or_else(|| TransitError::invalid("missing batch input to process"))?;
        if first.error().is_empty() {
            Ok(first)
        } else {
            Err(TransitError::Invalid(first.error().to_owned()))
        }
    }
}

/// A data key (`transit/datakey/:plaintext|wrapped/:name`).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct DataKey {
    /// Base64; only for the `plaintext` kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<Zeroizing<String>>,
    pub ciphertext: String,
    pub key_version: u32,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("plaintext", &self.plaintext.as_ref().map(|_| "<redacted>"))
            .field("ciphertext", &self.ciphertext)
            .field("key_version", &self.key_version)
            .finish()
    }
}

/// Parameters of a data key.
#[derive(Clone, Debug, Default)]
pub struct DataKeyRequest {
    /// Return the plaintext too (`plaintext`), or only the ciphertext (`wrapped`).
    pub with_plaintext: bool,
    /// 128, 256 (default) or 512.
    pub bits: Option<u32>,
    pub context: Option<String>,
    pub key_version: Option<u32>,
    pub associated_data: Option<String>,
}

/// Exported key material (`transit/export/encryption-key/:name[/:version]`).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Export {
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: String,
    /// Version to base64 key.
    pub keys: BTreeMap<String, Zeroizing<String>>,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("name", &self.name)
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Mount-wide settings (`transit/config/keys`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountConfig {
    /// Encrypting with a missing key fails instead of creating it.
    pub disable_upsert: bool,
}

const CONFIG_KEY: &str = "config/keys";

impl TransitEngine {
    /// The engine of the mount whose storage starts at `prefix`
    /// (`logical/<uuid>/`).
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> Self {
        Self {
            barrier,
            prefix: prefix.into(),
        }
    }

    fn key_path(&self, name: &str) -> String {
        format!("{}policy/{name}", self.prefix)
    }

    /// Reads a key and the stamp of its record.
    fn load(&self, name: &str) -> Result<Option<(Key, Stamp)>, TransitError> {
        check_name(name)?;
        let path = self.key_path(name);
        let Some(entry) = self.barrier.get(&path)? else {
            return Ok(None);
        };
        let key = Key::from_bytes(&entry.value).ok_or(TransitError::Corrupt(path))?;
        Ok(Some((key, entry.stamp)))
    }

    fn need(&self, name: &str) -> Result<(Key, Stamp), TransitError> {
        self.load(name)?
            .ok_or_else(|| TransitError::KeyNotFound(name.to_owned()))
    }

    /// Applies `change` to the key and writes it if nothing else wrote it
    /// in between, retrying on a conflict.
    fn update<T>(
        &self,
        name: &str,
        mut change: impl FnMut(&mut Key) -> Result<T, TransitError>,
    ) -> Result<(Key, T), TransitError> {
        for _ in 0..RETRIES {
            let (mut key, stamp) = self.need(name)?;
            let out = change(&mut key)?;
            let mut writes = WriteSet::new();
            writes
                .expect(&self.key_path(name), Some(&stamp))
                .put(&self.key_path(name), key.to_bytes());
            if self.barrier.commit(writes)?.applied() {
                return Ok((key, out));
            }
        }
        Err(TransitError::Contended(name.to_owned()))
    }

    /// Whether a key of that name exists: the server's existence check,
    /// which makes a write to `encrypt/:name` a `create` when it does not.
    pub fn key_exists(&self, name: &str) -> Result<bool, TransitError> {
        check_name(name)?;
        Ok(self.barrier.get(&self.key_path(name))?.is_some())
    }

    /// Creates a key; an existing one is left as it is, with Vault's
    /// warning.
    pub fn create_key(
        &self,
        name: &str,
        params: &CreateKey,
    ) -> Result<Written<KeyInfo>, TransitError> {
        check_name(name)?;
        if params.convergent_encryption {
            return Err(if params.derived {
                TransitError::invalid(
                    "convergent encryption is not supported by tresor's transit engine",
                )
            } else {
                TransitError::invalid("convergent encryption requires derivation to be enabled")
            });
        }
        check_auto_rotate(params.auto_rotate_period)?;
        let path = self.key_path(name);
        for _ in 0..RETRIES {
            if let Some((existing, _)) = self.load(name)? {
                return Ok(Written {
                    value: info(&existing),
                    warnings: vec![format!("key {name} already existed")],
                });
            }
            let key = Key::new(
                Settings {
                    name: name.to_owned(),
                    kind: params.key_type,
                    derived: params.derived,
                    exportable: params.exportable,
                    allow_plaintext_backup: params.allow_plaintext_backup,
                    deletion_allowed: false,
                    min_decryption_version: 1,
                    min_encryption_version: 0,
                    min_available_version: 0,
                    latest_version: 0,
                    auto_rotate_period_secs: params.auto_rotate_period.as_secs(),
                },
                now(),
            );
            let mut writes = WriteSet::new();
            writes.expect(&path, None).put(&path, key.to_bytes());
            if self.barrier.commit(writes)?.applied() {
                return Ok(Written {
                    value: info(&key),
                    warnings: Vec::new(),
                });
            }
        }
        Err(TransitError::Contended(name.to_owned()))
    }

    /// A key's settings and versions, or `None`.
    pub fn read_key(&self, name: &str) -> Result<Option<KeyInfo>, TransitError> {
        Ok(self.load(name)?.map(|(key, _)| info(&key)))
    }

    /// Key names in order, after `after`, at most `limit`.
    pub fn list_keys(
        &self,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, TransitError> {
        Ok(self
            .barrier
            .list(&format!("{}policy/", self.prefix), after, limit)?)
    }

    /// Deletes a key whose `deletion_allowed` is set; every ciphertext made
    /// with it is then lost.
    pub fn delete_key(&self, name: &str) -> Result<(), TransitError> {
        let (key, stamp) = self.load(name)?.ok_or_else(|| {
            TransitError::invalid(format!(
                "error deleting policy {name}: could not delete key; not found"
            ))
        })?;
        if !key.settings.deletion_allowed {
            return Err(TransitError::DeletionNotAllowed);
        }
        let mut writes = WriteSet::new();
        writes
            .expect(&self.key_path(name), Some(&stamp))
            .delete(&self.key_path(name));
        if !self.barrier.commit(writes)?.applied() {
            return Err(TransitError::Contended(name.to_owned()));
        }
        Ok(())
    }

    /// Changes a key's settings, with Vault's checks and warnings.
    pub fn configure_key(
        &self,
        name: &str,
        config: &KeyConfig,
    ) -> Result<Written<KeyInfo>, TransitError> {
        if let Some(period) = config.auto_rotate_period {
            check_auto_rotate(period)?;
        }
        let (key, warnings) = self
            .update(name, |key| configure(&mut key.settings, config))
            .map_err(|e| match e {
                TransitError::KeyNotFound(name) => {
                    TransitError::invalid(format!("no existing key named {name} could be found"))
                }
                other => other,
            })?;
        Ok(Written {
            value: info(&key),
            warnings,
        })
    }

    /// Adds a version that encrypts from now on; older ones still decrypt
    /// down to `min_decryption_version`.
    pub fn rotate_key(&self, name: &str) -> Result<KeyInfo, TransitError> {
        let (key, ()) = self
            .update(name, |key| {
                key.rotate(now());
                Ok(())
            })
            .map_err(|e| match e {
                TransitError::KeyNotFound(_) => TransitError::invalid("key not found"),
                other => other,
            })?;
        Ok(info(&key))
    }

    /// Deletes the versions below `min_available_version`
    /// (`transit/keys/:name/trim`).
    pub fn trim_key(
        &self,
        name: &str,
        min_available_version: i64,
    ) -> Result<KeyInfo, TransitError> {
        let (key, ()) = self
            .update(name, |key| {
                let s = &key.settings;
                let refuse = |m: &str| Err(TransitError::invalid(m));
                let v = min_available_version;
                if v < i64::from(s.min_available_version) {
                    return refuse("minimum available version cannot be decremented");
                } else if s.min_encryption_version == 0 {
                    return refuse(
                        "minimum available version cannot be set when minimum encryption version is not set",
                    );
                } else if v > i64::from(s.min_encryption_version) {
                    return refuse(
                        "minimum available version cannot be greater than minmum encryption version",
                    );
                } else if v > i64::from(s.min_decryption_version) {
                    return refuse(
                        "minimum available version cannot be greater than minimum decryption version",
                    );
                } else if v <= 0 {
                    return refuse("minimum available version should be positive");
                }
                let v = u32::try_from(v).map_err(|_| TransitError::invalid("invalid key version"))?;
                key.settings.min_available_version = v;
                key.versions.retain(|n, _| *n >= v);
                Ok(())
            })
            .map_err(|e| match e {
                TransitError::KeyNotFound(_) => TransitError::invalid("invalid key name"),
                other => other,
            })?;
        Ok(info(&key))
    }

    /// Rotates every key whose `auto_rotate_period` has passed since its
    /// latest version was made; the names rotated. For the server's timer.
    pub fn rotate_due(&self, at: SystemTime) -> Result<Vec<String>, TransitError> {
        let at = seconds(at);
        let mut rotated = Vec::new();
        for name in self.list_keys(None, None)? {
            if self.rotate_if_due(&name, at)? {
                rotated.push(name);
            }
        }
        Ok(rotated)
    }

    /// Rotates `name` if it is due at `at`, deciding again after a
    /// conflicting write: servers sharing a store rotate a due key once.
    fn rotate_if_due(&self, name: &str, at: i64) -> Result<bool, TransitError> {
        for _ in 0..RETRIES {
            let Some((mut key, stamp)) = self.load(name)? else {
                return Ok(false);
            };
            if !key.rotation_due(at) {
                return Ok(false);
            }
            key.rotate(at);
            let mut writes = WriteSet::new();
            writes
                .expect(&self.key_path(name), Some(&stamp))
                .put(&self.key_path(name), key.to_bytes());
            if self.barrier.commit(writes)?.applied() {
                return Ok(true);
            }
        }
        Err(TransitError::Contended(name.to_owned()))
    }

    /// The mount-wide settings.
    pub fn mount_config(&self) -> Result<MountConfig, TransitError> {
        let path = format!("{}{CONFIG_KEY}", self.prefix);
        match self.barrier.get(&path)? {
            None => Ok(MountConfig::default()),
            Some(entry) => {
                serde_json::from_slice(&entry.value).map_err(|_| TransitError::Corrupt(path))
            }
        }
    }

    pub fn set_mount_config(&self, config: MountConfig) -> Result<(), TransitError> {
        let path = format!("{}{CONFIG_KEY}", self.prefix);
        let mut writes = WriteSet::new();
        writes.put(
            &path,
            Zeroizing::new(serde_json::to_vec(&config).expect("the mount config serializes")),
        );
        self.barrier.commit(writes)?;
        Ok(())
    }

    /// Encrypts each item (`transit/encrypt/:name`). With `upsert`, a
    /// missing key is created first with those parameters (Vault does so
    /// when the request is a `create`: the key did not exist and the ACL
    /// allowed creating it), unless the mount disables upserts. A context
    /// given to some items and not others refuses the whole request.
    pub fn encrypt(
        &self,
        name: &str,
        items: &[EncryptItem],
        upsert: Option<&CreateKey>,
    ) -> Result<Written<Batch<EncryptResult>>, TransitError> {
        if items.is_empty() {
            return Err(TransitError::invalid("missing batch input to process"));
        }
        let with_context = check_contexts(items.iter().map(|i| i.context.as_deref()))?;
        let mut warnings = Vec::new();
        let key = match (self.load(name)?, upsert) {
            (Some((key, _)), upsert) => {
                if upsert.is_some() {
                    warnings.push(
                        "Attempted creation of the key during the encrypt operation, but it was created beforehand"
                            .to_owned(),
                    );
                }
                key
            }
            (None, Some(params)) if !self.mount_config()?.disable_upsert => {
                let params = CreateKey {
                    derived: with_context,
                    ..params.clone()
                };
                self.create_key(name, &params)?;
                self.need(name)?.0
            }
            (None, _) => return Err(TransitError::KeyNotFound(name.to_owned())),
        };
        let mut batch = Batch::new(items.len());
        for (i, item) in items.iter().enumerate() {
            let result = encrypt_item(
                &key,
                &item.plaintext,
                item.context.as_deref(),
                item.key_version,
                item.associated_data.as_deref(),
                i,
            );
            batch.push(
                result.map(|(ciphertext, key_version)| EncryptResult {
                    ciphertext,
                    key_version,
                    ..EncryptResult::default()
                }),
                |error| EncryptResult {
                    error,
                    ..EncryptResult::default()
                },
                item.reference.clone(),
                |r, reference| r.reference = reference,
            );
        }
        Ok(Written {
            value: batch,
            warnings,
        })
    }

    /// Decrypts each item (`transit/decrypt/:name`).
    pub fn decrypt(
        &self,
        name: &str,
        items: &[CiphertextItem],
    ) -> Result<Batch<DecryptResult>, TransitError> {
        if items.is_empty() {
            return Err(TransitError::invalid("missing batch input to process"));
        }
        check_contexts(items.iter().map(|i| i.context.as_deref()))?;
        let (key, _) = self.need(name)?;
        let mut batch = Batch::new(items.len());
        for (i, item) in items.iter().enumerate() {
            let result = decrypt_item(
                &key,
                &item.ciphertext,
                item.context.as_deref(),
                item.associated_data.as_deref(),
                i,
            )
            .map(|plain| DecryptResult {
                plaintext: Zeroizing::new(B64.encode(plain.as_slice())),
                ..DecryptResult::default()
            });
            batch.push(
                result,
                |error| DecryptResult {
                    error,
                    ..DecryptResult::default()
                },
                item.reference.clone(),
                |r, reference| r.reference = reference,
            );
        }
        Ok(batch)
    }

    /// Decrypts each ciphertext and encrypts it again with the latest (or
    /// the given) version, never showing the plaintext
    /// (`transit/rewrap/:name`).
    pub fn rewrap(
        &self,
        name: &str,
        items: &[CiphertextItem],
    ) -> Result<Batch<EncryptResult>, TransitError> {
        if items.is_empty() {
            return Err(TransitError::invalid("missing batch input to process"));
        }
        check_contexts(items.iter().map(|i| i.context.as_deref()))?;
        let (key, _) = self.need(name)?;
        let mut batch = Batch::new(items.len());
        for (i, item) in items.iter().enumerate() {
            let result = decrypt_item(
                &key,
                &item.ciphertext,
                item.context.as_deref(),
                item.associated_data.as_deref(),
                i,
            )
            .and_then(|plain| {
                let context = decode_context(item.context.as_deref())?;
                let aad = decode_aad(item.associated_data.as_deref(), i)?;
                seal(&key, &plain, context.as_deref(), item.key_version, &aad)
            })
            .map(|(ciphertext, key_version)| EncryptResult {
                ciphertext,
                key_version,
                ..EncryptResult::default()
            });
            batch.push(
                result,
                |error| EncryptResult {
                    error,
                    ..EncryptResult::default()
                },
                item.reference.clone(),
                |r, reference| r.reference = reference,
            );
        }
        Ok(batch)
    }

    /// A fresh random key encrypted with the named key
    /// (`transit/datakey/:plaintext|wrapped/:name`).
    pub fn datakey(&self, name: &str, request: &DataKeyRequest) -> Result<DataKey, TransitError> {
        let context = decode_context(request.context.as_deref())?;
        let aad = decode_aad(request.associated_data.as_deref(), 0)?;
        let (key, _) = self.need(name)?;
        let len = match request.bits.unwrap_or(256) {
            128 => 16,
            256 => 32,
            512 => 64,
            _ => return Err(TransitError::invalid("invalid bit length")),
        };
        let mut fresh = Zeroizing::new(vec![0u8; len]);
        key::fill_random(&mut fresh);
        let (ciphertext, key_version) =
            seal(&key, &fresh, context.as_deref(), request.key_version, &aad)?;
        Ok(DataKey {
            plaintext: request
                .with_plaintext
                .then(|| Zeroizing::new(B64.encode(fresh.as_slice()))),
            ciphertext,
            key_version,
        })
    }

    /// The key material of an exportable key
    /// (`transit/export/:type/:name[/:version]`): `export_type` must be
    /// `encryption-key`; `version` is a number, `v<number>` or `latest`, or
    /// none for every available version.
    pub fn export(
        &self,
        name: &str,
        export_type: &str,
        version: Option<&str>,
    ) -> Result<Option<Export>, TransitError> {
        match export_type {
            "encryption-key" => {}
            "hmac-key" | "signing-key" | "public-key" | "certificate-chain" => {
                return Err(TransitError::invalid(format!(
                    "{export_type} export is not supported: tresor's transit keys are encryption keys only"
                )));
            }
            other => {
                return Err(TransitError::invalid(format!(
                    "invalid export type: {other}"
                )));
            }
        }
        let Some((key, _)) = self.load(name)? else {
            return Ok(None);
        };
        if !key.settings.exportable {
            return Err(TransitError::NotExportable);
        }
        let mut keys = BTreeMap::new();
        let mut add = |n: u32, v: &key::Version| {
            keys.insert(
                n.to_string(),
                Zeroizing::new(B64.encode(v.material.as_slice())),
            );
        };
        match version {
            None => key.versions.iter().for_each(|(n, v)| add(*n, v)),
            Some(text) => {
                let n = if text == "latest" {
                    key.settings.latest_version
                } else {
                    text.trim_start_matches('v')
                        .parse()
                        .map_err(|_| TransitError::invalid("invalid key version"))?
                };
                if n < key.settings.min_decryption_version {
                    return Err(TransitError::invalid(
                        "version for export is below minimum decryption version",
                    ));
                }
                let v = key.versions.get(&n).ok_or_else(|| {
                    TransitError::invalid("version does not exist or cannot be found")
                })?;
                add(n, v);
            }
        }
        Ok(Some(Export {
            name: key.settings.name.clone(),
            key_type: key.settings.kind.name().to_owned(),
            keys,
        }))
    }

    /// Encrypts raw bytes with the latest version: for callers inside
    /// tresor (the Kubernetes KMS plugin). Returns the `vault:v<n>:`
    /// ciphertext and its version.
    pub fn encrypt_bytes(
        &self,
        name: &str,
        plaintext: &[u8],
        context: Option<&[u8]>,
    ) -> Result<(String, u32), TransitError> {
        let (key, _) = self.need(name)?;
        seal(&key, plaintext, context, None, &[])
    }

    /// Decrypts a `vault:v<n>:` ciphertext to raw bytes.
    pub fn decrypt_bytes(
        &self,
        name: &str,
        ciphertext: &str,
        context: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, TransitError> {
        let (key, _) = self.need(name)?;
        open(&key, ciphertext, context, &[])
    }
}

impl<T: Default> Batch<T> {
    fn new(capacity: usize) -> Self {
        Self {
            results: Vec::with_capacity(capacity),
            user_errors: false,
            successes: false,
        }
    }

    fn push(
        &mut self,
        result: Result<T, TransitError>,
        failed: impl FnOnce(String) -> T,
        reference: Option<String>,
        set_reference: impl FnOnce(&mut T, String),
    ) {
        let mut item = match result {
            Ok(item) => {
                self.successes = true;
                item
            }
            Err(e) => {
                self.user_errors = true;
                failed(e.to_string())
            }
        };
        set_reference(&mut item, reference.unwrap_or_default());
        self.results.push(item);
    }
}

fn encrypt_item(
    key: &Key,
    plaintext: &str,
    context: Option<&str>,
    version: Option<u32>,
    aad: Option<&str>,
    index: usize,
) -> Result<(String, u32), TransitError> {
    let plain = Zeroizing::new(
        B64.decode(plaintext.as_bytes())
            .map_err(|e| TransitError::invalid(e.to_string()))?,
    );
    let context = decode_context(context)?;
    let aad = decode_aad(aad, index)?;
    seal(key, &plain, context.as_deref(), version, &aad)
}

fn decrypt_item(
    key: &Key,
    ciphertext: &str,
    context: Option<&str>,
    aad: Option<&str>,
    index: usize,
) -> Result<Zeroizing<Vec<u8>>, TransitError> {
    if ciphertext.is_empty() {
        return Err(TransitError::invalid("missing ciphertext to decrypt"));
    }
    let context = decode_context(context)?;
    let aad = decode_aad(aad, index)?;
    open(key, ciphertext, context.as_deref(), &aad)
}

fn seal(
    key: &Key,
    plaintext: &[u8],
    context: Option<&[u8]>,
    version: Option<u32>,
    aad: &[u8],
) -> Result<(String, u32), TransitError> {
    let version = key.encryption_version(version)?;
    let material = key.material(version, context)?;
    let sealed = key.settings.kind.seal(&material, plaintext, aad);
    Ok((format_ciphertext(version, &sealed), version))
}

fn open(
    key: &Key,
    ciphertext: &str,
    context: Option<&[u8]>,
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, TransitError> {
    let (version, sealed) = parse_ciphertext(ciphertext)?;
    let s = &key.settings;
    if version > s.latest_version {
        return Err(TransitError::invalid(
            "invalid ciphertext: version is too new",
        ));
    }
    if version < s.min_decryption_version || version < s.min_available_version {
        return Err(TransitError::invalid(TOO_OLD));
    }
    if sealed.len() < s.kind.nonce_size() {
        return Err(TransitError::invalid("invalid ciphertext length"));
    }
    let material = key.material(version, context)?;
    s.kind
        .open(&material, &sealed, aad)
        .ok_or_else(|| TransitError::invalid("cipher: message authentication failed"))
}

fn decode_context(context: Option<&str>) -> Result<Option<Vec<u8>>, TransitError> {
    context
        .filter(|c| !c.is_empty())
        .map(|c| {
            B64.decode(c.as_bytes())
                .map_err(|_| TransitError::invalid("failed to base64-decode context"))
        })
        .transpose()
}

fn decode_aad(aad: Option<&str>, index: usize) -> Result<Vec<u8>, TransitError> {
    match aad.filter(|a| !a.is_empty()) {
        None => Ok(Vec::new()),
        Some(a) => B64.decode(a.as_bytes()).map_err(|_| {
            TransitError::invalid(format!(
                "'[{index}].associated_data' failed to base64-decode associated_data"
            ))
        }),
    }
}

/// Vault wants a context on every item or on none; returns which.
fn check_contexts<'a>(
    mut contexts: impl Iterator<Item = Option<&'a str>>,
) -> Result<bool, TransitError> {
    let has = |c: Option<&str>| c.is_some_and(|c| !c.is_empty());
    let first = contexts.next().is_some_and(has);
    if contexts.any(|c| has(c) != first) {
        return Err(TransitError::invalid(
            "context should be set either in all the request blocks or in none",
        ));
    }
    Ok(first)
}

fn configure(settings: &mut Settings, config: &KeyConfig) -> Result<Vec<String>, TransitError> {
    let mut warnings = Vec::new();
    let latest = i64::from(settings.latest_version);
    if let Some(v) = config.min_decryption_version {
        let v = match v {
            v if v < 0 => {
                return Err(TransitError::invalid(
                    "min decryption version cannot be negative",
                ));
            }
            0 => {
                warnings.push(
                    "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"
                        .to_owned(),
                );
                1
            }
            v => v,
        };
        if v > latest {
            return Err(TransitError::invalid(format!(
                "cannot set min decryption version of {v}, latest key version is {latest}"
            )));
        }
        settings.min_decryption_version = to_u32(v)?;
    }
    if let Some(v) = config.min_encryption_version {
        if v < 0 {
            return Err(TransitError::invalid(
                "min encryption version cannot be negative",
            ));
        }
        if v > latest {
            return Err(TransitError::invalid(format!(
                "cannot set min encryption version of {v}, latest key version is {latest}"
            )));
        }
        settings.min_encryption_version = to_u32(v)?;
    }
    if settings.min_encryption_version > 0
        && settings.min_encryption_version < settings.min_decryption_version
    {
        return Err(TransitError::invalid(format!(
            "cannot set min encryption/decryption values; min encryption version of {} must be greater than or equal to min decryption version of {}",
            settings.min_encryption_version, settings.min_decryption_version
        )));
    }
    if let Some(allowed) = config.deletion_allowed {
        settings.deletion_allowed = allowed;
    }
    if config.exportable == Some(true) {
        settings.exportable = true;
    }
    if config.allow_plaintext_backup == Some(true) {
        settings.allow_plaintext_backup = true;
    }
    if let Some(period) = config.auto_rotate_period {
        settings.auto_rotate_period_secs = period.as_secs();
    }
    if settings.min_available_version > settings.min_encryption_version
        && settings.min_encryption_version > 0
    {
        return Err(TransitError::invalid(
            "min encryption version should not be less than min available version",
        ));
    }
    if settings.min_available_version > settings.min_decryption_version {
        return Err(TransitError::invalid(
            "min decryption version should not be less then min available version",
        ));
    }
    Ok(warnings)
}

fn to_u32(v: i64) -> Result<u32, TransitError> {
    u32::try_from(v).map_err(|_| TransitError::invalid("invalid key version"))
}

fn check_auto_rotate(period: Duration) -> Result<(), TransitError> {
    if !period.is_zero() && period < MIN_AUTO_ROTATE {
        return Err(TransitError::invalid(
            "auto rotate period must be 0 to disable or at least an hour",
        ));
    }
    Ok(())
}

/// Vault's key names: word characters, `-` and `.`, starting and ending
/// with a word character.
fn check_name(name: &str) -> Result<(), TransitError> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let ok = name.starts_with(word)
        && name.ends_with(word)
        && name.chars().all(|c| word(c) || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(TransitError::invalid(format!(
            "invalid key name `{name}`: use letters, digits, `_`, `-` and `.`, starting and ending with a letter, digit or `_`"
        )))
    }
}

fn info(key: &Key) -> KeyInfo {
    let s = &key.settings;
    KeyInfo {
        name: s.name.clone(),
        key_type: s.kind.name(),
        derived: s.derived,
        deletion_allowed: s.deletion_allowed,
        exportable: s.exportable,
        allow_plaintext_backup: s.allow_plaintext_backup,
        min_available_version: s.min_available_version,
        min_decryption_version: s.min_decryption_version,
        min_encryption_version: s.min_encryption_version,
        latest_version: s.latest_version,
        supports_encryption: true,
        supports_decryption: true,
        supports_derivation: true,
        supports_signing: false,
        imported_key: false,
        soft_deleted: false,
        auto_rotate_period: s.auto_rotate_period_secs,
        keys: key
            .versions
            .iter()
            .map(|(n, v)| (n.to_string(), v.created))
            .collect(),
        kdf: s.derived.then_some("hkdf_sha256"),
        convergent_encryption: s.derived.then_some(false),
    }
}

fn seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn now() -> i64 {
    seconds(SystemTime::now())
}
