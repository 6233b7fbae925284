//! Throwaway PostgreSQL clusters for tests.
//!
//! Each [`Cluster`] is a fresh `initdb --auth=scram-sha-256` in a temporary
//! directory, listening on a free loopback port with password authentication
//! only, so tests exercise the same login path as production. The binaries
//! come from `TRESOR_PG_BIN` (set by `scripts/setup/postgres.sh`) or the
//! newest `/usr/lib/postgresql/*/bin`. As root, the server runs as the
//! `postgres` system user, because PostgreSQL refuses to run as root.
//!
//! [`Builder::tls`] serves TLS with a given certificate (see
//! [`certs::Authority`] for a throwaway CA) and then accepts TCP logins over
//! TLS only.
#![forbid(unsafe_code)]

pub mod certs;

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Name of the cluster's superuser.
pub const SUPERUSER: &str = "postgres";

/// What went wrong while starting or driving a cluster.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err(what: impl Into<String>) -> Error {
    Error(what.into())
}

/// Settings for a cluster before it starts.
#[derive(Default)]
pub struct Builder {
    settings: Vec<(String, String)>,
    tls: Option<certs::Issued>,
}

impl Builder {
    /// Adds a `postgresql.conf` setting, such as `("log_statement", "all")`.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Serves TLS with this certificate and key (PEM files, copied into the
    /// cluster with the key readable by its owner only, as PostgreSQL
    /// requires), and refuses TCP logins without TLS.
    pub fn tls(mut self, server: &certs::Issued) -> Self {
        self.tls = Some(server.clone());
        self
    }

    /// Creates the cluster and starts its server.
    pub fn start(self) -> Result<Cluster, Error> {
        Cluster::create(self.settings, self.tls)
    }
}

/// A running throwaway cluster; stopped and deleted on drop.
pub struct Cluster {
    root: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    password: String,
    as_postgres_user: bool,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("port", &self.port)
            .field("data", &self.data_dir())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A cluster with default settings.
    pub fn start() -> Result<Cluster, Error> {
        Builder::default().start()
    }

