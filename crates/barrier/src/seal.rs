//! How the root key is sealed: the unseal key, its Shamir shares, key files,
//! and the plaintext record that says which of them a store uses.

use crate::BarrierError;
use crate::crypto::{KEY_LEN, SecretKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The version of the on-disk format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// How a store's unseal key is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SealKind {
    /// Split into `shares` Shamir shares, any `threshold` of which unseal.
    Shamir { shares: u8, threshold: u8 },
    /// Kept whole in a file (auto-unseal); `path` is where `init` wrote it.
    KeyFile { path: PathBuf },
}

impl SealKind {
    /// Checks share counts the way Vault does.
    pub fn validate(&self) -> Result<(), BarrierError> {
        if let SealKind::Shamir { shares, threshold } = *self {
            let problem = if shares == 0 {
                Some("key shares must be at least 1")
            } else if threshold == 0 || threshold > shares {
                Some("key threshold must be between 1 and the number of shares")
            } else if shares > 1 && threshold < 2 {
                Some("key threshold must be at least 2 when there are several shares")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(BarrierError::InvalidSeal(problem.into()));
            }
        }
        Ok(())
    }
}

/// The plaintext record at `core/seal-config`: all that can be known of a
/// store before it is unsealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfig {
    pub format: u32,
    /// Random, fixed at init; names the store in key-file defaults.
    pub store_id: String,
    /// How people hold the unseal key. With `kms`, these are recovery
    /// shares: they open the store when the KMS cannot.
    pub seal: SealKind,
    /// The unseal key wrapped by a KMS (auto-unseal), if the store has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<KmsSeal>,
    pub created_unix: u64,
}

impl SealConfig {
    /// The seal's name as `tresor status` and Vault's seal-status show it:
    /// `awskms`, `shamir` or `key-file`.
    pub fn type_name(&self) -> &'static str {
        match (&self.kms, &self.seal) {
            (Some(KmsSeal::Awskms { .. }), _) => "awskms",
            (None, SealKind::Shamir { .. }) => "shamir",
            (None, SealKind::KeyFile { .. }) => "key-file",
        }
    }
}

/// The unseal key as a KMS wrapped it, and which key of which KMS did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum KmsSeal {
    /// AWS KMS (or a service speaking its API, such as a local test one).
    Awskms {
        key_id: String,
        region: String,
        /// A custom endpoint; none: the region's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        /// Base64 of the ciphertext blob KMS returned for the unseal key.
        wrapped_key: String,
    },
}

impl KmsSeal {
    /// The ciphertext blob of the unseal key.
    pub fn wrapped_key(&self) -> Result<Vec<u8>, BarrierError> {
        let KmsSeal::Awskms { wrapped_key, .. } = self;
        B64.decode(wrapped_key.as_bytes()).map_err(|_| {
            BarrierError::BadSealConfig("the KMS-wrapped unseal key is not base64".into())
        })
    }
}

/// A key management service that wraps and unwraps a store's unseal key.
/// `store_id` is bound to the ciphertext (AWS KMS: as encryption context),
/// so one store's wrapped key does not open another.
pub trait Kms: Send + Sync {
    fn wrap(&self, plaintext: &[u8], store_id: &str) -> Result<Vec<u8>, BarrierError>;
    fn unwrap(&self, ciphertext: &[u8], store_id: &str)
    -> Result<Zeroizing<Vec<u8>>, BarrierError>;
    /// The record that says which key wrapped `ciphertext`.
    fn record(&self, ciphertext: &[u8]) -> KmsSeal;
}

/// The key that opens the root key.
#[derive(Clone)]
pub struct UnsealKey(pub(crate) SecretKey);

impl std::fmt::Debug for UnsealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsealKey(<redacted>)")
    }
}

impl UnsealKey {
    pub fn generate() -> Self {
        Self(SecretKey::generate())
    }

    /// The key wrapped by `kms`, and the record to store for it.
    pub fn wrap_with(&self, kms: &dyn Kms, store_id: &str) -> Result<KmsSeal, BarrierError> {
        let blob = kms.wrap(self.0.0.as_slice(), store_id)?;
        Ok(kms.record(&blob))
    }

