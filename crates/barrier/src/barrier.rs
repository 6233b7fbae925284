use crate::BarrierError;
use crate::crypto::{self, SecretKey};
use crate::keyring::Keyring;
use crate::seal::{FORMAT_VERSION, KmsSeal, SealConfig, SealKind, UnsealKey};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tresor_storage::{Backend, Op, Outcome, Transaction};
use zeroize::Zeroizing;

const SEAL_CONFIG: &str = "core/seal-config";
const ROOT_KEY: &str = "core/root-key";
const KEYRING: &str = "core/keyring";
const RESERVED: [&str; 3] = [SEAL_CONFIG, ROOT_KEY, KEYRING];

/// What a storage key held when it was read: the exact stored bytes, used to
/// make a later write conditional on nothing having changed since.
#[derive(Clone, PartialEq, Eq)]
pub struct Stamp(Vec<u8>);

impl Stamp {
    /// Whether `stored` (bytes read straight from storage) is what this stamp
    /// saw: lets a cache skip decrypting a record that has not changed.
    pub fn matches(&self, stored: &[u8]) -> bool {
        self.0 == stored
    }
}

impl std::fmt::Debug for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stamp({} bytes)", self.0.len())
    }
}

/// A decrypted value and the stamp of what was stored.
pub struct Entry {
    pub value: Zeroizing<Vec<u8>>,
    pub stamp: Stamp,
}

/// What [`Barrier::get_unless`] found.
pub enum Fresh {
    /// Nothing is stored under the key.
    Missing,
    /// The stored bytes are those the caller's stamp saw: nothing decrypted.
    Unchanged,
    /// The stored bytes changed: decrypted.
    Changed(Entry),
}

/// Plaintext writes, applied together if every expectation holds.
#[derive(Default)]
pub struct WriteSet {
    expect: Vec<(String, Option<Stamp>)>,
    puts: Vec<(String, Zeroizing<Vec<u8>>)>,
    deletes: Vec<String>,
}

impl WriteSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `key` to be as it was read (`None`: absent).
    pub fn expect(&mut self, key: &str, stamp: Option<&Stamp>) -> &mut Self {
        self.expect.push((key.to_owned(), stamp.cloned()));
        self
    }

    pub fn put(&mut self, key: &str, value: Zeroizing<Vec<u8>>) -> &mut Self {
        self.puts.push((key.to_owned(), value));
        self
    }

    pub fn delete(&mut self, key: &str) -> &mut Self {
        self.deletes.push(key.to_owned());
        self
    }
}

/// The term that encrypts new values, and when it was installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: SystemTime,
    pub terms: usize,
    /// Values this process encrypted since it unsealed the store (Vault's
    /// `encryptions` counts them for the active term; a count kept only in
    /// memory cannot see other servers' or earlier runs').
    pub encryptions: u64,
}

struct Unsealed {
    root: SecretKey,
    keyring: Keyring,
    keyring_stamp: Stamp,
}

/// Makes a store's KMS seal record from its id (wrapping its unseal key).
pub type WrapFor<'a> = dyn Fn(&str) -> Result<KmsSeal, BarrierError> + 'a;

/// Longest a barrier keeps encrypting new values under its active term after
/// another barrier on the same storage (another server) rotated the keyring.
pub const KEYRING_RECHECK: Duration = Duration::from_secs(1);

/// Encrypts on the way down, decrypts and verifies on the way up.
pub struct Barrier {
    storage: Arc<dyn Backend>,
    state: RwLock<Option<Unsealed>>,
    /// When the stored keyring was last compared with the one in memory.
    keyring_checked: Mutex<Option<Instant>>,
    recheck: Duration,
    /// Values encrypted since this barrier was unsealed.
    encryptions: AtomicU64,
}

impl Barrier {
    /// A sealed barrier over `storage`.
    pub fn new(storage: Arc<dyn Backend>) -> Self {
        Self {
            storage,
            state: RwLock::new(None),
            keyring_checked: Mutex::new(None),
            recheck: KEYRING_RECHECK,
            encryptions: AtomicU64::new(0),
        }
    }

    /// Sets how often writes check for a keyring rotated elsewhere
    /// (default [`KEYRING_RECHECK`]).
    pub fn with_keyring_recheck(mut self, every: Duration) -> Self {
        self.recheck = every;
        self
    }

