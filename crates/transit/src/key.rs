//! A named key: its versions (the key material), its settings, and the
//! ciphers it encrypts with.

use crate::TransitError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// The symmetric ciphers a transit key can be of, named as Vault names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    #[serde(rename = "aes128-gcm96")]
    Aes128Gcm96,
    #[serde(rename = "aes256-gcm96")]
    Aes256Gcm96,
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
    #[serde(rename = "xchacha20-poly1305")]
    XChaCha20Poly1305,
}

impl KeyType {
    /// The type as Vault spells it (`aes256-gcm96`).
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Aes128Gcm96 => "aes128-gcm96",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
            KeyType::XChaCha20Poly1305 => "xchacha20-poly1305",
        }
    }

    /// Parses a `type` parameter. Vault's asymmetric and HMAC types are
    /// refused by name, so the caller learns they are not built rather than
    /// that they do not exist.
    pub fn parse(text: &str) -> Result<Self, TransitError> {
        Ok(match text {
            "aes128-gcm96" => KeyType::Aes128Gcm96,
            "aes256-gcm96" => KeyType::Aes256Gcm96,
            "chacha20-poly1305" => KeyType::ChaCha20Poly1305,
            "xchacha20-poly1305" => KeyType::XChaCha20Poly1305,
            "ecdsa-p256" | "ecdsa-p384" | "ecdsa-p521" | "ed25519" | "rsa-2048" | "rsa-3072"
            | "rsa-4096" | "hmac" => {
                return Err(TransitError::invalid(format!(
                    "key type {text} is not supported by tresor's transit engine (only symmetric encryption keys: aes128-gcm96, aes256-gcm96, chacha20-poly1305, xchacha20-poly1305)"
                )));
            }
            other => return Err(TransitError::invalid(format!("unknown key type {other}"))),
        })
    }

    pub(crate) fn key_len(self) -> usize {
        match self {
            KeyType::Aes128Gcm96 => 16,
            _ => 32,
        }
    }

    fn nonce_len(self) -> usize {
        match self {
            KeyType::XChaCha20Poly1305 => 24,
            _ => 12,
        }
    }

    /// Encrypts under `key`: `nonce ‖ ciphertext ‖ tag`, as Vault lays it out.
    pub(crate) fn seal(self, key: &[u8], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let mut nonce = vec![0u8; self.nonce_len()];
        fill_random(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        let sealed = match self {
            KeyType::Aes128Gcm96 => aes_gcm::Aes128Gcm::new_from_slice(key)
                .ok()
                .and_then(|c| c.encrypt(array(&nonce)?, payload).ok()),
            KeyType::Aes256Gcm96 => aes_gcm::Aes256Gcm::new_from_slice(key)
                .ok()
                .and_then(|c| c.encrypt(array(&nonce)?, payload).ok()),
            KeyType::ChaCha20Poly1305 => chacha20poly1305::ChaCha20Poly1305::new_from_slice(key)
                .ok()
                .and_then(|c| c.encrypt(array(&nonce)?, payload).ok()),
            KeyType::XChaCha20Poly1305 => chacha20poly1305::XChaCha20Poly1305::new_from_slice(key)
                .ok()
                .and_then(|c| c.encrypt(array(&nonce)?, payload).ok()),
        }
        .expect("key and nonce lengths come from the key type, and in-memory AEAD cannot fail");
        nonce.extend_from_slice(&sealed);
        nonce
    }

    /// Opens `nonce ‖ ciphertext ‖ tag`; `None` if it does not authenticate.
    pub(crate) fn nonce_size(self) -> usize {
        self.nonce_len()
    }

    pub(crate) fn open(self, key: &[u8], data: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let n = self.nonce_len();
        if data.len() < n + 16 {
            return None;
        }
        let (nonce, body) = data.split_at(n);
        let payload = Payload { msg: body, aad };
        let plain = match self {
            KeyType::Aes128Gcm96 => aes_gcm::Aes128Gcm::new_from_slice(key)
                .ok()?
                .decrypt(array(nonce)?, payload),
            KeyType::Aes256Gcm96 => aes_gcm::Aes256Gcm::new_from_slice(key)
                .ok()?
                .decrypt(array(nonce)?, payload),
            KeyType::ChaCha20Poly1305 => chacha20poly1305::ChaCha20Poly1305::new_from_slice(key)
                .ok()?
                .decrypt(array(nonce)?, payload),
            KeyType::XChaCha20Poly1305 => chacha20poly1305::XChaCha20Poly1305::new_from_slice(key)
                .ok()?
                .decrypt(array(nonce)?, payload),
        };
        plain.ok().map(Zeroizing::new)
    }
}

