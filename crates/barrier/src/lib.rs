//! The barrier: everything above it sees plaintext, everything below it only
//! ciphertext.
//!
//! Each value is encrypted with XChaCha20-Poly1305 under the active term of a
//! keyring, with its storage key as associated data, so a ciphertext moved to
//! another key no longer decrypts. The keyring is encrypted by a root key, and
//! the root key by an unseal key that is either split into Shamir shares or
//! kept in a key file. See `docs/storage-format.md` for the bytes.
#![forbid(unsafe_code)]

mod barrier;
mod cache;
mod crypto;
mod error;
mod keyring;
pub mod seal;
#[cfg(feature = "testing")]
pub mod testing;

pub use barrier::{Barrier, Entry, Fresh, KEYRING_RECHECK, KeyStatus, Stamp, WrapFor, WriteSet};
pub use cache::ParsedCache;
pub use error::BarrierError;
pub use seal::{Kms, KmsSeal, SealConfig, SealKind, UnsealKey};
