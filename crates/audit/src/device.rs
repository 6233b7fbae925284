//! The file audit device: one writer thread owns the file and the chain; callers wait for
//! its acknowledgement at most a bounded time, so a stuck disk fails requests, never hangs them.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::chain::{
    Checkpoint, LineHead, LinkOut, new_chain_id, push_chained, sha256_hex, start_line,
};
use crate::entry::AuditEntry;
use crate::error::AuditError;
use crate::salt::Salt;

/// When the writer forces lines to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` after each batch, before acknowledging it: a confirmed entry is durable.
    /// Concurrent entries share one batch, hence one sync.
    Always,
    /// Leave flushing to the operating system: faster, entries may be lost on power failure.
    Never,
}

/// Settings of a [`FileDevice`].
#[derive(Debug, Clone)]
pub struct FileDeviceConfig {
    pub path: PathBuf,
    pub fsync: FsyncPolicy,
    /// Longest a caller waits for its entry to be written before getting an error.
    pub write_timeout: Duration,
    /// Entries waiting for the writer beyond which callers are refused at once.
    pub queue_capacity: usize,
    /// Refuse a path whose last component is a symbolic link (for paths an API
    /// caller chose, so a link cannot point the device at another file).
    pub refuse_symlink: bool,
}

impl FileDeviceConfig {
    /// Durable writes, a 2 s bound and a 4096-entry queue.
    pub fn new(path: impl Into<PathBuf>) -> FileDeviceConfig {
        FileDeviceConfig {
            path: path.into(),
            fsync: FsyncPolicy::Always,
            write_timeout: Duration::from_secs(2),
            queue_capacity: 4096,
            refuse_symlink: false,
        }
    }
}

/// Most entries written (and synced) together.
const MAX_BATCH: usize = 256;

/// How often an idle writer yields its core, looking for more work, before it
/// sleeps. Under load the next entries arrive within microseconds, and a
/// writer that is awake spares each caller the wake-up of a sleeping one
/// (about a tenth of a read's CPU time); when the machine is idle the yields
/// return at once and the writer soon sleeps.
const IDLE_YIELDS: u32 = 32;

type Ack<T> = SyncSender<Result<T, AuditError>>;

enum Command {
    Write {
        line_bodies: Vec<String>,
        ack: Completer,
    },
    Reopen {
        ack: Ack<()>,
    },
    Checkpoint {
        ack: Ack<Checkpoint>,
    },
    Shutdown {
        ack: Ack<()>,
    },
}

/// When the writer started its current I/O, in milliseconds since `epoch` (+1, 0 = idle).
struct Busy {
    epoch: Instant,
    since: AtomicU64,
}

impl Busy {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn start(&self) {
        self.since.store(self.now() + 1, Ordering::Release);
    }

    fn stop(&self) {
        self.since.store(0, Ordering::Release);
    }

    /// How long the current I/O has been running, if any.
    fn stuck_for(&self) -> Option<Duration> {
        match self.since.load(Ordering::Acquire) {
            0 => None,
            since => Some(Duration::from_millis(self.now().saturating_sub(since - 1))),
        }
    }
}

/// What a device found in its file when it opened it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Where the chain stood after the file's last line.
    pub tail: Checkpoint,
    /// The `time` of that line, when it has one (the start line of a new
    /// chain has the time it was written).
    pub tail_time: Option<String>,
    /// Where the chain this file continues ended, from its start line.
    pub continues: Option<Checkpoint>,
    /// Whether the file already held a chain (otherwise one was started).
    pub resumed: bool,
}

/// An audit device appending hash-chained JSON lines to a file.
pub struct FileDevice {
    salt: Salt,
    tx: SyncSender<Command>,
    busy: Arc<Busy>,
    timeout: Duration,
    opened: Opened,
}

impl FileDevice {
    /// Opens (creating with mode 0600) or resumes the file and starts the writer thread.
    pub fn open(config: FileDeviceConfig, salt: Salt) -> Result<FileDevice, AuditError> {
        Self::open_continuing(config, salt, None)
    }