    pub fn storage(&self) -> &Arc<dyn Backend> {
        &self.storage
    }

    /// The store's seal record, or `None` for an uninitialized store.
    pub fn seal_config(&self) -> Result<Option<SealConfig>, BarrierError> {
        let Some(bytes) = self.storage.get(SEAL_CONFIG)? else {
            return Ok(None);
        };
        let config: SealConfig = serde_json::from_slice(&bytes)
            .map_err(|e| BarrierError::BadSealConfig(e.to_string()))?;
        if config.format != FORMAT_VERSION {
            return Err(BarrierError::BadSealConfig(format!(
                "format {} is not one this tresor reads ({FORMAT_VERSION}); use a matching tresor version",
                config.format
            )));
        }
        Ok(Some(config))
    }

    /// Creates the root key and first keyring, sealed by `unseal_key`, and
    /// leaves the barrier unsealed. `initial` values are encrypted and written
    /// in the same transaction, so a store never exists without them. Fails
    /// on a store that is already initialized.
    pub fn initialize(
        &self,
        seal: SealKind,
        unseal_key: &UnsealKey,
        initial: &[(&str, &[u8])],
    ) -> Result<SealConfig, BarrierError> {
        self.initialize_with_kms(seal, None, unseal_key, initial)
    }

    /// [`Barrier::initialize`], with the unseal key also wrapped by a KMS:
    /// `kms` makes the record of it from the store's id.
    pub fn initialize_with_kms(
        &self,
        seal: SealKind,
        kms: Option<&WrapFor<'_>>,
        unseal_key: &UnsealKey,
        initial: &[(&str, &[u8])],
    ) -> Result<SealConfig, BarrierError> {
        seal.validate()?;
        let store_id = random_id();
        let config = SealConfig {
            format: FORMAT_VERSION,
            kms: kms.map(|wrap| wrap(&store_id)).transpose()?,
            store_id,
            seal,
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        };
        let root = SecretKey::generate();
        let keyring = Keyring::first();
        let sealed_root = crypto::seal(&unseal_key.0, 0, ROOT_KEY.as_bytes(), root.0.as_slice());
        let sealed_keyring = crypto::seal(&root, 0, KEYRING.as_bytes(), &keyring.to_bytes());
        let config_bytes = serde_json::to_vec(&config).expect("a seal config serializes");
        let mut txn = Transaction::new()
            .expect(SEAL_CONFIG, None)
            .put(SEAL_CONFIG, &config_bytes)
            .put(ROOT_KEY, &sealed_root)
            .put(KEYRING, &sealed_keyring);
        let (term, active) = keyring.active();
        for (key, value) in initial {
            check_key(key)?;
            txn = txn.put(key, &crypto::seal(&active.key, term, key.as_bytes(), value));
        }
        if !self.storage.commit(txn)?.applied() {
            return Err(BarrierError::AlreadyInitialized);
        }
        *self.write_state() = Some(Unsealed {
            root,
            keyring,
            keyring_stamp: Stamp(sealed_keyring),
        });
        Ok(config)
    }

    /// Opens the root key and keyring. A wrong key changes nothing.
    pub fn unseal(&self, unseal_key: &UnsealKey) -> Result<(), BarrierError> {
        if self.seal_config()?.is_none() {
            return Err(BarrierError::NotInitialized);
        }
        let sealed_root = self
            .storage
            .get(ROOT_KEY)?
            .ok_or_else(|| integrity(ROOT_KEY))?;
        let root_bytes = crypto::open(&unseal_key.0, ROOT_KEY.as_bytes(), &sealed_root)
            .ok_or(BarrierError::WrongUnsealKey)?;
        let root = SecretKey::from_slice(&root_bytes).ok_or_else(|| integrity(ROOT_KEY))?;
        let unsealed = load_keyring(&*self.storage, root)?;
        *self.write_state() = Some(unsealed);
        Ok(())
    }