fn array<N: aes_gcm::aead::array::ArraySize>(
    bytes: &[u8],
) -> Option<&aes_gcm::aead::array::Array<u8, N>> {
    bytes.try_into().ok()
}

pub(crate) fn fill_random(buf: &mut [u8]) {
    // The OS generator failing means no key or nonce can be made safely.
    getrandom::fill(buf).expect("the operating system's random generator failed");
}

/// One version of a key's material.
pub(crate) struct Version {
    pub(crate) material: Zeroizing<Vec<u8>>,
    /// Seconds since the Unix epoch.
    pub(crate) created: i64,
}

/// A key as the engine holds it while serving one request: never cached
/// between requests, wiped when dropped.
pub(crate) struct Key {
    pub(crate) settings: Settings,
    pub(crate) versions: BTreeMap<u32, Version>,
}

/// Everything about a key except its material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Settings {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) kind: KeyType,
    pub(crate) derived: bool,
    pub(crate) exportable: bool,
    pub(crate) allow_plaintext_backup: bool,
    pub(crate) deletion_allowed: bool,
    pub(crate) min_decryption_version: u32,
    /// 0: the latest version encrypts.
    pub(crate) min_encryption_version: u32,
    /// Versions below it were trimmed away.
    pub(crate) min_available_version: u32,
    pub(crate) latest_version: u32,
    /// 0: no automatic rotation.
    pub(crate) auto_rotate_period_secs: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredVersion {
    key: String,
    created_unix: i64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    settings: Settings,
    versions: BTreeMap<u32, StoredVersion>,
}

impl Key {
    /// A new key with its first version.
    pub(crate) fn new(settings: Settings, now: i64) -> Self {
        let mut key = Self {
            settings,
            versions: BTreeMap::new(),
        };
        key.settings.latest_version = 0;
        key.settings.min_decryption_version = 1;
        key.rotate(now);
        key
    }

    /// Adds a version, which encrypts from now on.
    /// Whether `auto_rotate_period` has passed at `at` since the latest
    /// version was made.
    pub(crate) fn rotation_due(&self, at: i64) -> bool {
        let period = self.settings.auto_rotate_period_secs;
        let made = self
            .versions
            .get(&self.settings.latest_version)
            .map_or(0, |v| v.created);
        period > 0 && at.saturating_sub(made) >= i64::try_from(period).unwrap_or(i64::MAX)
    }

    pub(crate) fn rotate(&mut self, now: i64) {
        let mut material = Zeroizing::new(vec![0u8; self.settings.kind.key_len()]);
        fill_random(&mut material);
        let next = self.settings.latest_version + 1;
        self.versions.insert(
            next,
            Version {
                material,
                created: now,
            },
        );
        self.settings.latest_version = next;
    }

    /// The material that encrypts or decrypts under `version`, derived from
    /// `context` for a derived key (HKDF-SHA256, as Vault's `hkdf_sha256`).
    pub(crate) fn material(
        &self,
        version: u32,
        context: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, TransitError> {
        let found = self
            .versions
            .get(&version)
            .ok_or_else(|| TransitError::invalid("invalid key version"))?;
        if !self.settings.derived {
            return Ok(found.material.clone());
        }
        let context = context.filter(|c| !c.is_empty()).ok_or_else(|| {
            TransitError::invalid(
                "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key",
            )
        })?;
        let mut derived = Zeroizing::new(vec![0u8; self.settings.kind.key_len()]);
        hkdf::Hkdf::<sha2::Sha256>::new(None, &found.material)
            .expand(context, &mut derived)
            .map_err(|_| TransitError::invalid("could not derive the key"))?;
        Ok(derived)
    }

    /// The version a new ciphertext is made with, checked as Vault does.
    pub(crate) fn encryption_version(&self, asked: Option<u32>) -> Result<u32, TransitError> {
        let s = &self.settings;
        match asked.unwrap_or(0) {
            0 => Ok(s.latest_version),
            v if v > s.latest_version => Err(TransitError::invalid(
                "requested version for encryption is higher than the latest key version",
            )),
            v if v < s.min_encryption_version => Err(TransitError::invalid(
                "requested version for encryption is less than the minimum encryption key version",
            )),
            v if v < s.min_available_version => Err(TransitError::invalid("invalid key version")),
            v => Ok(v),
        }
    }

    pub(crate) fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut stored = Stored {
            settings: self.settings.clone(),
            versions: self
                .versions
                .iter()
                .map(|(n, v)| {
                    (
                        *n,
                        StoredVersion {
                            key: B64.encode(v.material.as_slice()),
                            created_unix: v.created,
                        },
                    )
                })
                .collect(),
        };
        let bytes = Zeroizing::new(
            serde_json::to_vec(&stored).expect("a transit key always serializes to JSON"),
        );
        for version in stored.versions.values_mut() {
            zeroize::Zeroize::zeroize(&mut version.key);
        }
        bytes
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut stored: Stored = serde_json::from_slice(bytes).ok()?;
        let mut versions = BTreeMap::new();
        let mut bad = false;
        for (n, version) in &mut stored.versions {
            match B64.decode(version.key.as_bytes()) {
                Ok(raw) if raw.len() == stored.settings.kind.key_len() => {
                    versions.insert(
                        *n,
                        Version {
                            material: Zeroizing::new(raw),
                            created: version.created_unix,
                        },
                    );
                }
                Ok(mut raw) => {
                    zeroize::Zeroize::zeroize(&mut raw);
                    bad = true;
                }
                Err(_) => bad = true,
            }
            zeroize::Zeroize::zeroize(&mut version.key);
        }
        let latest = stored.settings.latest_version;
        if bad || latest == 0 || !versions.contains_key(&latest) {
            return None;
        }
        Some(Self {
            settings: stored.settings,
            versions,
        })
    }
}