    /// The key a KMS wrapped for the store `store_id`.
    pub fn unwrap_with(
        kms: &dyn Kms,
        sealed: &KmsSeal,
        store_id: &str,
    ) -> Result<Self, BarrierError> {
        let raw = kms.unwrap(&sealed.wrapped_key()?, store_id)?;
        SecretKey::from_slice(&raw)
            .map(Self)
            .ok_or_else(|| BarrierError::Kms("the KMS returned a key of the wrong length".into()))
    }

    /// Splits the key into `shares` shares, any `threshold` of which rebuild it.
    pub fn split(&self, shares: u8, threshold: u8) -> Result<Vec<Share>, BarrierError> {
        SealKind::Shamir { shares, threshold }.validate()?;
        if shares == 1 {
            let mut one = Zeroizing::new(vec![1u8]);
            one.extend_from_slice(self.0.0.as_slice());
            return Ok(vec![Share(one)]);
        }
        let rng = rand_core::UnwrapErr(getrandom::SysRng);
        let parts = vsss_rs::Gf256::split_bytes(
            usize::from(threshold),
            usize::from(shares),
            self.0.0.as_slice(),
            rng,
        )
        .map_err(|e| BarrierError::InvalidSeal(format!("{e:?}")))?;
        Ok(parts
            .into_iter()
            .map(|p| Share(Zeroizing::new(p)))
            .collect())
    }

    /// Rebuilds the key from shares. Wrong shares give a wrong key, which
    /// unsealing then refuses.
    pub fn combine(shares: &[Share]) -> Result<Self, BarrierError> {
        let first = shares
            .first()
            .ok_or_else(|| BarrierError::BadShare("no shares given".into()))?;
        if shares.iter().any(|s| s.0.len() != KEY_LEN + 1) {
            return Err(BarrierError::BadShare(
                "a share has the wrong length; copy it again from `operator init`'s output".into(),
            ));
        }
        let ids: std::collections::BTreeSet<u8> = shares.iter().map(|s| s.0[0]).collect();
        if ids.len() != shares.len() {
            return Err(BarrierError::BadShare(
                "the same share was given twice".into(),
            ));
        }
        if shares.len() == 1 {
            return SecretKey::from_slice(&first.0[1..])
                .map(Self)
                .ok_or_else(|| BarrierError::BadShare("malformed share".into()));
        }
        let parts: Vec<Vec<u8>> = shares.iter().map(|s| s.0.to_vec()).collect();
        let combined = vsss_rs::Gf256::combine_bytes(&parts)
            .map(Zeroizing::new)
            .map_err(|e| BarrierError::BadShare(format!("{e:?}")));
        for mut part in parts {
            zeroize::Zeroize::zeroize(&mut part);
        }
        SecretKey::from_slice(&combined?)
            .map(Self)
            .ok_or_else(|| BarrierError::BadShare("malformed shares".into()))
    }

    /// Reads a key file written by [`UnsealKey::write_key_file`], refusing one
    /// that other users could read.
    pub fn read_key_file(path: &Path) -> Result<Self, BarrierError> {
        let problem = |problem: String| BarrierError::KeyFile {
            path: path.into(),
            problem,
        };
        let meta = std::fs::metadata(path).map_err(|e| problem(e.to_string()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(problem(format!(
                "its permissions are {mode:04o}, so other users may read it; run `chmod 600 {}`",
                path.display()
            )));
        }
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?);
        let raw = Zeroizing::new(
            B64.decode(text.trim().as_bytes())
                .map_err(|_| problem("it does not hold a base64 key".into()))?,
        );
        SecretKey::from_slice(&raw)
            .map(Self)
            .ok_or_else(|| problem(format!("it must hold a {KEY_LEN}-byte key")))
    }