    /// Seals the root key under another unseal key and seal record, in one
    /// transaction that also requires both records to be as `old` found
    /// them: the keyring and every value stay as they are (nothing is
    /// re-encrypted), and the old key no longer opens the store. A wrong
    /// `old` key, or a store changed meanwhile, changes nothing.
    pub fn reseal(
        &self,
        old: &UnsealKey,
        seal: SealKind,
        kms: Option<KmsSeal>,
        new: &UnsealKey,
    ) -> Result<SealConfig, BarrierError> {
        seal.validate()?;
        let config_bytes = self
            .storage
            .get(SEAL_CONFIG)?
            .ok_or(BarrierError::NotInitialized)?;
        let current = self.seal_config()?.ok_or(BarrierError::NotInitialized)?;
        let sealed_root = self
            .storage
            .get(ROOT_KEY)?
            .ok_or_else(|| integrity(ROOT_KEY))?;
        let root = crypto::open(&old.0, ROOT_KEY.as_bytes(), &sealed_root)
            .ok_or(BarrierError::WrongUnsealKey)?;
        let resealed = crypto::seal(&new.0, 0, ROOT_KEY.as_bytes(), root.as_slice());
        let config = SealConfig {
            seal,
            kms,
            ..current
        };
        let new_bytes = serde_json::to_vec(&config).expect("a seal config serializes");
        let txn = Transaction::new()
            .expect(SEAL_CONFIG, Some(&config_bytes))
            .expect(ROOT_KEY, Some(&sealed_root))
            .put(SEAL_CONFIG, &new_bytes)
            .put(ROOT_KEY, &resealed);
        if !self.storage.commit(txn)?.applied() {
            return Err(BarrierError::InvalidSeal(
                "the store's seal changed at the same time; run the migration again".into(),
            ));
        }
        Ok(config)
    }

    /// Forgets every key; reads and writes fail until the next unseal.
    pub fn seal(&self) {
        *self.write_state() = None;
    }

    pub fn is_sealed(&self) -> bool {
        self.read_state().is_none()
    }

    /// The storage's generation (see [`tresor_storage::Backend::generation`]).
    pub fn generation(&self) -> Option<u64> {
        self.storage.generation()
    }

    /// Reads and decrypts `key`.
    pub fn get(&self, key: &str) -> Result<Option<Entry>, BarrierError> {
        check_key(key)?;
        let Some(stored) = self.storage.get(key)? else {
            return Ok(None);
        };
        let value = self.decrypt(key, &stored)?;
        Ok(Some(Entry {
            value,
            stamp: Stamp(stored),
        }))
    }

    /// Reads `key`, decrypting it only if the stored bytes differ from what
    /// `known` saw: a caller that keeps parsed records can check that one is
    /// still current (written by no one, on any server sharing the store)
    /// for the price of a storage read.
    pub fn get_unless(&self, key: &str, known: &Stamp) -> Result<Fresh, BarrierError> {
        check_key(key)?;
        if self.is_sealed() {
            return Err(BarrierError::Sealed);
        }
        let Some(stored) = self.storage.get(key)? else {
            return Ok(Fresh::Missing);
        };
        if known.matches(&stored) {
            return Ok(Fresh::Unchanged);
        }
        let value = self.decrypt(key, &stored)?;
        Ok(Fresh::Changed(Entry {
            value,
            stamp: Stamp(stored),
        }))
    }

    /// Lists the entries under `prefix` (see [`Backend::list`]).
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, BarrierError> {
        if self.is_sealed() {
            return Err(BarrierError::Sealed);
        }
        let mut entries = self.storage.list(prefix, after, limit)?;
        entries.retain(|e| !RESERVED.contains(&format!("{prefix}{e}").as_str()));
        Ok(entries)
    }

    /// Encrypts and applies `writes` atomically.
    pub fn commit(&self, writes: WriteSet) -> Result<Outcome, BarrierError> {
        self.follow_rotation()?;
        let state = self.read_state();
        let unsealed = state.as_ref().ok_or(BarrierError::Sealed)?;
        let (term, active) = unsealed.keyring.active();
        let mut txn = Transaction::new();
        for (key, stamp) in &writes.expect {
            check_key(key)?;
            txn = txn.expect(key, stamp.as_ref().map(|s| s.0.as_slice()));
        }
        for (key, value) in &writes.puts {
            check_key(key)?;
            let envelope = crypto::seal(&active.key, term, key.as_bytes(), value);
            txn.push(Op::Put {
                key: key.clone(),
                value: envelope,
            });
        }
        for key in &writes.deletes {
            check_key(key)?;
            txn.push(Op::Delete { key: key.clone() });
        }
        drop(state);
        self.encryptions
            .fetch_add(writes.puts.len() as u64, Ordering::Relaxed);
        Ok(self.storage.commit(txn)?)
    }

