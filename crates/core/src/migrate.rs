//! Copying a store from one backend to another at the ciphertext level: the
//! bytes under every key, unchanged, so the copy unseals with the same key.

use crate::CoreError;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use tresor_storage::{Backend, StorageError, Transaction};

/// The key whose presence makes a backend hold a store; copied last, so an
/// interrupted copy never looks like a complete store, and a destination
/// without it may be the rest of an interrupted copy.
const SEAL_CONFIG: &str = "core/seal-config";

/// Keys per listing page and per copying transaction.
const BATCH: usize = 500;

/// What a backend holds, summed up: the number of keys and a SHA-256 over
/// every key and value in key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub keys: u64,
    pub sha256: String,
}

/// What a copy did: what both sides hold, and how many keys an interrupted
/// earlier copy had already put there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copied {
    pub summary: Summary,
    pub resumed: u64,
}

/// Copies every key of `from` into `to`, then checks that both hold the
/// same keys and bytes. `to` must be empty or hold what an interrupted copy
/// of `from` left (no seal record, and only keys of `from` with the same
/// bytes), which are kept: a second run finishes the copy. Nothing in `to`
/// is ever overwritten: each write requires its key to be absent.
pub fn copy_store(from: &dyn Backend, to: &dyn Backend) -> Result<Copied, CoreError> {
    if from.get(SEAL_CONFIG)?.is_none() {
        return Err(CoreError::Migrate(format!(
            "the {} source holds no tresor store",
            from.kind()
        )));
    }
    if to.get(SEAL_CONFIG)?.is_some() {
        return Err(CoreError::Migrate(format!(
            "the {} destination is not empty: it already holds a complete store; migrate only into an empty store",
            to.kind()
        )));
    }
    let present = already_copied(from, to)?;
    let mut batch = Transaction::new();
    let mut pending = 0;
    walk(from, "", &mut |key| {
        if key == SEAL_CONFIG || present.contains(&key) {
            return Ok(());
        }
        let value = from.get(&key)?.ok_or_else(|| changed(&key))?;
        batch = std::mem::take(&mut batch)
            .expect(&key, None)
            .put(&key, &value);
        pending += 1;
        if pending == BATCH {
            pending = 0;
            apply(to, std::mem::take(&mut batch))?;
        }
        Ok(())
    })?;
    let seal = from.get(SEAL_CONFIG)?.ok_or_else(|| changed(SEAL_CONFIG))?;
    apply(to, batch.expect(SEAL_CONFIG, None).put(SEAL_CONFIG, &seal))?;
    let source = summarize(from)?;
    let copy = summarize(to)?;
    if source != copy {
        return Err(CoreError::Migrate(format!(
            "the copy does not match: source {} keys (sha256 {}), destination {} keys (sha256 {}); was the source written during the copy? Empty the destination and run again with every server stopped",
            source.keys, source.sha256, copy.keys, copy.sha256
        )));
    }
    Ok(Copied {
        summary: copy,
        resumed: present.len() as u64,
    })
}

/// The keys an interrupted copy of `from` left in `to`. Each must hold the
/// same bytes as in `from`; anything else means `to` is not such a copy,
/// and it is refused before anything is written.
fn already_copied(from: &dyn Backend, to: &dyn Backend) -> Result<HashSet<String>, CoreError> {
    let mut present = HashSet::new();
    walk(to, "", &mut |key| {
        let copied = to.get(&key)?.ok_or_else(|| {
            CoreError::Migrate(format!(
                "`{key}` vanished from the {} destination; stop everything writing to it and run again",
                to.kind()
            ))
        })?;
        if from.get(&key)?.as_deref() != Some(copied.as_slice()) {
            return Err(CoreError::Migrate(format!(
                "the {} destination is not empty and not an interrupted copy of this source: `{key}` holds other bytes than in the source, or is not in it; migrate only into an empty store",
                to.kind()
            )));
        }
        present.insert(key);
        Ok(())
    })?;
    Ok(present)
}

