//! The one harness of the end-to-end tests: the binary run with a clean
//! environment, the external services a test needs, and the fixtures
//! (servers, a Kubernetes API server, moto, repositories with a spec).
//!
//! A test that needs an external service starts with [`need!`]: where the
//! service is not set up the test is skipped with a line saying how to run
//! it, so a plain `cargo test` passes on a fresh clone; under `scripts/test`
//! (which sets every service up and exports `TRESOR_TEST_ALL=1`) a missing
//! service fails the test instead of skipping it.

mod bao;
mod cluster;
mod moto;
mod repo;
mod server;

pub use bao::*;
pub use cluster::*;
pub use moto::*;
pub use repo::*;
pub use server::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The external services tests use, by the variable that names each (set by
/// the script of `scripts/setup/` in parentheses).
const SERVICES: &[(&str, &str)] = &[
    ("TRESOR_TEST_PYTHON", "python.sh: a virtualenv with hvac"),
    ("TRESOR_TEST_MOTO", "aws.sh: moto, a local AWS"),
    ("TRESOR_TEST_AWS_CLI", "aws.sh: the AWS CLI"),
    ("TRESOR_TEST_KUBE_APISERVER", "kube.sh: a kube-apiserver"),
    ("TRESOR_TEST_ETCD", "kube.sh: etcd"),
    ("TRESOR_TEST_ETCDCTL", "kube.sh: etcdctl"),
    ("TRESOR_TEST_BAO", "bao.sh: OpenBao's CLI, agent and server"),
    ("TRESOR_PG_BIN", "postgres.sh: PostgreSQL's server binaries"),
];

/// Whether every service named by `vars` is set up. When one is not, a
/// line names it; under `scripts/test` that is a failure.
pub fn available(test: &str, vars: &[&str]) -> bool {
    let missing: Vec<&str> = vars.iter().copied().filter(|var| !is_set_up(var)).collect();
    if missing.is_empty() {
        return true;
    }
    let how: Vec<String> = missing
        .iter()
        .map(|var| {
            let from = SERVICES
                .iter()
                .find(|(name, _)| name == var)
                .map_or("unknown", |(_, from)| from);
            format!("{var} (scripts/setup/{from})")
        })
        .collect();
    let message = format!(
        "{test}: needs {}; `scripts/test` sets everything up",
        how.join(", ")
    );
    assert!(
        std::env::var_os("TRESOR_TEST_ALL").is_none(),
        "{message}, but it is not set up here"
    );
    eprintln!("skipped {message}");
    false
}

fn is_set_up(var: &str) -> bool {
    match var {
        // The PostgreSQL fixture also finds Debian's binaries by itself.
        "TRESOR_PG_BIN" => tresor_testpg::available(),
        _ => std::env::var_os(var).is_some_and(|v| !v.is_empty()),
    }
}

/// Returns from the test unless the named services are set up (see the
/// module's documentation).
macro_rules! need {
    ($($var:expr),+ $(,)?) => {
        if !$crate::util::available(module_path!(), &[$($var),+]) {
            return;
        }
    };
}
pub(crate) use need;

/// The path a service variable names; call after [`need!`].
pub fn service(var: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var} is not set (guard the test with need!)"))
}

/// The `tresor` binary with none of the developer's environment: only
/// `PATH`, and a home of the test run's own, so that `TRESOR_*`, `VAULT_*`,
/// `AWS_*` or `KUBECONFIG` exported in a shell never reach it. Tests add
/// what they mean to pass.
pub fn tresor() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tresor"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home())
        .env("XDG_CONFIG_HOME", home().join(".config"));
    command
}

/// A home directory under Cargo's scratch space for integration tests.
fn home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("home")
}

/// [`tresor`] as `assert_cmd` wraps it, for `.assert()` chains.
pub fn tresor_assert() -> assert_cmd::Command {
    assert_cmd::Command::from_std(tresor())
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `done` until it holds; fails the test after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
