//! One file on local disk, kept by redb.
//!
//! Writes go through a single committer thread that gathers whatever
//! transactions are waiting and commits them with one fsync: concurrent
//! writers share the cost of durability instead of queueing for it.

use crate::lock::{Locking, Note, waiting};
use crate::{Backend, Op, Outcome, ScanVisitor, StorageError, Transaction};
use redb::backends::FileBackend;
use redb::{
    Database, Durability, ReadOnlyDatabase, ReadableDatabase, ReadableTable, TableDefinition,
};
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

/// The name of the database file inside a store directory.
pub const STORE_FILE_NAME: &str = "tresor.redb";

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// How many waiting transactions one commit may carry.
const MAX_GROUP: usize = 512;

type Reply = SyncSender<Result<Outcome, StorageError>>;

enum Db {
    ReadWrite(Arc<Database>),
    /// Opened without write access: the file is never modified.
    ReadOnly(ReadOnlyDatabase),
}

/// A store directory holding one redb file, durable when `commit` returns.
pub struct Embedded {
    db: Db,
    path: PathBuf,
    committer: Option<Sender<(Transaction, Reply)>>,
    thread: Option<JoinHandle<()>>,
    /// Moved by the committer after every commit, before it answers.
    generation: Arc<AtomicU64>,
    /// Says who holds the file while this handle does.
    _note: Option<Note>,
}

impl Embedded {
    /// Creates a new, empty store in `dir` (made 0700 if missing); the file is
    /// created 0600. Fails if a store already exists there.
    pub fn create(dir: &Path) -> Result<Self, StorageError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| io(dir, source))?;
        let path = dir.join(STORE_FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| io(&path, source))?;
        let backend = FileBackend::new(file).map_err(|e| database_error(&path, e))?;
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| database_error(&path, e))?;
        let store = Self::start(db, path, Note::leave(dir, &Locking::default(), true))?;
        store.commit(Transaction::new())?;
        Ok(store)
    }

    /// Opens the store in `dir` for reading and writing, waiting
    /// [`crate::DEFAULT_LOCK_WAIT`] for other processes to let go of it.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Self::open_with(dir, &Locking::default())
    }

    /// [`Embedded::open`], waiting as `locking` says.
    pub fn open_with(dir: &Path, locking: &Locking) -> Result<Self, StorageError> {
        let path = existing_file(dir)?;
        let db = waiting(dir, locking, || {
            Database::builder()
                .open(&path)
                .map_err(|e| database_error(&path, e))
        })?;
        Self::start(db, path, Note::leave(dir, locking, true))
    }

    /// Whether `dir` holds a store file.
    pub fn exists(dir: &Path) -> bool {
        dir.join(STORE_FILE_NAME).is_file()
    }

    /// Opens the store in `dir` without write access: every commit is
    /// refused and the file is not modified, except that a file left behind
    /// by a crash is first recovered (redb's repair), as any open would.
    /// Waits [`crate::DEFAULT_LOCK_WAIT`] for a writer to let go of it.
    pub fn open_read_only(dir: &Path) -> Result<Self, StorageError> {
        Self::open_read_only_with(dir, &Locking::default())
    }

    /// [`Embedded::open_read_only`], waiting as `locking` says.
    pub fn open_read_only_with(dir: &Path, locking: &Locking) -> Result<Self, StorageError> {
        let path = existing_file(dir)?;
        let db = waiting(dir, locking, || {
            match Database::builder().open_read_only(&path) {
                Err(redb::DatabaseError::RepairAborted) => {
                    drop(
                        Database::builder()
                            .open(&path)
                            .map_err(|e| database_error(&path, e))?,
                    );
                    Database::builder().open_read_only(&path)
                }
                other => other,
            }
            .map_err(|e| database_error(&path, e))
        })?;
        Ok(Self {
            db: Db::ReadOnly(db),
            path,
            committer: None,
            thread: None,
            generation: Arc::new(AtomicU64::new(0)),
            _note: Note::leave(dir, locking, false),
        })
    }

    /// Whether this handle may write.
    pub fn is_read_only(&self) -> bool {
        matches!(self.db, Db::ReadOnly(_))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn start(db: Database, path: PathBuf, note: Option<Note>) -> Result<Self, StorageError> {
        let db = Arc::new(db);
        let generation = Arc::new(AtomicU64::new(0));
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tresor-committer".into())
            .spawn({
                let db = Arc::clone(&db);
                let path = path.clone();
                let generation = Arc::clone(&generation);
                move || committer(&db, &path, &generation, receiver)
            })
            .map_err(|source| io(&path, source))?;
        Ok(Self {
            db: Db::ReadWrite(db),
            path,
            committer: Some(sender),
            thread: Some(thread),
            generation,
            _note: note,
        })
    }
}