    /// [`FileDevice::open`]; a chain started in a missing or empty file
    /// records that it continues `previous`.
    pub fn open_continuing(
        config: FileDeviceConfig,
        salt: Salt,
        previous: Option<Checkpoint>,
    ) -> Result<FileDevice, AuditError> {
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity.max(1));
        let busy = Arc::new(Busy {
            epoch: Instant::now(),
            since: AtomicU64::new(0),
        });
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let writer_busy = Arc::clone(&busy);
        let timeout = config.write_timeout;
        thread::Builder::new()
            .name("tresor-audit-writer".into())
            .spawn(move || Writer::start(config, previous, writer_busy, ready_tx, rx))
            .map_err(|source| AuditError::Io {
                action: "start the writer thread for",
                path: PathBuf::new(),
                source,
            })?;
        let opened = wait(&ready_rx, timeout)?;
        Ok(FileDevice {
            salt,
            tx,
            busy,
            timeout,
            opened,
        })
    }

    /// What the device found in its file when it opened it.
    pub fn opened(&self) -> &Opened {
        &self.opened
    }

    /// Writes one entry, secrets hashed, and returns once it is written (and synced, under
    /// [`FsyncPolicy::Always`]), or with an error after at most the configured bound.
    pub fn log(&self, entry: &AuditEntry) -> Result<(), AuditError> {
        self.log_pending(entry)?.wait()
    }

    /// Queues one entry and returns at once; [`Pending::wait`] then gives the
    /// outcome [`FileDevice::log`] would have. Entries are written in the
    /// order they were queued, so a caller can queue a request entry, serve a
    /// side-effect-free request, queue its response entry and wait for both.
    pub fn log_pending(&self, entry: &AuditEntry) -> Result<Pending, AuditError> {
        self.log_pending_all(std::slice::from_ref(entry))
    }

    /// Queues several entries, written consecutively, as one: a single
    /// [`Pending`] for all of them, and a single wake-up of the writer.
    pub fn log_pending_all(&self, entries: &[AuditEntry]) -> Result<Pending, AuditError> {
        let line_bodies =
            AuditEntry::to_redacted_json_all(entries, &self.salt, OffsetDateTime::now_utc())?;
        self.enqueue(|ack| Command::Write { line_bodies, ack })
    }

    /// `hmac-sha256:<hex>` of `input` under this device's salt (for `sys/audit-hash`).
    pub fn hash(&self, input: &str) -> String {
        self.salt.hash(input)
    }

    /// Reopens the file at the configured path (after log rotation). A new, empty file gets a
    /// new chain whose start line records where the previous file's chain ended.
    pub fn reopen(&self) -> Result<(), AuditError> {
        self.submit(|ack| Command::Reopen { ack })
    }

    /// The chain position after the last written line; store it to detect truncation.
    pub fn checkpoint(&self) -> Result<Checkpoint, AuditError> {
        self.submit(|ack| Command::Checkpoint { ack })
    }

    /// Flushes queued entries and stops the writer (bounded like every other call).
    pub fn close(self) -> Result<(), AuditError> {
        self.submit(|ack| Command::Shutdown { ack })
    }

    fn submit<T>(&self, command: impl FnOnce(Ack<T>) -> Command) -> Result<T, AuditError> {
        let (ack, answer) = mpsc::sync_channel(1);
        self.send(command(ack))?;
        wait(&answer, self.timeout)
    }

    fn enqueue(&self, command: impl FnOnce(Completer) -> Command) -> Result<Pending, AuditError> {
        let slot = Arc::new(Slot::default());
        self.send(command(Completer(Some(Arc::clone(&slot)))))?;
        Ok(Pending {
            slot,
            deadline: Instant::now() + self.timeout,
            timeout: self.timeout,
        })
    }

    fn send(&self, command: Command) -> Result<(), AuditError> {
        if let Some(stuck) = self.busy.stuck_for()
            && stuck > self.timeout
        {
            return Err(AuditError::Stalled(self.timeout));
        }
        match self.tx.try_send(command) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(AuditError::Backlog),
            Err(TrySendError::Disconnected(_)) => Err(AuditError::Closed),
        }
    }
}