/// Counts and hashes everything `backend` holds.
pub fn summarize(backend: &dyn Backend) -> Result<Summary, CoreError> {
    let mut hash = Sha256::new();
    let mut keys = 0u64;
    walk(backend, "", &mut |key| {
        let value = backend.get(&key)?.ok_or_else(|| changed(&key))?;
        for part in [key.as_bytes(), value.as_slice()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        keys += 1;
        Ok(())
    })?;
    let sha256 = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Summary { keys, sha256 })
}

fn apply(to: &dyn Backend, txn: Transaction) -> Result<(), CoreError> {
    match to.commit(txn)? {
        tresor_storage::Outcome::Applied => Ok(()),
        tresor_storage::Outcome::ConditionFailed { key } => Err(CoreError::Migrate(format!(
            "`{key}` appeared in the destination during the copy; stop everything writing to it, empty it and run again"
        ))),
    }
}

/// Calls `visit` with every key under `prefix`, in key order, a page at a
/// time.
pub(crate) fn walk(
    backend: &dyn Backend,
    prefix: &str,
    visit: &mut dyn FnMut(String) -> Result<(), CoreError>,
) -> Result<(), CoreError> {
    let mut after: Option<String> = None;
    loop {
        let page = backend.list(prefix, after.as_deref(), Some(BATCH))?;
        for entry in &page {
            let key = format!("{prefix}{entry}");
            if entry.ends_with('/') {
                walk(backend, &key, visit)?;
            } else {
                visit(key)?;
            }
        }
        match page.last() {
            Some(last) if page.len() == BATCH => after = Some(last.clone()),
            _ => return Ok(()),
        }
    }
}

fn changed(key: &str) -> StorageError {
    StorageError::Backend(format!(
        "`{key}` vanished while being copied; stop every server using the source and run again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_storage::Memory;

    #[test]
    fn copies_every_byte_and_refuses_non_empty_destinations() {
        let from = Memory::new();
        from.put(SEAL_CONFIG, b"{}").unwrap();
        for i in 0..1234 {
            from.put(&format!("logical/m/k{i}"), &[i as u8; 40])
                .unwrap();
            from.put(&format!("sys/token/id/{i}"), b"").unwrap();
        }
        let to = Memory::new();
        let copied = copy_store(&from, &to).unwrap();
        assert_eq!(copied.summary.keys, 2 * 1234 + 1);
        assert_eq!(copied.resumed, 0);
        assert_eq!(summarize(&from).unwrap(), copied.summary);
        let again = copy_store(&from, &to).unwrap_err().to_string();
        assert!(again.contains("already holds a complete store"), "{again}");
        let nothing = copy_store(&Memory::new(), &Memory::new()).unwrap_err();
        assert!(nothing.to_string().contains("holds no tresor store"));
    }

    /// What an interrupted copy left: some keys, no seal record.
    fn interrupted_copy(from: &Memory, keys: usize) -> Memory {
        let to = Memory::new();
        let mut copied = 0;
        walk(from, "", &mut |key| {
            if key != SEAL_CONFIG && copied < keys {
                to.put(&key, &from.get(&key)?.unwrap())?;
                copied += 1;
            }
            Ok(())
        })
        .unwrap();
        to
    }

    #[test]
    fn an_interrupted_copy_is_finished_and_a_foreign_destination_refused() {
        let from = Memory::new();
        from.put(SEAL_CONFIG, b"{}").unwrap();
        for i in 0..1500 {
            from.put(&format!("logical/m/k{i:04}"), format!("v{i}").as_bytes())
                .unwrap();
        }
        let to = interrupted_copy(&from, 700);
        let copied = copy_store(&from, &to).unwrap();
        assert_eq!(copied.resumed, 700);
        assert_eq!(copied.summary, summarize(&from).unwrap());

        for foreign in [("logical/m/k0003", &b"other"[..]), ("logical/x", b"v")] {
            let to = interrupted_copy(&from, 10);
            to.put(foreign.0, foreign.1).unwrap();
            let before = summarize(&to).unwrap();
            let err = copy_store(&from, &to).unwrap_err().to_string();
            assert!(err.contains("not an interrupted copy"), "{err}");
            assert!(err.contains(foreign.0), "{err}");
            assert_eq!(summarize(&to).unwrap(), before, "a refusal writes nothing");
        }
    }
}