impl Embedded {
    fn begin_read(&self) -> Result<redb::ReadTransaction, StorageError> {
        let txn = match &self.db {
            Db::ReadWrite(db) => db.begin_read(),
            Db::ReadOnly(db) => db.begin_read(),
        };
        txn.map_err(|e| other(&self.path, e))
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        // Closing the channel ends the committer once it has drained it.
        self.committer.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Backend for Embedded {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn reads_are_local(&self) -> bool {
        true
    }

    /// Only for a handle that writes: the file's exclusive lock keeps every
    /// other process out, so this process's committer sees every change.
    fn generation(&self) -> Option<u64> {
        match self.db {
            Db::ReadWrite(_) => Some(self.generation.load(Ordering::Acquire)),
            Db::ReadOnly(_) => None,
        }
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.begin_read()?;
        let table = match txn.open_table(TABLE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(other(&self.path, e)),
        };
        let value = table.get(key).map_err(|e| other(&self.path, e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, StorageError> {
        let txn = self.begin_read()?;
        let table = match txn.open_table(TABLE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(other(&self.path, e)),
        };
        crate::listing::list(prefix, after, limit, |from| {
            let range = table
                .range::<&str>(from..)
                .map_err(|e| other(&self.path, e))?;
            Ok(range.map(|item| {
                item.map(|(key, _)| key.value().to_owned())
                    .map_err(|e| other(&self.path, e))
            }))
        })
    }

    /// One read transaction: redb keeps what it sees while commits go on.
    fn scan(&self, visit: &mut ScanVisitor<'_>) -> Result<(), StorageError> {
        let txn = self.begin_read()?;
        let table = match txn.open_table(TABLE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(other(&self.path, e)),
        };
        for item in table.iter().map_err(|e| other(&self.path, e))? {
            let (key, value) = item.map_err(|e| other(&self.path, e))?;
            visit(key.value(), value.value())?;
        }
        Ok(())
    }

    fn commit(&self, txn: Transaction) -> Result<Outcome, StorageError> {
        if self.is_read_only() {
            return Err(StorageError::ReadOnly {
                path: self.path.clone(),
            });
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let closed = || StorageError::Backend("the store's committer has stopped".into());
        self.committer
            .as_ref()
            .ok_or_else(closed)?
            .send((txn, reply))
            .map_err(|_| closed())?;
        answer.recv().map_err(|_| closed())?
    }
}

/// Commits waiting transactions in groups until the channel closes.
fn committer(
    db: &Database,
    path: &Path,
    generation: &AtomicU64,
    receiver: Receiver<(Transaction, Reply)>,
) {
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let committed = commit_group(db, path, &group);
        // A failed commit may still have reached the file: move either way.
        generation.fetch_add(1, Ordering::Release);
        match committed {
            Ok(outcomes) => {
                for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                let message = error.to_string();
                for (_, reply) in group {
                    let _ = reply.send(Err(StorageError::Backend(message.clone())));
                }
            }
        }
    }
}

/// Applies each transaction of the group whose conditions hold (seeing the
/// writes of those before it), then commits once.
fn commit_group(
    db: &Database,
    path: &Path,
    group: &[(Transaction, Reply)],
) -> Result<Vec<Outcome>, StorageError> {
    let mut write = db.begin_write().map_err(|e| other(path, e))?;
    write
        .set_durability(Durability::Immediate)
        .map_err(|e| other(path, e))?;
    write.set_two_phase_commit(true);
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut table = write.open_table(TABLE).map_err(|e| other(path, e))?;
        for (txn, _) in group {
            outcomes.push(apply(&mut table, path, txn)?);
        }
    }
    write.commit().map_err(|e| other(path, e))?;
    Ok(outcomes)
}

fn apply(
    table: &mut redb::Table<&str, &[u8]>,
    path: &Path,
    txn: &Transaction,
) -> Result<Outcome, StorageError> {
    for condition in &txn.conditions {
        let current = table.get(condition.key()).map_err(|e| other(path, e))?;
        if !condition.holds(current.as_ref().map(|v| v.value())) {
            return Ok(Outcome::ConditionFailed {
                key: condition.key().to_owned(),
            });
        }
    }
    for op in &txn.ops {
        match op {
            Op::Put { key, value } => {
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(|e| other(path, e))?;
            }
            Op::Delete { key } => {
                table.remove(key.as_str()).map_err(|e| other(path, e))?;
            }
        }
    }
    Ok(Outcome::Applied)
}

fn existing_file(dir: &Path) -> Result<PathBuf, StorageError> {
    let path = dir.join(STORE_FILE_NAME);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(path),
        Ok(_) => Err(StorageError::Corrupt {
            path,
            detail: "not a regular file".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(StorageError::Missing { path: dir.into() })
        }
        Err(source) => Err(io(&path, source)),
    }
}

fn io(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        path: path.into(),
        source,
    }
}

fn database_error(path: &Path, error: redb::DatabaseError) -> StorageError {
    match error {
        redb::DatabaseError::DatabaseAlreadyOpen => locked(path),
        redb::DatabaseError::Storage(redb::StorageError::Io(source))
            if source.kind() == std::io::ErrorKind::WouldBlock =>
        {
            locked(path)
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(source))
            if source.kind() != std::io::ErrorKind::UnexpectedEof =>
        {
            io(path, source)
        }
        other => StorageError::Corrupt {
            path: path.into(),
            detail: other.to_string(),
        },
    }
}

/// Another process holds the file; [`waiting`] tries again, then names it.
fn locked(path: &Path) -> StorageError {
    StorageError::Locked {
        path: path.into(),
        holders: String::new(),
        waited: std::time::Duration::ZERO,
    }
}

fn other(path: &Path, error: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let made = std::sync::atomic::AtomicUsize::new(0);
        crate::conformance::run_all(&|| {
            let n = made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::new(Embedded::create(&dir.path().join(n.to_string())).unwrap())
        });
    }

    #[test]
    fn files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        Embedded::create(&store).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store), 0o700);
        assert_eq!(mode(&store.join(STORE_FILE_NAME)), 0o600);
    }

    #[test]
    fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::create(dir.path()).unwrap();
        store.put("a", b"1").unwrap();
        drop(store);
        let store = Embedded::open(dir.path()).unwrap();
        assert_eq!(store.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        drop(store);
        let before = std::fs::read(dir.path().join(STORE_FILE_NAME)).unwrap();
        let read_only = Embedded::open_read_only(dir.path()).unwrap();
        assert_eq!(read_only.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(read_only.list("", None, None).unwrap(), ["a"]);
        assert!(matches!(
            read_only.put("b", b"2"),
            Err(StorageError::ReadOnly { .. })
        ));
        drop(read_only);
        assert_eq!(
            std::fs::read(dir.path().join(STORE_FILE_NAME)).unwrap(),
            before
        );
    }

    #[test]
    fn second_opener_is_told_the_store_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _store = Embedded::create(dir.path()).unwrap();
        let brief = Locking::waiting(std::time::Duration::from_millis(50));
        let error = Embedded::open_with(dir.path(), &brief).err().unwrap();
        assert!(matches!(error, StorageError::Locked { .. }));
        // The holder's note names it, and the time waited is said.
        let pid = std::process::id();
        let said = error.to_string();
        assert!(
            said.contains(&format!("in use by process {pid} (")),
            "{said}"
        );
        assert!(said.contains(", writing for "), "{said}");
        assert!(said.contains("still after waiting"), "{said}");
        assert!(matches!(
            Embedded::open_read_only_with(dir.path(), &brief),
            Err(StorageError::Locked { .. })
        ));
    }

    #[test]
    fn an_opener_waits_for_the_holder_to_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::create(dir.path()).unwrap();
        store.put("a", b"1").unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(store);
        });
        let patient = Locking::waiting(std::time::Duration::from_secs(30));
        let reader = Embedded::open_read_only_with(dir.path(), &patient).unwrap();
        assert_eq!(reader.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        holder.join().unwrap();
        // A writer waits for the reader in turn.
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(reader);
        });
        let writer = Embedded::open_with(dir.path(), &patient).unwrap();
        writer.put("b", b"2").unwrap();
        release.join().unwrap();
    }

    #[test]
    fn missing_store_says_how_to_create_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = Embedded::open(&dir.path().join("nope")).err().unwrap();
        assert!(matches!(err, StorageError::Missing { .. }));
        assert!(err.to_string().contains("tresor operator init"));
    }

    /// Truncated, zeroed or foreign files: an error, never a panic.
    #[test]
    fn damaged_files_are_refused_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        let store = Embedded::create(&good).unwrap();
        for i in 0..50 {
            store.put(&format!("k{i}"), &[7u8; 300]).unwrap();
        }
        drop(store);
        let bytes = std::fs::read(good.join(STORE_FILE_NAME)).unwrap();
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"hello, I am a text file\n".to_vec(),
            vec![0u8; 8192],
        ];
        for cut in [1, 16, 100, 511, 4096, bytes.len() / 2, bytes.len() - 1] {
            cases.push(bytes[..cut.min(bytes.len())].to_vec());
        }
        for (n, case) in cases.iter().enumerate() {
            let bad = dir.path().join(format!("bad{n}"));
            std::fs::create_dir(&bad).unwrap();
            std::fs::write(bad.join(STORE_FILE_NAME), case).unwrap();
            let result = Embedded::open(&bad).and_then(|s| s.get("k1"));
            if let Err(e) = result {
                assert!(!e.to_string().is_empty());
            }
            let _ = Embedded::open_read_only(&bad).and_then(|s| s.get("k1"));
        }
    }
}