/// Where the writer leaves one entry's outcome, for a caller that either
/// blocks on it or awaits it (the server awaits, so that no thread sits
/// parked per request while the writer works).
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

#[derive(Default)]
struct SlotState {
    result: Option<Result<(), AuditError>>,
    waker: Option<Waker>,
    /// Whether a thread blocks on `ready` (notifying a condition variable
    /// costs a system call even when no one waits).
    blocked: bool,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The writer's end of a [`Slot`]; dropping it unanswered (the writer
/// stopped) answers [`AuditError::Closed`].
struct Completer(Option<Arc<Slot>>);

impl Completer {
    fn send(mut self, result: Result<(), AuditError>) {
        if let Some(slot) = self.0.take() {
            complete(&slot, result);
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            complete(&slot, Err(AuditError::Closed));
        }
    }
}

fn complete(slot: &Slot, result: Result<(), AuditError>) {
    let (waker, blocked) = {
        let mut state = slot.lock();
        state.result = Some(result);
        (state.waker.take(), state.blocked)
    };
    if blocked {
        slot.ready.notify_all();
    }
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// An entry queued by [`FileDevice::log_pending`], not yet known written.
///
/// Either [`Pending::wait`] for it, or await it under a timer that ends at
/// [`Pending::deadline`] (then answer [`Pending::timed_out`]).
pub struct Pending {
    slot: Arc<Slot>,
    deadline: Instant,
    timeout: Duration,
}

impl Pending {
    /// Waits until the entry is written, at most until the bound that
    /// started when it was queued.
    pub fn wait(self) -> Result<(), AuditError> {
        let mut state = self.slot.lock();
        loop {
            if let Some(result) = state.result.take() {
                return result;
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timed_out());
            }
            state.blocked = true;
            state = self
                .slot
                .ready
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// When the caller must stop waiting.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The error for a caller whose wait reached the deadline.
    pub fn timed_out(&self) -> AuditError {
        AuditError::Timeout(self.timeout)
    }
}

impl Future for Pending {
    type Output = Result<(), AuditError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.lock();
        match state.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl std::fmt::Debug for FileDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDevice")
            .field("salt", &self.salt)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn wait<T>(answer: &Receiver<Result<T, AuditError>>, timeout: Duration) -> Result<T, AuditError> {
    match answer.recv_timeout(timeout) {
        Ok(result) => result,
        Err(RecvTimeoutError::Timeout) => Err(AuditError::Timeout(timeout)),
        Err(RecvTimeoutError::Disconnected) => Err(AuditError::Closed),
    }
}

/// Where the chain stands: the last line written.
struct ChainState {
    id: String,
    seq: u64,
    hash: String,
}

impl ChainState {
    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            chain_id: self.id.clone(),
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// The writer thread's state: the only owner of the file and the chain.
struct Writer {
    config: FileDeviceConfig,
    busy: Arc<Busy>,
    file: File,
    chain: ChainState,
    /// Set when a failed write could not be rolled back; cleared by a successful reopen.
    poisoned: bool,
}

impl Writer {
    fn start(
        config: FileDeviceConfig,
        previous: Option<Checkpoint>,
        busy: Arc<Busy>,
        ready: Ack<Opened>,
        rx: Receiver<Command>,
    ) {
        busy.start();
        let opened = open_chain(&config, previous);
        busy.stop();
        match opened {
            Ok((file, chain, opened)) => {
                // The caller may have given up waiting; the writer then still serves the queue.
                let _ = ready.send(Ok(opened));
                let writer = Writer {
                    config,
                    busy,
                    file,
                    chain,
                    poisoned: false,
                };
                writer.run(&rx);
            }
            Err(e) => {
                let _ = ready.send(Err(e));
            }
        }
    }

    fn run(mut self, rx: &Receiver<Command>) {
        let mut pending = None;
        loop {
            let command = match pending.take() {
                Some(command) => command,
                None => match next_command(rx) {
                    Some(command) => command,
                    None => return,
                },
            };
            match command {
                Command::Write { line_bodies, ack } => {
                    let mut batch = vec![(line_bodies, ack)];
                    // Take what queued up meanwhile, so concurrent entries share one write and sync.
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(Command::Write { line_bodies, ack }) => {
                                batch.push((line_bodies, ack));
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                        }
                    }
                    self.write_batch(batch);
                }
                Command::Reopen { ack } => {
                    let _ = ack.send(self.reopen());
                }
                Command::Checkpoint { ack } => {
                    let _ = ack.send(Ok(self.chain.checkpoint()));
                }
                Command::Shutdown { ack } => {
                    let _ = ack.send(Ok(()));
                    return;
                }
            }
        }
    }

    fn write_batch(&mut self, batch: Vec<(Vec<String>, Completer)>) {
        let bodies = batch
            .iter()
            .flat_map(|(bodies, _)| bodies)
            .map(String::as_str);
        let result = self.append(bodies);
        for (_, ack) in batch {
            ack.send(result.as_ref().map(|_| ()).map_err(|e| self.clone_error(e)));
        }
    }

    /// Chains and appends lines; the chain only advances once they are written.
    fn append<'a>(&mut self, bodies: impl Iterator<Item = &'a str>) -> Result<(), AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned(self.config.path.clone()));
        }
        let mut buffer = Vec::new();
        let (mut seq, mut prev) = (self.chain.seq, self.chain.hash.clone());
        for body in bodies {
            seq += 1;
            let link = LinkOut {
                id: &self.chain.id,
                seq,
                prev: Some(&prev),
            };
            let start = buffer.len();
            push_chained(&mut buffer, &link, body)?;
            prev = sha256_hex(&buffer[start..]);
            buffer.push(b'\n');
        }
        self.busy.start();
        let written = self.write_durably(&buffer);
        self.busy.stop();
        written?;
        self.chain.seq = seq;
        self.chain.hash = prev;
        Ok(())
    }

