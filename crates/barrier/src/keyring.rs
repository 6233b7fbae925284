//! The numbered data keys ("terms"). New values are always encrypted under
//! the newest term; older terms stay to decrypt what they encrypted.

use crate::crypto::SecretKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

pub(crate) struct Term {
    pub(crate) key: SecretKey,
    pub(crate) installed: SystemTime,
}

pub(crate) struct Keyring {
    pub(crate) terms: BTreeMap<u32, Term>,
}

#[derive(Serialize, Deserialize)]
struct StoredTerm {
    term: u32,
    key: String,
    installed_unix_ns: u128,
}

#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    terms: Vec<StoredTerm>,
}

impl Keyring {
    pub(crate) fn first() -> Self {
        let mut terms = BTreeMap::new();
        terms.insert(
            1,
            Term {
                key: SecretKey::generate(),
                installed: SystemTime::now(),
            },
        );
        Self { terms }
    }

    /// The newest term, which encrypts every new value.
    pub(crate) fn active(&self) -> (u32, &Term) {
        let (n, term) = self
            .terms
            .last_key_value()
            .expect("a keyring always holds at least one term");
        (*n, term)
    }

    /// The keyring with one more term.
    pub(crate) fn rotated(&self) -> Self {
        let mut terms: BTreeMap<u32, Term> = self
            .terms
            .iter()
            .map(|(n, t)| {
                (
                    *n,
                    Term {
                        key: t.key.clone(),
                        installed: t.installed,
                    },
                )
            })
            .collect();
        let next = self.active().0 + 1;
        terms.insert(
            next,
            Term {
                key: SecretKey::generate(),
                installed: SystemTime::now(),
            },
        );
        Self { terms }
    }

    pub(crate) fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let stored = StoredKeyring {
            terms: self
                .terms
                .iter()
                .map(|(n, t)| StoredTerm {
                    term: *n,
                    key: B64.encode(t.key.0.as_slice()),
                    installed_unix_ns: t
                        .installed
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_nanos(),
                })
                .collect(),
        };
        let bytes = Zeroizing::new(
            serde_json::to_vec(&stored).expect("a keyring always serializes to JSON"),
        );
        for mut term in stored.terms {
            zeroize::Zeroize::zeroize(&mut term.key);
        }
        bytes
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut stored: StoredKeyring = serde_json::from_slice(bytes).ok()?;
        let mut terms = BTreeMap::new();
        for term in &mut stored.terms {
            let raw = Zeroizing::new(B64.decode(term.key.as_bytes()).ok()?);
            zeroize::Zeroize::zeroize(&mut term.key);
            let installed =
                UNIX_EPOCH + Duration::from_nanos(u64::try_from(term.installed_unix_ns).ok()?);
            terms.insert(
                term.term,
                Term {
                    key: SecretKey::from_slice(&raw)?,
                    installed,
                },
            );
        }
        (!terms.is_empty()).then_some(Self { terms })
    }
}
