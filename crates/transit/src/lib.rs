//! The transit engine: encryption as a service. Applications send
//! plaintext and get back `vault:v<n>:...` ciphertext (and the reverse)
//! without ever holding the key, which stays in the store, versioned:
//! rotating adds a version, old ciphertext still decrypts down to the key's
//! `min_decryption_version`, and `rewrap` moves it to the latest version
//! without showing the plaintext.
//!
//! Vault's transit semantics, for its symmetric key types (AES-GCM with a
//! 96-bit nonce, ChaCha20-Poly1305, XChaCha20-Poly1305), derived keys
//! (HKDF-SHA256 over the request's context), data keys, batches and export
//! of exportable keys. The API is transport-free: `docs/transit.md` maps
//! each Vault endpoint to the function serving it.
#![forbid(unsafe_code)]

mod engine;
mod error;
mod key;

#[cfg(test)]
mod tests;

pub use engine::{
    Batch, BatchResult, CiphertextItem, CreateKey, DataKey, DataKeyRequest, DecryptResult,
    EncryptItem, EncryptResult, Export, KeyConfig, KeyInfo, MountConfig, TransitEngine, Written,
};
pub use error::TransitError;
pub use key::KeyType;
