//! Crash safety: writers are killed with SIGKILL at random moments; after each
//! kill the store opens and every write acknowledged before it is there.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tresor_core::{Access, InitOptions, Unseal};

/// A small xorshift generator: random kill times, reproducible from the
/// printed seed.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::env::var("TRESOR_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("crash test seed: {seed} (set TRESOR_CRASH_SEED to replay)");
        Self(seed)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

fn value_for(i: u64) -> String {
    format!("value-{i}-{}", "x".repeat((i % 7 * 100) as usize))
}

/// Collects the complete `ack N` lines a child prints.
fn collect_acks(child: &mut Child) -> (std::thread::JoinHandle<()>, Arc<Mutex<Vec<u64>>>) {
    let acks = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().unwrap();
    let sink = Arc::clone(&acks);
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        while lines.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(n) = line.strip_suffix('\n').and_then(|l| l.strip_prefix("ack ")) {
                sink.lock().unwrap().push(n.trim().parse().unwrap());
            }
            line.clear();
        }
    });
    (reader, acks)
}

fn verify(store: &Path, key_file: &Path, acked: &BTreeMap<u64, ()>) {
    let unseal = Unseal {
        key_file: Some(key_file.into()),
        ..Unseal::default()
    };
    let store =
        tresor_core::open(store, &unseal, Access::ReadOnly).expect("the store opens after a kill");
    let kv = store.kv(&store.mount("secret").unwrap()).unwrap();
    for i in acked.keys() {
        let read = kv
            .read(&format!("crash/k{i}"), None)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged write {i} is lost"));
        let data = read.data.unwrap();
        assert_eq!(
            data.get("v").unwrap().as_str().unwrap(),
            value_for(*i),
            "write {i} has the wrong value"
        );
    }
    kv.list("crash", None, None).unwrap();
}

fn init_store(dir: &Path) -> (PathBuf, PathBuf) {
    let store = dir.join("store");
    let key = dir.join("store.key");
    tresor_core::init(&store, InitOptions::KeyFile(Some(key.clone()))).unwrap();
    (store, key)
}

/// Runs in a child process (see `engine_writer_killed_mid_commit`): writes
/// in a tight loop and prints `ack N` once write N has returned.
#[test]
fn engine_writer_child() {
    let (Some(store), Some(key), Some(start)) = (
        std::env::var_os("TRESOR_CRASH_STORE"),
        std::env::var_os("TRESOR_CRASH_KEY"),
        std::env::var("TRESOR_CRASH_START").ok(),
    ) else {
        return;
    };
    let unseal = Unseal {
        key_file: Some(key.into()),
        ..Unseal::default()
    };
    let store = tresor_core::open(Path::new(&store), &unseal, Access::ReadWrite).unwrap();
    let kv = store.kv(&store.mount("secret").unwrap()).unwrap();
    let mut i: u64 = start.parse().unwrap();
    loop {
        let data = serde_json::from_value(serde_json::json!({ "v": value_for(i) })).unwrap();
        kv.write(&format!("crash/k{i}"), &data, None).unwrap();
        println!("ack {i}");
        i += 1;
    }
}

#[test]
fn engine_writer_killed_mid_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, key) = init_store(tmp.path());
    let mut rng = Rng::new();
    let mut acked = BTreeMap::new();
    let mut next = 0u64;
    for round in 0..30 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash::engine_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TRESOR_CRASH_STORE", &store)
            .env("TRESOR_CRASH_KEY", &key)
            .env("TRESOR_CRASH_START", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (reader, acks) = collect_acks(&mut child);
        std::thread::sleep(Duration::from_millis(rng.between(30, 250)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let acks = acks.lock().unwrap();
        for n in acks.iter() {
            acked.insert(*n, ());
        }
        next = acks.last().map_or(next, |n| n + 2);
        verify(&store, &key, &acked);
        eprintln!("round {round}: {} acknowledged so far", acked.len());
    }
    assert!(
        acked.len() > 30,
        "too few writes were acknowledged to mean anything"
    );
}

#[test]
fn cli_writers_killed_with_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, key) = init_store(tmp.path());
    let binary = env!("CARGO_BIN_EXE_tresor");
    let mut rng = Rng::new();
    let mut acked = BTreeMap::new();
    let mut next = 0u64;
    for round in 0..20 {
        let script = format!(
            "i={next}; while :; do \"$TRESOR\" kv put secret/crash/k$i \"v=value-$i-$(printf '%*s' $(( i % 7 * 100 )) '' | tr ' ' x)\" >/dev/null && echo \"ack $i\"; i=$((i+1)); done"
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TRESOR", binary)
            .env("TRESOR_STORE", &store)
            .env("TRESOR_KEY_FILE", &key)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (reader, acks) = collect_acks(&mut child);
        std::thread::sleep(Duration::from_millis(rng.between(100, 700)));
        // The whole group: the shell and the `tresor` it is running.
        let group = format!("-{}", child.id());
        assert!(
            Command::new("kill")
                .args(["-KILL", "--", &group])
                .status()
                .unwrap()
                .success()
        );
        child.wait().unwrap();
        // The killed `tresor` holds the store's lock until it has fully exited.
        while Command::new("kill")
            .args(["-0", "--", &group])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        reader.join().unwrap();
        let acks = acks.lock().unwrap();
        for n in acks.iter() {
            acked.insert(*n, ());
        }
        next = acks.last().map_or(next + 1, |n| n + 2);
        verify(&store, &key, &acked);
        eprintln!("round {round}: {} acknowledged so far", acked.len());
    }
    assert!(
        acked.len() > 20,
        "too few writes were acknowledged to mean anything"
    );
}
