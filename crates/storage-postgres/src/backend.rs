use crate::schema;
use crate::tls::MakeRustls;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, mpsc};
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::OnceCell;
use tokio_postgres::error::SqlState;
use tresor_storage::{Backend, Condition, Op, Outcome, ScanVisitor, StorageError, Transaction};

/// Pool and timeout settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Connections per server.
    pub pool_size: usize,
    /// How long opening one connection may take.
    pub connect_timeout: Duration,
    /// How long one storage call may take in all (waiting for a connection,
    /// connecting, running its statements) before it fails.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Retries of a commit that PostgreSQL aborted for a deadlock between lock
/// waits (it cannot happen with tresor's ordered locks alone, but costs
/// nothing to survive).
const DEADLOCK_RETRIES: usize = 5;

const GET: &str = "SELECT value FROM tresor_kv WHERE key = $1";

const COMMIT: &str = "SELECT tresor_commit($1, $2, $3, $4, $5, $6)";

/// One page of a scan, inside its REPEATABLE READ transaction.
const SCAN_PAGE: &str = "SELECT key, value FROM tresor_kv WHERE key > $1 ORDER BY key LIMIT $2";

/// Rows per page of a scan.
const SCAN_PAGE_ROWS: i64 = 1000;

/// Entries of one "directory": a loose index scan that visits one key per
/// entry and jumps past each folder (to `prefix || folder || '0'`, '0' being
/// the character after '/'), so listing a folder of a million keys reads as
/// many index entries as the listing returns.
const LIST: &str = r#"
WITH RECURSIVE walk(key) AS (
    SELECT (SELECT key FROM tresor_kv WHERE key >= $2 ORDER BY key LIMIT 1)
  UNION ALL
    SELECT (
        SELECT k.key FROM tresor_kv k
        WHERE k.key >= CASE
            WHEN strpos(substr(w.key, char_length($1) + 1), '/') > 0
            THEN left(w.key, char_length($1) + strpos(substr(w.key, char_length($1) + 1), '/') - 1) || '0'
            ELSE w.key || chr(1)
        END
        ORDER BY k.key LIMIT 1
    )
    FROM walk w
    WHERE w.key IS NOT NULL AND starts_with(w.key, $1)
)
SELECT key FROM walk WHERE key IS NOT NULL AND starts_with(key, $1) LIMIT $3
"#;