    /// A builder, to add settings before the start.
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn create(
        mut settings: Vec<(String, String)>,
        tls: Option<certs::Issued>,
    ) -> Result<Cluster, Error> {
        let bin = bin_dir()?;
        let root = tempfile::Builder::new()
            .prefix("tresor-pg-")
            .tempdir()
            .map_err(|e| err(format!("cannot create a temporary directory: {e}")))?;
        let as_postgres_user = running_as_root();
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755))
            .map_err(|e| err(format!("cannot open up {}: {e}", root.path().display())))?;
        let cluster = Cluster {
            root,
            bin,
            port: free_port()?,
            password: random_password(),
            as_postgres_user,
        };
        if let Some(server) = &tls {
            settings.extend(cluster.install_certificate(server)?);
        }
        cluster.init(&settings)?;
        if tls.is_some() {
            cluster.require_tls_over_tcp()?;
        }
        cluster.start_server()?;
        Ok(cluster)
    }

    fn init(&self, settings: &[(String, String)]) -> Result<(), Error> {
        let pwfile = self.root.path().join("pwfile");
        fs::write(&pwfile, format!("{}\n", self.password))
            .map_err(|e| err(format!("cannot write the password file: {e}")))?;
        let data = self.data_dir();
        fs::create_dir(&data).map_err(|e| err(format!("cannot create the data dir: {e}")))?;
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700))
            .map_err(|e| err(format!("cannot restrict the data dir: {e}")))?;
        let log = self.log_path();
        fs::write(&log, "").map_err(|e| err(format!("cannot create the server log: {e}")))?;
        if self.as_postgres_user {
            chown_to_postgres(&[&data, &pwfile, &log])?;
        }
        let mut initdb = self.command("initdb");
        initdb
            .arg("--auth=scram-sha-256")
            .arg(format!("--username={SUPERUSER}"))
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("--encoding=UTF8")
            .arg("--no-sync")
            .arg("-D")
            .arg(&data);
        check(initdb.output(), "initdb")?;
        fs::remove_file(&pwfile)
            .map_err(|e| err(format!("cannot remove the password file: {e}")))?;

        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .map_err(|e| err(format!("cannot open postgresql.conf: {e}")))?;
        let mut lines = vec![
            ("listen_addresses".to_owned(), "'127.0.0.1'".to_owned()),
            ("port".to_owned(), self.port.to_string()),
            (
                "unix_socket_directories".to_owned(),
                format!("'{}'", data.display()),
            ),
            ("fsync".to_owned(), "on".to_owned()),
            ("max_connections".to_owned(), "200".to_owned()),
        ];
        lines.extend(
            settings
                .iter()
                .map(|(name, value)| (name.clone(), quote_setting(value))),
        );
        for (name, value) in lines {
            writeln!(conf, "{name} = {value}")
                .map_err(|e| err(format!("cannot write postgresql.conf: {e}")))?;
        }
        Ok(())
    }

    /// Copies the certificate and key next to the data directory, owned by
    /// the cluster's user (the key 0600), and returns the settings naming them.
    fn install_certificate(&self, server: &certs::Issued) -> Result<Vec<(String, String)>, Error> {
        let dir = self.root.path().join("tls");
        fs::create_dir(&dir).map_err(|e| err(format!("cannot create the TLS dir: {e}")))?;
        let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
        fs::copy(&server.cert, &cert)
            .map_err(|e| err(format!("cannot copy {}: {e}", server.cert.display())))?;
        fs::copy(&server.key, &key)
            .map_err(|e| err(format!("cannot copy {}: {e}", server.key.display())))?;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
            .map_err(|e| err(format!("cannot restrict the TLS key: {e}")))?;
        if self.as_postgres_user {
            chown_to_postgres(&[&cert, &key])?;
        }
        Ok(vec![
            ("ssl".to_owned(), "on".to_owned()),
            ("ssl_cert_file".to_owned(), cert.display().to_string()),
            ("ssl_key_file".to_owned(), key.display().to_string()),
        ])
    }

    /// Turns pg_hba.conf's TCP lines (`host`) into `hostssl` lines.
    fn require_tls_over_tcp(&self) -> Result<(), Error> {
        let path = self.data_dir().join("pg_hba.conf");
        let hba =
            fs::read_to_string(&path).map_err(|e| err(format!("cannot read pg_hba.conf: {e}")))?;
        let rewritten: String = hba
            .lines()
            .map(|line| match line.strip_prefix("host ") {
                Some(rest) => format!("hostssl {rest}\n"),
                None => format!("{line}\n"),
            })
            .collect();
        fs::write(&path, rewritten).map_err(|e| err(format!("cannot write pg_hba.conf: {e}")))
    }

    fn start_server(&self) -> Result<(), Error> {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("start")
            .arg("-w")
            .arg("-t")
            .arg("60")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path());
        check(pg_ctl.output(), "pg_ctl start")
            .map_err(|e| err(format!("{e}\nserver log:\n{}", self.log())))
    }

    /// Starts the server again after [`Cluster::stop`] or [`Cluster::kill`].
    pub fn restart(&self) -> Result<(), Error> {
        self.start_server()
    }

    /// Stops the server (fast shutdown: open sessions are ended).
    pub fn stop(&self) -> Result<(), Error> {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("stop")
            .arg("-w")
            .arg("-m")
            .arg("fast")
            .arg("-D")
            .arg(self.data_dir());
        check(pg_ctl.output(), "pg_ctl stop")
    }

    /// Kills the server without a clean shutdown, as a crash would.
    pub fn kill(&self) -> Result<(), Error> {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("stop")
            .arg("-w")
            .arg("-m")
            .arg("immediate")
            .arg("-D")
            .arg(self.data_dir());
        check(pg_ctl.output(), "pg_ctl stop -m immediate")
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host to connect to.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A `postgres://` URL for the superuser on database `db`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// Runs SQL with `psql` as the superuser and returns its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, Error> {
        let output = Command::new(self.bin.join("psql"))
            .env("PGPASSWORD", &self.password)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                db,
            ])
            .args(["-c", sql])
            .output();
        check_output(output, "psql")
    }

    /// Creates a database owned by the superuser.
    pub fn create_database(&self, name: &str) -> Result<(), Error> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .map(drop)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.arg("-u").arg("postgres").arg("--").arg(path);
            command
        } else {
            Command::new(path)
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Whether PostgreSQL's server binaries are here (see the crate's
/// documentation for where they are looked for).
pub fn available() -> bool {
    bin_dir().is_ok()
}

/// For a test that needs PostgreSQL: whether it can run. Without the
/// binaries the test is skipped with a line saying so, so that a plain
/// `cargo test` passes anywhere; under `scripts/test`, which installs them
/// and sets `TRESOR_TEST_ALL`, it fails instead.
pub fn available_or_skip(test: &str) -> bool {
    if available() {
        return true;
    }
    let message = format!("{test}: needs PostgreSQL's server binaries (scripts/setup/postgres.sh)");
    assert!(
        std::env::var_os("TRESOR_TEST_ALL").is_none(),
        "{message}, and there are none here"
    );
    eprintln!("skipped {message}");
    false
}

fn bin_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("TRESOR_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        err("no PostgreSQL server binaries: run scripts/setup/postgres.sh or set TRESOR_PG_BIN")
    })
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn chown_to_postgres(paths: &[&Path]) -> Result<(), Error> {
    let output = Command::new("chown").arg("postgres:").args(paths).output();
    check(output, "chown postgres")
}

fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| err(format!("cannot find a free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| err(format!("cannot find a free port: {e}")))
}

fn random_password() -> String {
    let mut bytes = [0u8; 18];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .expect("/dev/urandom is readable");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn quote_setting(value: &str) -> String {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

fn check(output: std::io::Result<Output>, what: &str) -> Result<(), Error> {
    check_output(output, what).map(drop)
}

fn check_output(output: std::io::Result<Output>, what: &str) -> Result<String, Error> {
    let output = output.map_err(|e| err(format!("cannot run {what}: {e}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned())
    } else {
        Err(err(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_stops_and_restarts_with_password_auth() {
        let cluster = Cluster::builder()
            .setting("log_statement", "all")
            .start()
            .unwrap();
        assert_eq!(cluster.psql("postgres", "SELECT 1 + 1").unwrap(), "2");
        assert_eq!(
            cluster
                .psql("postgres", "SHOW password_encryption")
                .unwrap(),
            "scram-sha-256"
        );
        let hba = fs::read_to_string(cluster.data_dir().join("pg_hba.conf"));
        // Only readable as the postgres user when running as root; the login above already proved auth works.
        if let Ok(hba) = hba {
            assert!(
                !hba.lines()
                    .any(|l| !l.starts_with('#') && l.contains("trust"))
            );
        }
        cluster.stop().unwrap();
        assert!(cluster.psql("postgres", "SELECT 1").is_err());
        cluster.restart().unwrap();
        cluster.create_database("tresor").unwrap();
        assert_eq!(
            cluster.psql("tresor", "SELECT current_database()").unwrap(),
            "tresor"
        );
        assert!(cluster.log().contains("SELECT current_database()"));
    }

    #[test]
    fn tls_clusters_serve_tls_and_refuse_plain_tcp() {
        let ca = certs::Authority::new("testpg-ca").unwrap();
        let server = ca.issue(&["localhost", "127.0.0.1"]).unwrap();
        let cluster = Cluster::builder().tls(&server).start().unwrap();
        let key = cluster.root.path().join("tls/server.key");
        assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        let over_tls = cluster
            .psql(
                "postgres",
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            )
            .unwrap();
        assert_eq!(over_tls, "t");
        let psql = |sslmode: &str| {
            Command::new(cluster.bin.join("psql"))
                .env("PGPASSWORD", cluster.password())
                .env("PGSSLMODE", sslmode)
                .env("PGSSLROOTCERT", ca.cert())
                .args(["-X", "-A", "-t", "-h", "localhost", "-p"])
                .arg(cluster.port().to_string())
                .args(["-U", SUPERUSER, "-d", "postgres", "-c", "SELECT 1"])
                .output()
                .unwrap()
        };
        let verified = psql("verify-full");
        assert!(
            verified.status.success(),
            "{}",
            String::from_utf8_lossy(&verified.stderr)
        );
        let plain = psql("disable");
        assert!(!plain.status.success());
        assert!(String::from_utf8_lossy(&plain.stderr).contains("no encryption"));
    }

    #[test]
    fn a_wrong_password_is_refused() {
        let cluster = Cluster::start().unwrap();
        let output = Command::new(cluster.bin.join("psql"))
            .env("PGPASSWORD", "wrong")
            .args([
                "-X",
                "-h",
                "127.0.0.1",
                "-p",
                &cluster.port().to_string(),
                "-U",
                SUPERUSER,
                "-c",
                "SELECT 1",
            ])
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("password authentication failed"));
    }
}