    /// Adds a keyring term that encrypts every value written from now on.
    /// Existing values stay as they are, readable under their own term.
    pub fn rotate(&self) -> Result<KeyStatus, BarrierError> {
        let mut state = self.write_state();
        let unsealed = state.as_mut().ok_or(BarrierError::Sealed)?;
        let rotated = unsealed.keyring.rotated();
        let sealed = crypto::seal(&unsealed.root, 0, KEYRING.as_bytes(), &rotated.to_bytes());
        let txn = Transaction::new()
            .expect(KEYRING, Some(&unsealed.keyring_stamp.0))
            .put(KEYRING, &sealed);
        if !self.storage.commit(txn)?.applied() {
            // Another server rotated first: adopt its keyring instead.
            let root = unsealed.root.clone();
            *unsealed = load_keyring(&*self.storage, root)?;
        } else {
            unsealed.keyring = rotated;
            unsealed.keyring_stamp = Stamp(sealed);
        }
        // A new term has encrypted nothing yet.
        self.encryptions.store(0, Ordering::Relaxed);
        Ok(status(
            &unsealed.keyring,
            self.encryptions.load(Ordering::Relaxed),
        ))
    }

    pub fn key_status(&self) -> Result<KeyStatus, BarrierError> {
        let state = self.read_state();
        let unsealed = state.as_ref().ok_or(BarrierError::Sealed)?;
        Ok(status(
            &unsealed.keyring,
            self.encryptions.load(Ordering::Relaxed),
        ))
    }