/// A tresor store in a PostgreSQL database.
pub struct Postgres {
    connections: Connections,
    /// `Some` until drop.
    runtime: Option<Runtime>,
    /// `user@host:port/db`, for messages: never the password.
    database: String,
    timeout: Duration,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// The pool, and whether tresor's schema is known to be in place.
#[derive(Clone)]
struct Connections {
    pool: Pool,
    schema: Arc<OnceCell<()>>,
}

impl Connections {
    /// A connection to a database that holds tresor's current schema: the
    /// first call to get through creates or migrates it.
    async fn get(&self) -> Result<Object, Failure> {
        let mut client = self.pool.get().await?;
        self.schema
            .get_or_try_init(|| async {
                schema::migrate(&mut client)
                    .await
                    .map(drop)
                    .map_err(|e| match e {
                        schema::SchemaError::Db(e) => Failure::Db(e),
                        newer @ schema::SchemaError::Newer(_) => Failure::Schema(newer.to_string()),
                    })
            })
            .await?;
        Ok(client)
    }
}

impl Postgres {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db?sslmode=...`),
    /// then creates or migrates tresor's schema there: fails when the
    /// database cannot be reached.
    pub fn connect(url: &str, options: &Options) -> Result<Self, StorageError> {
        let backend = Self::open(url, options)?;
        let connections = backend.connections.clone();
        backend.run(async move { connections.get().await.map(drop) })?;
        Ok(backend)
    }

    /// Checks the URL and TLS settings and prepares the pool without
    /// contacting the database: a server can start while the database is
    /// down. The first call that reaches the database creates or migrates
    /// the schema; until then every call fails as when the database is down.
    pub fn open(url: &str, options: &Options) -> Result<Self, StorageError> {
        let database = crate::url::parse(url).map_err(|e| StorageError::Backend(e.to_string()))?;
        let name = database.name.clone();
        let fail =
            |detail: String| StorageError::Backend(format!("PostgreSQL at {name}: {detail}"));
        let mut config = database.config;
        config
            .connect_timeout(options.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        // The server ends any statement (or lock wait) that outlives the call.
        let statement_timeout = format!(
            "{} -c statement_timeout={}",
            config.get_options().unwrap_or_default(),
            options.timeout.as_millis()
        );
        config.options(statement_timeout.trim_start());
        let tls = MakeRustls::new(&database.tls).map_err(fail)?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tresor-postgres")
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start its I/O threads: {e}")))?;
        Ok(Self {
            connections: Connections {
                pool,
                schema: Arc::new(OnceCell::new()),
            },
            runtime: Some(runtime),
            database: name,
            timeout: options.timeout + options.connect_timeout,
        })
    }

    /// `user@host:port/db`: which database this is, without secrets.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Runs `work` on the backend's runtime and waits for it, at most the
    /// call timeout. Safe to call from any thread, inside a tokio runtime
    /// or not: the caller only blocks on a channel.
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, Failure>> + Send + 'static,
    ) -> Result<T, StorageError> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| self.error(Failure::Stopped))?;
        let (reply, answer) = mpsc::sync_channel(1);
        let timeout = self.timeout;
        runtime.spawn(async move {
            let result = tokio::time::timeout(timeout, work)
                .await
                .unwrap_or(Err(Failure::Timeout(timeout)));
            let _ = reply.send(result);
        });
        answer
            .recv()
            .map_err(|_| Failure::Stopped)
            .and_then(|r| r)
            .map_err(|f| self.error(f))
    }

    fn error(&self, failure: Failure) -> StorageError {
        StorageError::Backend(format!("PostgreSQL at {}: {failure}", self.database))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is refused inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{}", unreachable(.0))]
    Pool(#[from] PoolError),
    #[error("{}", db(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("no answer within {0:?}; check that the database is running and reachable")]
    Timeout(Duration),
    #[error("{0}")]
    Schema(String),
    #[error("the backend has been shut down")]
    Stopped,
}

/// A database error's message (PostgreSQL's own words when it answered),
/// with its causes.
fn db(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None if error.is_closed() => {
            "the connection was closed; check that the database is running and reachable".into()
        }
        None => unreachable(error),
    }
}

/// Why no connection could be made, and what to check: the certificate
/// settings when TLS refused the database's certificate, else the database.
fn unreachable(error: &(dyn std::error::Error + 'static)) -> String {
    match refused_certificate(error) {
        Some(why) => why,
        None => format!(
            "{}; check that the database is running and reachable",
            chain(error)
        ),
    }
}

/// The reason rustls refused the server's certificate, when it did.
fn refused_certificate(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        // tokio-rustls wraps rustls' error in an io::Error, whose source()
        // skips it: look inside.
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        if let Some(rustls::Error::InvalidCertificate(refusal)) =
            inner.and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(describe_refusal(refusal));
        }
        next = e.source();
    }
    None
}

fn describe_refusal(refusal: &rustls::CertificateError) -> String {
    use rustls::CertificateError::{NotValidForNameContext, UnknownIssuer};
    match refusal {
        UnknownIssuer => "TLS: the database's certificate is not signed by a CA in sslrootcert \
             (or by a system CA, without sslrootcert); set sslrootcert=<PEM file> to the CA that signed it"
            .into(),
        NotValidForNameContext { expected, presented } => format!(
            "TLS: the database's certificate does not name {} (it names {}); connect by a name it holds, \
             or have it reissued for this one",
            expected.to_str(),
            presented
                .iter()
                .map(|name| name.trim_start_matches("DnsName(\"").trim_end_matches("\")"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("TLS: the database's certificate was refused ({other:?})"),
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    text
}

impl Backend for Postgres {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let connections = self.connections.clone();
        let key = key.to_owned();
        self.run(async move {
            let client = connections.get().await?;
            let statement = client.prepare_cached(GET).await?;
            let row = client.query_opt(&statement, &[&key]).await?;
            Ok(row.map(|row| row.get::<_, Vec<u8>>(0)))
        })
    }

    fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, StorageError> {
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        let connections = self.connections.clone();
        let start = first_key(prefix, after);
        let prefix = prefix.to_owned();
        let limit = limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        self.run(async move {
            let client = connections.get().await?;
            let statement = client.prepare_cached(LIST).await?;
            let rows = client.query(&statement, &[&prefix, &start, &limit]).await?;
            Ok(rows
                .iter()
                .map(|row| entry(&prefix, row.get::<_, &str>(0)))
                .collect())
        })
    }

    /// Pages of one REPEATABLE READ, READ ONLY transaction: every page sees
    /// the database as the first did, while other servers go on writing.
    /// Each page is bounded by the call timeout, not the whole scan.
    fn scan(&self, visit: &mut ScanVisitor<'_>) -> Result<(), StorageError> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| self.error(Failure::Stopped))?;
        type Page = Result<Vec<(String, Vec<u8>)>, Failure>;
        let (pages, answer) = mpsc::sync_channel::<Page>(2);
        let connections = self.connections.clone();
        let timeout = self.timeout;
        runtime.spawn(async move {
            let scanned = async {
                let mut client = within(timeout, connections.get()).await?;
                let txn = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await?;
                let mut after = String::new();
                loop {
                    let rows = within(timeout, async {
                        Ok(txn.query(SCAN_PAGE, &[&after, &SCAN_PAGE_ROWS]).await?)
                    })
                    .await?;
                    let page: Vec<(String, Vec<u8>)> = rows
                        .iter()
                        .map(|r: &tokio_postgres::Row| (r.get(0), r.get(1)))
                        .collect();
                    let last = page.len() < SCAN_PAGE_ROWS as usize;
                    if let Some((key, _)) = page.last() {
                        after = key.clone();
                    }
                    let sent = tokio::task::block_in_place(|| pages.send(Ok(page)));
                    if sent.is_err() || last {
                        return Ok(());
                    }
                }
            }
            .await;
            if let Err(failure) = scanned {
                let _ = tokio::task::block_in_place(|| pages.send(Err(failure)));
            }
        });
        for page in answer {
            for (key, value) in page.map_err(|f| self.error(f))? {
                visit(&key, &value)?;
            }
        }
        Ok(())
    }

    fn commit(&self, txn: Transaction) -> Result<Outcome, StorageError> {
        let args = CommitArgs::new(txn);
        let connections = self.connections.clone();
        self.run(async move {
            let client = connections.get().await?;
            let statement = client.prepare_cached(COMMIT).await?;
            for attempt in 1.. {
                let result = client
                    .query_one(
                        &statement,
                        &[
                            &args.locks,
                            &args.cond_keys,
                            &args.cond_values,
                            &args.put_keys,
                            &args.put_values,
                            &args.delete_keys,
                        ],
                    )
                    .await;
                match result {
                    Ok(row) => {
                        return Ok(match row.get::<_, Option<String>>(0) {
                            None => Outcome::Applied,
                            Some(key) => Outcome::ConditionFailed { key },
                        });
                    }
                    Err(e)
                        if attempt < DEADLOCK_RETRIES
                            && e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            unreachable!("the retry loop returns")
        })
    }
}

/// `what`, or a timeout failure once `timeout` has passed.
async fn within<T>(
    timeout: Duration,
    what: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout(timeout, what)
        .await
        .unwrap_or(Err(Failure::Timeout(timeout)))
}

/// The first key a listing must look at: the prefix itself, or the key just
/// past `after` (past the whole folder when `after` is one).
fn first_key(prefix: &str, after: Option<&str>) -> String {
    match after {
        None => prefix.to_owned(),
        Some(after) => match after.find('/') {
            // Every entry at or below this folder sorts before `folder0`.
            Some(slash) => format!("{prefix}{}0", &after[..slash]),
            // Keys hold no NUL, so `after` + U+0001 is the next possible key.
            None => format!("{prefix}{after}\u{1}"),
        },
    }
}

/// The entry `key` stands for in a listing of `prefix`.
fn entry(prefix: &str, key: &str) -> String {
    let rest = &key[prefix.len()..];
    match rest.find('/') {
        Some(slash) => rest[..=slash].to_owned(),
        None => rest.to_owned(),
    }
}

/// A transaction as `tresor_commit`'s arguments: the writes collapsed to the
/// last one per key (as applying them in order would leave things), and the
/// lock numbers of every key named, sorted, so that two transactions always
/// take their common locks in the same order.
struct CommitArgs {
    locks: Vec<i32>,
    cond_keys: Vec<String>,
    cond_values: Vec<Option<Vec<u8>>>,
    put_keys: Vec<String>,
    put_values: Vec<Vec<u8>>,
    delete_keys: Vec<String>,
}

impl CommitArgs {
    fn new(txn: Transaction) -> Self {
        let mut last: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        for op in txn.ops {
            match op {
                Op::Put { key, value } => last.insert(key, Some(value)),
                Op::Delete { key } => last.insert(key, None),
            };
        }
        let mut locks: Vec<i32> = txn
            .conditions
            .iter()
            .map(Condition::key)
            .chain(last.keys().map(String::as_str))
            .map(lock_number)
            .collect();
        locks.sort_unstable();
        locks.dedup();
        let (cond_keys, cond_values) = txn
            .conditions
            .into_iter()
            .map(|c| match c {
                Condition::Equals { key, value } => (key, Some(value)),
                Condition::Absent { key } => (key, None),
            })
            .unzip();
        let mut args = Self {
            locks,
            cond_keys,
            cond_values,
            put_keys: Vec::new(),
            put_values: Vec::new(),
            delete_keys: Vec::new(),
        };
        for (key, value) in last {
            match value {
                Some(value) => {
                    args.put_keys.push(key);
                    args.put_values.push(value);
                }
                None => args.delete_keys.push(key),
            }
        }
        args
    }
}

/// A key's advisory lock number (32-bit FNV-1a): the same on every server.
/// Two keys sharing a number only wait for each other.
fn lock_number(key: &str) -> i32 {
    let hash = key.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    i32::from_ne_bytes(hash.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_starts_past_after() {
        assert_eq!(first_key("p/", None), "p/");
        assert_eq!(first_key("p/", Some("k05")), "p/k05\u{1}");
        assert_eq!(first_key("p/", Some("f29/")), "p/f290");
        assert_eq!(entry("p/", "p/f29/x/y"), "f29/");
        assert_eq!(entry("p/", "p/k05"), "k05");
    }

    #[test]
    fn writes_collapse_to_the_last_per_key() {
        let args = CommitArgs::new(
            Transaction::new()
                .expect("c", None)
                .put("x", b"1")
                .delete("x")
                .delete("y")
                .put("y", b"2"),
        );
        assert_eq!(args.delete_keys, ["x"]);
        assert_eq!(args.put_keys, ["y"]);
        assert_eq!(args.cond_values, [None]);
        assert_eq!(args.locks.len(), 3);
        assert!(args.locks.is_sorted());
    }
}