    fn write_durably(&mut self, bytes: &[u8]) -> Result<(), AuditError> {
        let path = &self.config.path;
        let io = |action| {
            let path = path.clone();
            move |source| AuditError::Io {
                action,
                path,
                source,
            }
        };
        let length = self.file.metadata().map_err(io("inspect"))?.len();
        let result = self.file.write_all(bytes).map_err(io("write to"));
        let result = result.and_then(|()| sync(&self.file, self.config.fsync).map_err(io("sync")));
        if result.is_err() && self.file.metadata().is_ok_and(|m| m.is_file()) {
            // Cut a partial line so the chain on disk stays consistent with the chain in memory.
            self.poisoned = self.file.set_len(length).is_err();
        }
        result
    }

    fn reopen(&mut self) -> Result<(), AuditError> {
        self.busy.start();
        let opened = open_chain(&self.config, Some(self.chain.checkpoint()));
        self.busy.stop();
        let (file, chain, _) = opened?;
        self.file = file;
        self.chain = chain;
        self.poisoned = false;
        Ok(())
    }

    /// I/O errors cannot be cloned; every entry of a failed batch gets the same message.
    fn clone_error(&self, error: &AuditError) -> AuditError {
        match error {
            AuditError::Io {
                action,
                path,
                source,
            } => AuditError::Io {
                action,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            AuditError::Poisoned(path) => AuditError::Poisoned(path.clone()),
            other => AuditError::Encode(other.to_string()),
        }
    }
}

/// The writer's next command, or `None` once every sender is gone.
fn next_command(rx: &Receiver<Command>) -> Option<Command> {
    for _ in 0..IDLE_YIELDS {
        match rx.try_recv() {
            Ok(command) => return Some(command),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => thread::yield_now(),
        }
    }
    rx.recv().ok()
}

/// Pipes and character devices (a log shipper's FIFO, /dev/stdout) have
/// nothing to make durable and refuse fsync: they are written, not synced.
fn sync(file: &File, policy: FsyncPolicy) -> std::io::Result<()> {
    match policy {
        FsyncPolicy::Always if file.metadata()?.is_file() => file.sync_data(),
        FsyncPolicy::Always | FsyncPolicy::Never => Ok(()),
    }
}

/// Opens the file and resumes its chain, or starts a new chain in an empty file.
fn open_chain(
    config: &FileDeviceConfig,
    previous: Option<Checkpoint>,
) -> Result<(File, ChainState, Opened), AuditError> {
    let path = &config.path;
    let io = |action| {
        move |source| AuditError::Io {
            action,
            path: path.clone(),
            source,
        }
    };
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true).mode(0o600);
    if config.refuse_symlink {
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let mut file = options.open(path).map_err(io("open"))?;
    if let Some(line) = last_line(&mut file).map_err(io("read"))? {
        let (chain, tail_time) = resume(path, &line)?;
        let continues = first_line_continues(&mut file).map_err(io("read"))?;
        let opened = Opened {
            tail: chain.checkpoint(),
            tail_time,
            continues,
            resumed: true,
        };
        return Ok((file, chain, opened));
    }
    let id = new_chain_id()?;
    let start = start_line(&id, previous.as_ref())?;
    file.write_all(format!("{start}\n").as_bytes())
        .map_err(io("write to"))?;
    sync(&file, config.fsync).map_err(io("sync"))?;
    if config.fsync == FsyncPolicy::Always && file.metadata().map_err(io("inspect"))?.is_file() {
        sync_parent_dir(path).map_err(io("sync the directory of"))?;
    }
    let chain = ChainState {
        id,
        seq: 0,
        hash: sha256_hex(start.as_bytes()),
    };
    let opened = Opened {
        tail: chain.checkpoint(),
        tail_time: None,
        continues: previous,
        resumed: false,
    };
    Ok((file, chain, opened))
}

/// The `continues` member of the file's first line (a chain's start).
fn first_line_continues(file: &mut File) -> std::io::Result<Option<Checkpoint>> {
    let mut head = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    Read::by_ref(file).take(64 * 1024).read_to_end(&mut head)?;
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    Ok(serde_json::from_slice::<LineHead>(line)
        .ok()
        .and_then(|head| head.continues))
}

/// A new file's directory entry must be durable too, or the file can vanish on power loss.
fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

fn resume(path: &Path, line: &[u8]) -> Result<(ChainState, Option<String>), AuditError> {
    let Some(content) = line.strip_suffix(b"\n") else {
        return Err(AuditError::TornTail(path.to_owned()));
    };
    let head: LineHead =
        serde_json::from_slice(content).map_err(|_| AuditError::NotAChain(path.to_owned()))?;
    let chain = ChainState {
        id: head.chain.id,
        seq: head.chain.seq,
        hash: sha256_hex(content),
    };
    Ok((chain, head.time))
}

/// The file's last line with its newline (if any); `None` when empty or not a regular file.
fn last_line(file: &mut File) -> std::io::Result<Option<Vec<u8>>> {
    const CHUNK: u64 = 8192;
    let metadata = file.metadata()?;
    if !metadata.is_file() || metadata.len() == 0 {
        return Ok(None);
    }
    let mut start = metadata.len();
    let mut tail = Vec::new();
    loop {
        let step = start.min(CHUNK);
        start -= step;
        let mut piece = vec![0; usize::try_from(step).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut piece)?;
        piece.extend_from_slice(&tail);
        tail = piece;
        // A newline before the final byte ends the previous line.
        if let Some(pos) = tail[..tail.len() - 1].iter().rposition(|b| *b == b'\n') {
            return Ok(Some(tail.split_off(pos + 1)));
        }
        if start == 0 {
            return Ok(Some(tail));
        }
    }
}