    fn decrypt(&self, key: &str, stored: &[u8]) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        let term = crypto::term_of(stored).ok_or_else(|| integrity(key))?;
        {
            let state = self.read_state();
            let unsealed = state.as_ref().ok_or(BarrierError::Sealed)?;
            if let Some(found) = unsealed.keyring.terms.get(&term) {
                return crypto::open(&found.key, key.as_bytes(), stored)
                    .ok_or_else(|| integrity(key));
            }
        }
        // A term this process has not seen: another server may have rotated.
        self.reload_keyring()?;
        let state = self.read_state();
        let unsealed = state.as_ref().ok_or(BarrierError::Sealed)?;
        let found = unsealed
            .keyring
            .terms
            .get(&term)
            .ok_or_else(|| integrity(key))?;
        crypto::open(&found.key, key.as_bytes(), stored).ok_or_else(|| integrity(key))
    }

    /// Adopts a keyring another barrier on the same storage rotated, looking
    /// at most once per `recheck`: one storage read, no decryption unless it
    /// changed.
    fn follow_rotation(&self) -> Result<(), BarrierError> {
        {
            let mut checked = self
                .keyring_checked
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if checked.is_some_and(|at| at.elapsed() < self.recheck) {
                return Ok(());
            }
            *checked = Some(Instant::now());
        }
        let stored = self.storage.get(KEYRING)?;
        let changed = {
            let state = self.read_state();
            let unsealed = state.as_ref().ok_or(BarrierError::Sealed)?;
            stored.as_deref() != Some(unsealed.keyring_stamp.0.as_slice())
        };
        if changed {
            self.reload_keyring()?;
        }
        Ok(())
    }

    fn reload_keyring(&self) -> Result<(), BarrierError> {
        let mut state = self.write_state();
        let unsealed = state.as_mut().ok_or(BarrierError::Sealed)?;
        let root = unsealed.root.clone();
        *unsealed = load_keyring(&*self.storage, root)?;
        Ok(())
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, Option<Unsealed>> {
        // The state is replaced whole, never left half-written: poison is harmless.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, Option<Unsealed>> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn load_keyring(storage: &dyn Backend, root: SecretKey) -> Result<Unsealed, BarrierError> {
    let sealed = storage.get(KEYRING)?.ok_or_else(|| integrity(KEYRING))?;
    let bytes =
        crypto::open(&root, KEYRING.as_bytes(), &sealed).ok_or_else(|| integrity(KEYRING))?;
    let keyring = Keyring::from_bytes(&bytes).ok_or_else(|| integrity(KEYRING))?;
    Ok(Unsealed {
        root,
        keyring,
        keyring_stamp: Stamp(sealed),
    })
}

fn status(keyring: &Keyring, encryptions: u64) -> KeyStatus {
    let (term, active) = keyring.active();
    KeyStatus {
        term,
        install_time: active.installed,
        terms: keyring.terms.len(),
        encryptions,
    }
}

fn check_key(key: &str) -> Result<(), BarrierError> {
    if RESERVED.contains(&key) {
        return Err(BarrierError::Reserved(key.to_owned()));
    }
    Ok(())
}

fn integrity(key: &str) -> BarrierError {
    BarrierError::Integrity {
        key: key.to_owned(),
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    crypto::fill_random(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_storage::Memory;

    fn fresh() -> (Arc<dyn Backend>, Barrier, UnsealKey) {
        let storage: Arc<dyn Backend> = Arc::new(Memory::new());
        let barrier = Barrier::new(Arc::clone(&storage));
        let key = UnsealKey::generate();
        barrier
            .initialize(
                SealKind::Shamir {
                    shares: 5,
                    threshold: 3,
                },
                &key,
                &[("first", b"1")],
            )
            .unwrap();
        assert_eq!(
            barrier.get("first").unwrap().unwrap().value.as_slice(),
            b"1"
        );
        (storage, barrier, key)
    }

    fn put(barrier: &Barrier, key: &str, value: &[u8]) {
        let mut w = WriteSet::new();
        w.put(key, Zeroizing::new(value.to_vec()));
        assert!(barrier.commit(w).unwrap().applied());
    }

    fn read(barrier: &Barrier, key: &str) -> Result<Option<Vec<u8>>, BarrierError> {
        Ok(barrier.get(key)?.map(|e| e.value.to_vec()))
    }

    #[test]
    fn values_are_encrypted_at_rest_and_read_back() {
        let (storage, barrier, _) = fresh();
        put(&barrier, "logical/x/secret", b"hunter2-very-secret");
        let raw = storage.get("logical/x/secret").unwrap().unwrap();
        assert!(!raw.windows(6).any(|w| w == b"hunter"));
        assert_eq!(
            read(&barrier, "logical/x/secret").unwrap().unwrap(),
            b"hunter2-very-secret"
        );
        assert_eq!(read(&barrier, "logical/x/none").unwrap(), None);
    }

    #[test]
    fn get_unless_decrypts_only_what_changed_and_never_while_sealed() {
        let (_, barrier, _) = fresh();
        put(&barrier, "t", b"one");
        let seen = barrier.get("t").unwrap().unwrap().stamp;
        assert!(matches!(
            barrier.get_unless("t", &seen).unwrap(),
            Fresh::Unchanged
        ));
        // The same plaintext written again is fresh ciphertext: a change.
        put(&barrier, "t", b"one");
        let Fresh::Changed(entry) = barrier.get_unless("t", &seen).unwrap() else {
            panic!("a rewritten record must read as changed");
        };
        assert_eq!(entry.value.as_slice(), b"one");
        let mut delete = WriteSet::new();
        delete.delete("t");
        barrier.commit(delete).unwrap();
        assert!(matches!(
            barrier.get_unless("t", &entry.stamp).unwrap(),
            Fresh::Missing
        ));
        barrier.seal();
        assert!(matches!(
            barrier.get_unless("t", &entry.stamp),
            Err(BarrierError::Sealed)
        ));
    }

    #[test]
    fn wrong_key_is_refused_and_changes_nothing() {
        let (storage, barrier, key) = fresh();
        put(&barrier, "a", b"1");
        let snapshot = |s: &Arc<dyn Backend>| {
            let mut all = Vec::new();
            for k in ["core/seal-config", "core/root-key", "core/keyring", "a"] {
                all.push(s.get(k).unwrap());
            }
            all
        };
        let before = snapshot(&storage);
        let reopened = Barrier::new(Arc::clone(&storage));
        assert!(matches!(
            reopened.unseal(&UnsealKey::generate()),
            Err(BarrierError::WrongUnsealKey)
        ));
        assert!(reopened.is_sealed());
        assert!(matches!(reopened.get("a"), Err(BarrierError::Sealed)));
        assert_eq!(snapshot(&storage), before);
        reopened.unseal(&key).unwrap();
        assert_eq!(read(&reopened, "a").unwrap().unwrap(), b"1");
    }

    #[test]
    fn too_few_or_wrong_shares_do_not_unseal() {
        let storage: Arc<dyn Backend> = Arc::new(Memory::new());
        let barrier = Barrier::new(Arc::clone(&storage));
        let key = UnsealKey::generate();
        let shares = key.split(5, 3).unwrap();
        barrier
            .initialize(
                SealKind::Shamir {
                    shares: 5,
                    threshold: 3,
                },
                &key,
                &[],
            )
            .unwrap();
        barrier.seal();
        let two = UnsealKey::combine(&shares[..2]).unwrap();
        assert!(matches!(
            barrier.unseal(&two),
            Err(BarrierError::WrongUnsealKey)
        ));
        let other = UnsealKey::generate().split(5, 3).unwrap();
        let mixed = [shares[0].clone(), shares[1].clone(), other[2].clone()];
        let wrong = UnsealKey::combine(&mixed).unwrap();
        assert!(matches!(
            barrier.unseal(&wrong),
            Err(BarrierError::WrongUnsealKey)
        ));
        barrier
            .unseal(&UnsealKey::combine(&shares[2..]).unwrap())
            .unwrap();
    }

    #[test]
    fn every_flipped_byte_is_an_integrity_error_naming_the_path() {
        let (storage, barrier, _) = fresh();
        put(&barrier, "logical/m/one", b"first value");
        put(&barrier, "logical/m/two", b"second value");
        let good = storage.get("logical/m/one").unwrap().unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x80;
            storage.put("logical/m/one", &bad).unwrap();
            let err = barrier.get("logical/m/one").err().unwrap();
            assert!(matches!(&err, BarrierError::Integrity { key } if key == "logical/m/one"));
            assert!(err.to_string().contains("logical/m/one"));
            assert_eq!(
                read(&barrier, "logical/m/two").unwrap().unwrap(),
                b"second value"
            );
        }
        storage.put("logical/m/one", &good[..10]).unwrap();
        assert!(matches!(
            barrier.get("logical/m/one"),
            Err(BarrierError::Integrity { .. })
        ));
    }

    #[test]
    fn swapped_ciphertexts_do_not_decrypt() {
        let (storage, barrier, _) = fresh();
        put(&barrier, "p/alice", b"alice's");
        put(&barrier, "p/bob", b"bob's");
        let a = storage.get("p/alice").unwrap().unwrap();
        let b = storage.get("p/bob").unwrap().unwrap();
        storage.put("p/alice", &b).unwrap();
        storage.put("p/bob", &a).unwrap();
        for key in ["p/alice", "p/bob"] {
            assert!(
                matches!(barrier.get(key), Err(BarrierError::Integrity { key: k }) if k == key)
            );
        }
    }

    #[test]
    fn rotation_adds_a_term_and_old_values_still_read() {
        let (storage, barrier, key) = fresh();
        put(&barrier, "old", b"under term 1");
        let before = barrier.key_status().unwrap();
        assert_eq!(before.term, 1);
        let after = barrier.rotate().unwrap();
        assert_eq!((after.term, after.terms), (2, 2));
        put(&barrier, "new", b"under term 2");
        assert_eq!(
            crypto::term_of(&storage.get("old").unwrap().unwrap()),
            Some(1)
        );
        assert_eq!(
            crypto::term_of(&storage.get("new").unwrap().unwrap()),
            Some(2)
        );

        let reopened = Barrier::new(Arc::clone(&storage));
        reopened.unseal(&key).unwrap();
        assert_eq!(reopened.key_status().unwrap().term, 2);
        assert_eq!(read(&reopened, "old").unwrap().unwrap(), b"under term 1");
        assert_eq!(read(&reopened, "new").unwrap().unwrap(), b"under term 2");
    }

    #[test]
    fn a_term_rotated_by_another_server_is_picked_up() {
        let (storage, first, key) = fresh();
        let second = Barrier::new(Arc::clone(&storage));
        second.unseal(&key).unwrap();
        second.rotate().unwrap();
        put(&second, "x", b"from the second server");
        assert_eq!(
            read(&first, "x").unwrap().unwrap(),
            b"from the second server"
        );
        assert_eq!(first.rotate().unwrap().term, 3);
    }

    #[test]
    fn writes_follow_a_rotation_made_by_another_server() {
        let (storage, first, key) = fresh();
        let first = first.with_keyring_recheck(Duration::ZERO);
        let second = Barrier::new(Arc::clone(&storage));
        second.unseal(&key).unwrap();
        put(&first, "before", b"1");
        assert_eq!(second.rotate().unwrap().term, 2);
        put(&first, "after", b"2");
        let term = |key: &str| {
            let stored = storage.get(key).unwrap().unwrap();
            u32::from_be_bytes(stored[1..5].try_into().unwrap())
        };
        assert_eq!(term("before"), 1);
        assert_eq!(
            term("after"),
            2,
            "written under the term the other server installed"
        );
        assert_eq!(first.key_status().unwrap().term, 2);
        assert_eq!(read(&second, "after").unwrap().unwrap(), b"2");
    }

    #[test]
    fn stamps_make_writes_conditional() {
        let (_, barrier, _) = fresh();
        put(&barrier, "c", b"1");
        let seen = barrier.get("c").unwrap().unwrap().stamp;
        put(&barrier, "c", b"2");
        let mut stale = WriteSet::new();
        stale
            .expect("c", Some(&seen))
            .put("c", Zeroizing::new(b"3".to_vec()));
        assert!(!barrier.commit(stale).unwrap().applied());
        assert_eq!(read(&barrier, "c").unwrap().unwrap(), b"2");
        let mut create = WriteSet::new();
        create
            .expect("d", None)
            .put("d", Zeroizing::new(b"new".to_vec()));
        assert!(barrier.commit(create).unwrap().applied());
    }

    #[test]
    fn reserved_keys_and_double_init_are_refused() {
        let (_, barrier, key) = fresh();
        assert!(matches!(
            barrier.get("core/root-key"),
            Err(BarrierError::Reserved(_))
        ));
        let mut w = WriteSet::new();
        w.put("core/keyring", Zeroizing::new(b"x".to_vec()));
        assert!(matches!(barrier.commit(w), Err(BarrierError::Reserved(_))));
        assert!(matches!(
            barrier.initialize(
                SealKind::Shamir {
                    shares: 1,
                    threshold: 1
                },
                &key,
                &[]
            ),
            Err(BarrierError::AlreadyInitialized)
        ));
        assert!(
            !barrier
                .list("core/", None, None)
                .unwrap()
                .iter()
                .any(|e| e == "root-key")
        );
    }

    #[test]
    fn reseal_changes_only_the_root_key_envelope() {
        let (storage, barrier, old) = fresh();
        put(&barrier, "logical/a", b"kept");
        let value_before = storage.get("logical/a").unwrap();
        let keyring_before = storage.get("core/keyring").unwrap();
        let config_before = storage.get("core/seal-config").unwrap();
        let new = UnsealKey::generate();
        let wrong = barrier.reseal(
            &UnsealKey::generate(),
            SealKind::KeyFile { path: "/k".into() },
            None,
            &new,
        );
        assert!(matches!(wrong, Err(BarrierError::WrongUnsealKey)));
        assert_eq!(storage.get("core/seal-config").unwrap(), config_before);
        let config = barrier
            .reseal(&old, SealKind::KeyFile { path: "/k".into() }, None, &new)
            .unwrap();
        assert_eq!(config.seal, SealKind::KeyFile { path: "/k".into() });
        assert_eq!(config.type_name(), "key-file");
        assert_eq!(storage.get("logical/a").unwrap(), value_before);
        assert_eq!(storage.get("core/keyring").unwrap(), keyring_before);
        let reopened = Barrier::new(Arc::clone(&storage));
        assert!(matches!(
            reopened.unseal(&old),
            Err(BarrierError::WrongUnsealKey)
        ));
        reopened.unseal(&new).unwrap();
        assert_eq!(read(&reopened, "logical/a").unwrap().unwrap(), b"kept");
        assert_eq!(
            reopened.seal_config().unwrap().unwrap().store_id,
            config.store_id
        );
    }

    #[test]
    fn uninitialized_store_says_so() {
        let barrier = Barrier::new(Arc::new(Memory::new()));
        assert_eq!(barrier.seal_config().unwrap(), None);
        assert!(matches!(
            barrier.unseal(&UnsealKey::generate()),
            Err(BarrierError::NotInitialized)
        ));
    }
}
