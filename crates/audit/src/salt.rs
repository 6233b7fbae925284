//! The per-device HMAC salt and the `hmac-sha256:<hex>` hashes written instead of secrets.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::AuditError;

/// Prefix of every hashed value, as in Vault's audit logs.
pub const HASH_PREFIX: &str = "hmac-sha256:";

/// Secret key under which a device hashes secrets; the caller stores it (encrypted).
pub struct Salt(Zeroizing<Vec<u8>>);

impl Salt {
    /// Shortest accepted salt: shorter keys would make the hashes guessable offline.
    pub const MIN_LEN: usize = 16;
    const GENERATED_LEN: usize = 32;

    /// Wraps salt bytes loaded by the caller.
    pub fn new(bytes: Vec<u8>) -> Result<Salt, AuditError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < Self::MIN_LEN {
            return Err(AuditError::SaltTooShort { min: Self::MIN_LEN });
        }
        Ok(Salt(bytes))
    }

    /// A fresh random salt for a new device.
    pub fn generate() -> Result<Salt, AuditError> {
        let mut bytes = Zeroizing::new(vec![0u8; Self::GENERATED_LEN]);
        getrandom::fill(&mut bytes).map_err(AuditError::Random)?;
        Ok(Salt(bytes))
    }

    /// The raw salt, for the caller to persist encrypted.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// `hmac-sha256:<hex>` of `input`: what `sys/audit-hash` answers and what the log shows.
    pub fn hash(&self, input: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(input.as_bytes());
        format!("{HASH_PREFIX}{}", hex(&mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Salt(<redacted>)")
    }
}

/// Lowercase hex, as used for hashes and chain ids.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn known_answers() {
        // Computed independently: python3 -c "import hmac,hashlib;
        //   print(hmac.new(KEY, b'my-secret-password', hashlib.sha256).hexdigest())"
        let salt = Salt::new(KEY.to_vec()).unwrap();
        assert_eq!(
            salt.hash("my-secret-password"),
            "hmac-sha256:e44402c6285a5d066bc6f8f68a2f9c9325302b991804a507d8356778a44296e8"
        );
        assert_eq!(
            salt.hash(""),
            "hmac-sha256:796cd3078af14636753d26b3b5555422ff55a3e261cf847b48e95371b9bd0aa2"
        );
    }

    #[test]
    fn short_salts_are_refused_and_debug_is_redacted() {
        assert!(matches!(
            Salt::new(vec![1; 15]),
            Err(AuditError::SaltTooShort { .. })
        ));
        let salt = Salt::new(KEY.to_vec()).unwrap();
        assert_eq!(format!("{salt:?}"), "Salt(<redacted>)");
        let generated = Salt::generate().unwrap();
        assert_eq!(generated.as_bytes().len(), 32);
        assert_ne!(generated.as_bytes(), Salt::generate().unwrap().as_bytes());
    }
}