    /// Writes the key to a new file, readable by its owner only. Never
    /// replaces an existing file.
    pub fn write_key_file(&self, path: &Path) -> Result<(), BarrierError> {
        let problem = |problem: String| BarrierError::KeyFile {
            path: path.into(),
            problem,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| problem(e.to_string()))?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    problem("it already exists; choose another path or move it away".into())
                }
                _ => problem(e.to_string()),
            })?;
        let mut text = Zeroizing::new(B64.encode(self.0.0.as_slice()));
        text.push('\n');
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| problem(e.to_string()))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent)
                .and_then(|dir| dir.sync_all())
                .map_err(|e| problem(e.to_string()))?;
        }
        Ok(())
    }
}

/// One Shamir share: an identifier byte, then the share of each key byte.
#[derive(Clone)]
pub struct Share(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Share(<redacted>)")
    }
}

impl Share {
    /// Parses a share given as hex or base64, as `operator init` prints both.
    pub fn parse(text: &str) -> Result<Self, BarrierError> {
        let text = text.trim();
        let bytes = decode_hex(text)
            .or_else(|| B64.decode(text.as_bytes()).ok())
            .ok_or_else(|| {
                BarrierError::BadShare(
                    "a share must be the hex or base64 text `operator init` printed".into(),
                )
            })?;
        Ok(Self(Zeroizing::new(bytes)))
    }

    /// Whether two shares are the same, compared in constant time.
    pub fn same_as(&self, other: &Share) -> bool {
        use subtle::ConstantTimeEq;
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }

    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.0.as_slice()))
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &UnsealKey, b: &UnsealKey) -> bool {
        a.0.0.as_slice() == b.0.0.as_slice()
    }

    #[test]
    fn any_threshold_of_shares_rebuild_the_key() {
        let key = UnsealKey::generate();
        let shares = key.split(5, 3).unwrap();
        assert_eq!(shares.len(), 5);
        for combo in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let picked: Vec<Share> = combo.iter().map(|&i| shares[i].clone()).collect();
            assert!(same(&UnsealKey::combine(&picked).unwrap(), &key));
        }
        let two = &shares[..2];
        assert!(!same(&UnsealKey::combine(two).unwrap(), &key));
    }

    #[test]
    fn shares_round_trip_through_text() {
        let key = UnsealKey::generate();
        let shares = key.split(3, 2).unwrap();
        let hex = Share::parse(&shares[0].to_hex()).unwrap();
        let b64 = Share::parse(&shares[2].to_base64()).unwrap();
        assert!(same(&UnsealKey::combine(&[hex, b64]).unwrap(), &key));
        assert!(Share::parse("not a share!").is_err());
    }

    #[test]
    fn duplicate_or_malformed_shares_are_refused() {
        let shares = UnsealKey::generate().split(3, 2).unwrap();
        let dup = [shares[0].clone(), shares[0].clone()];
        assert!(matches!(
            UnsealKey::combine(&dup),
            Err(BarrierError::BadShare(_))
        ));
        let short = Share::parse("abcd").unwrap();
        assert!(UnsealKey::combine(&[short, shares[1].clone()]).is_err());
        assert!(UnsealKey::combine(&[]).is_err());
    }

    #[test]
    fn a_single_share_is_the_key() {
        let key = UnsealKey::generate();
        let shares = key.split(1, 1).unwrap();
        assert!(same(&UnsealKey::combine(&shares).unwrap(), &key));
    }

    #[test]
    fn seal_settings_are_checked() {
        for (n, t) in [(0, 0), (3, 4), (5, 1), (2, 0)] {
            assert!(UnsealKey::generate().split(n, t).is_err(), "{n}/{t}");
        }
    }

    #[test]
    fn key_files_are_private_and_never_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/store.key");
        let key = UnsealKey::generate();
        key.write_key_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(same(&UnsealKey::read_key_file(&path).unwrap(), &key));
        assert!(key.write_key_file(&path).is_err());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = UnsealKey::read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");

        let junk = dir.path().join("junk.key");
        std::fs::write(&junk, "not base64 ***").unwrap();
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(UnsealKey::read_key_file(&junk).is_err());
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = UnsealKey::generate();
        assert_eq!(format!("{key:?}"), "UnsealKey(<redacted>)");
        let share = &key.split(3, 2).unwrap()[0];
        assert_eq!(format!("{share:?}"), "Share(<redacted>)");
    }
}
