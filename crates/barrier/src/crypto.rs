//! The one envelope format for everything the barrier encrypts.
//!
//! `0x01 | term (u32, big-endian) | nonce (24 bytes) | ciphertext and tag`

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

pub(crate) const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
pub(crate) const KEY_LEN: usize = 32;

/// A 256-bit symmetric key, wiped from memory when dropped.
#[derive(Clone)]
pub(crate) struct SecretKey(pub(crate) Zeroizing<[u8; KEY_LEN]>);

impl SecretKey {
    pub(crate) fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut key[..]);
        Self(key)
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(array)))
    }
}

pub(crate) fn fill_random(buf: &mut [u8]) {
    // The OS generator failing means the kernel cannot give entropy at all:
    // nothing safe can be done but stop.
    getrandom::fill(buf).expect("the operating system's random generator failed");
}

/// Encrypts `plaintext` under `key`, binding it to `aad`.
pub(crate) fn seal(key: &SecretKey, term: u32, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher =
        XChaCha20Poly1305::new_from_slice(key.0.as_slice()).expect("keys are always 32 bytes");
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
    out.push(VERSION);
    out.extend_from_slice(&term.to_be_bytes());
    let bound = bound_data(&out, aad);
    out.extend_from_slice(&nonce);
    let body = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &bound,
            },
        )
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
    out.extend_from_slice(&body);
    out
}

/// The associated data: the version and term are authenticated too, so an
/// envelope cannot be relabelled to another term.
fn bound_data(version_and_term: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut bound = Vec::with_capacity(version_and_term.len() + aad.len());
    bound.extend_from_slice(version_and_term);
    bound.extend_from_slice(aad);
    bound
}

/// The term an envelope claims to be encrypted under, if it is well formed.
pub(crate) fn term_of(envelope: &[u8]) -> Option<u32> {
    if envelope.len() < HEADER_LEN + 16 || envelope[0] != VERSION {
        return None;
    }
    Some(u32::from_be_bytes(envelope[1..5].try_into().ok()?))
}

/// Decrypts an envelope; `None` if it was altered, bound to other `aad`, or
/// encrypted under another key.
pub(crate) fn open(key: &SecretKey, aad: &[u8], envelope: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    term_of(envelope)?;
    let nonce: [u8; NONCE_LEN] = envelope[5..HEADER_LEN].try_into().ok()?;
    let cipher =
        XChaCha20Poly1305::new_from_slice(key.0.as_slice()).expect("keys are always 32 bytes");
    let bound = bound_data(&envelope[..5], aad);
    cipher
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &envelope[HEADER_LEN..],
                aad: &bound,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = SecretKey::generate();
        let env = seal(&key, 7, b"path/a", b"hello");
        assert_eq!(term_of(&env), Some(7));
        assert_eq!(open(&key, b"path/a", &env).unwrap().as_slice(), b"hello");
        assert!(open(&key, b"path/b", &env).is_none());
        assert!(open(&SecretKey::generate(), b"path/a", &env).is_none());
        for i in 0..env.len() {
            let mut bad = env.clone();
            bad[i] ^= 0x01;
            assert!(
                open(&key, b"path/a", &bad).is_none(),
                "flip at {i} went unnoticed"
            );
        }
        assert!(open(&key, b"path/a", &env[..env.len() - 1]).is_none());
        assert!(open(&key, b"path/a", &[]).is_none());
    }

    #[test]
    fn nonces_differ() {
        let key = SecretKey::generate();
        assert_ne!(seal(&key, 1, b"k", b"same"), seal(&key, 1, b"k", b"same"));
    }
}