/// `vault:v<version>:<base64>`, the ciphertext format Vault's clients parse.
pub(crate) fn format_ciphertext(version: u32, sealed: &[u8]) -> String {
    format!("vault:v{version}:{}", B64.encode(sealed))
}

/// The version and sealed bytes of a `vault:v<n>:...` ciphertext.
pub(crate) fn parse_ciphertext(text: &str) -> Result<(u32, Vec<u8>), TransitError> {
    let rest = text
        .strip_prefix("vault:v")
        .ok_or_else(|| TransitError::invalid("invalid ciphertext: no prefix"))?;
    let (version, body) = rest
        .split_once(':')
        .ok_or_else(|| TransitError::invalid("invalid ciphertext: wrong number of fields"))?;
    let version: u32 = version.parse().map_err(|_| {
        TransitError::invalid("invalid ciphertext: version number could not be decoded")
    })?;
    let sealed = B64
        .decode(body.as_bytes())
        .map_err(|_| TransitError::invalid("invalid ciphertext: could not decode base64"))?;
    // Vault's first keys were numbered from 0.
    Ok((version.max(1), sealed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [KeyType; 4] = [
        KeyType::Aes128Gcm96,
        KeyType::Aes256Gcm96,
        KeyType::ChaCha20Poly1305,
        KeyType::XChaCha20Poly1305,
    ];

    #[test]
    fn every_cipher_round_trips_and_detects_tampering() {
        for kind in ALL {
            let mut key = vec![0u8; kind.key_len()];
            fill_random(&mut key);
            let sealed = kind.seal(&key, b"attack at dawn", b"aad");
            assert_eq!(sealed.len(), kind.nonce_len() + 14 + 16, "{kind:?}");
            assert_eq!(
                kind.open(&key, &sealed, b"aad").unwrap().as_slice(),
                b"attack at dawn"
            );
            assert!(kind.open(&key, &sealed, b"other").is_none());
            for i in 0..sealed.len() {
                let mut bad = sealed.clone();
                bad[i] ^= 1;
                assert!(kind.open(&key, &bad, b"aad").is_none(), "{kind:?} flip {i}");
            }
            assert!(kind.open(&key, &sealed[..10], b"aad").is_none());
        }
    }

    #[test]
    fn names_parse_back_and_unsupported_types_say_so() {
        for kind in ALL {
            assert_eq!(KeyType::parse(kind.name()).unwrap(), kind);
        }
        let rsa = KeyType::parse("rsa-2048").unwrap_err().to_string();
        assert!(rsa.contains("not supported"), "{rsa}");
        assert_eq!(
            KeyType::parse("des").unwrap_err().to_string(),
            "unknown key type des"
        );
    }

    #[test]
    fn ciphertext_format_is_vaults() {
        let text = format_ciphertext(3, b"\x01\x02");
        assert_eq!(text, "vault:v3:AQI=");
        assert_eq!(parse_ciphertext(&text).unwrap(), (3, vec![1, 2]));
        assert_eq!(parse_ciphertext("vault:v0:AQI=").unwrap().0, 1);
        for (bad, why) in [
            ("v1:AQI=", "no prefix"),
            ("vault:v1", "wrong number of fields"),
            ("vault:vx:AQI=", "could not be decoded"),
            ("vault:v1:***", "could not decode base64"),
        ] {
            let err = parse_ciphertext(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
