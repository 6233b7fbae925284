//! The two secrets a caller handles: tokens and accessors.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

/// What every generated token starts with (`tv` for tresor, `s` for service),
/// as the project's scanner expects.
pub const TOKEN_PREFIX: &str = "tvs.";

/// Random bytes behind a generated token.
const TOKEN_BYTES: usize = 32;

/// Length of an accessor, in alphanumeric characters (as Vault's).
const ACCESSOR_LEN: usize = 24;

/// A client token. The text is wiped from memory when dropped and never
/// printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Zeroizing<String>);

impl Token {
    /// Wraps a token received from a client (any text: generated tokens and
    /// chosen root tokens such as a dev server's `root`).
    pub fn new(text: impl Into<String>) -> Self {
        Self(Zeroizing::new(text.into()))
    }

    /// A fresh token: the prefix and 32 bytes from the OS generator.
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        getrandom::fill(bytes.as_mut_slice())?;
        let mut text = Zeroizing::new(String::with_capacity(TOKEN_PREFIX.len() + 43));
        text.push_str(TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes.as_slice(), &mut text);
        Ok(Self(text))
    }

    /// The token's text, to hand to the client once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A token's accessor: names a token for lookup, renewal and revocation
/// without being able to authenticate. Still kept out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Accessor(Zeroizing<String>);

impl Accessor {
    pub fn new(text: impl Into<String>) -> Self {
        Self(Zeroizing::new(text.into()))
    }

    /// 24 characters drawn uniformly from `[A-Za-z0-9]`.
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        const ALPHABET: &[u8; 62] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut text = Zeroizing::new(String::with_capacity(ACCESSOR_LEN));
        let mut pool = Zeroizing::new([0u8; 64]);
        while text.len() < ACCESSOR_LEN {
            getrandom::fill(pool.as_mut_slice())?;
            // Rejection sampling: 248 = 4 * 62, so every kept byte is uniform.
            for b in pool.iter().filter(|b| **b < 248) {
                if text.len() == ACCESSOR_LEN {
                    break;
                }
                text.push(char::from(ALPHABET[usize::from(*b) % 62]));
            }
        }
        Ok(Self(text))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Accessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Accessor(<redacted>)")
    }
}
