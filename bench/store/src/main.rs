//! Measures the KV engine on the embedded store (encryption, JSON, metadata
//! and check-and-set included) against redb doing the same number of durable
//! commits and reads of the same value size, directly, in the same run.
//!
//! Disk latency on a shared machine drifts, so each comparison alternates
//! short batches of the two sides and reports the median batch of each.
#![forbid(unsafe_code)]

use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tresor_core::{Access, InitOptions, Unseal};
use tresor_kv::{KvEngine, SecretMap};
use tresor_storage::{Backend, Embedded};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("bench");
const VALUE_LEN: usize = 256;
const ROUNDS: usize = 7;

struct Settings {
    puts: usize,
    gets: usize,
    threads: usize,
}

fn settings() -> Settings {
    let arg = |name: &str, default: usize| {
        std::env::args()
            .skip_while(|a| a != name)
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Settings {
        puts: arg("--puts", 2100),
        gets: arg("--gets", 70_000),
        threads: arg("--threads", 16),
    }
}

fn secret(i: usize) -> SecretMap {
    let value = format!("{i:08}{}", "s".repeat(VALUE_LEN - 8));
    serde_json::from_value(serde_json::json!({ "password": value })).expect("a JSON object")
}

/// Operations per second of `n` calls of `work`, spread over `threads`
/// threads; `next` hands out the item numbers.
fn batch(n: usize, threads: usize, next: &AtomicUsize, work: &(impl Fn(usize) + Sync)) -> f64 {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let count = n / threads + usize::from(t < n % threads);
            scope.spawn(move || {
                for _ in 0..count {
                    work(next.fetch_add(1, Ordering::Relaxed));
                }
            });
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Median rates of the two sides, measured in alternating batches.
fn compare(
    total: usize,
    threads: usize,
    ours: impl Fn(usize) + Sync,
    theirs: impl Fn(usize) + Sync,
) -> (f64, f64) {
    let (a, b) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let per_round = (total / ROUNDS).max(threads);
    let mut rates = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        rates.0.push(batch(per_round, threads, &a, &ours));
        rates.1.push(batch(per_round, threads, &b, &theirs));
    }
    (median(rates.0), median(rates.1))
}

fn engine(dir: &Path) -> KvEngine {
    let store_dir = dir.join("tresor");
    let key = dir.join("bench.key");
    tresor_core::init(&store_dir, InitOptions::KeyFile(Some(key.clone()))).expect("init");
    let unseal = Unseal {
        key_file: Some(key),
        ..Unseal::default()
    };
    let store = tresor_core::open(&store_dir, &unseal, Access::ReadWrite).expect("open");
    store
        .kv(&store.mount("secret").expect("secret/ is mounted"))
        .expect("secret/ is KV version 2")
}

fn raw(path: &Path) -> Database {
    let db = Database::create(path).expect("create redb");
    let txn = db.begin_write().expect("write");
    txn.open_table(TABLE).expect("table");
    txn.commit().expect("commit");
    db
}

fn raw_put(db: &Database, key: &str) {
    let mut txn = db.begin_write().expect("write");
    txn.set_durability(Durability::Immediate)
        .expect("durability");
    txn.set_two_phase_commit(true);
    {
        let mut table = txn.open_table(TABLE).expect("table");
        table
            .insert(key, [b's'; VALUE_LEN].as_slice())
            .expect("insert");
    }
    txn.commit().expect("commit");
}

fn raw_get(db: &Database, key: &str) {
    let txn = db.begin_read().expect("read");
    let table = txn.open_table(TABLE).expect("table");
    assert!(table.get(key).expect("get").is_some());
}

fn main() {
    let s = settings();
    let dir = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into()))
        .expect("a temporary directory (set BENCH_DIR to choose the disk)");
    let kv = engine(dir.path());
    let db = raw(&dir.path().join("raw.redb"));
    let storage = Embedded::create(&dir.path().join("storage")).expect("storage layer");
    let raw_for_storage = raw(&dir.path().join("raw2.redb"));
    let mut rows = Vec::new();

    let (ours, theirs) = compare(
        s.puts,
        1,
        |i| {
            storage
                .put(&format!("k{i}"), &[b's'; VALUE_LEN])
                .expect("put")
        },
        |i| raw_put(&raw_for_storage, &format!("k{i}")),
    );
    rows.push(("storage layer puts, 1 thread".to_string(), ours, theirs));

    let (ours, theirs) = compare(
        s.puts,
        1,
        |i| {
            kv.write(&format!("a/k{i}"), &secret(i), None)
                .expect("write");
        },
        |i| raw_put(&db, &format!("a/k{i}")),
    );
    rows.push(("KV puts, 1 thread".to_string(), ours, theirs));
    let written = (s.puts / ROUNDS).max(1) * ROUNDS;

    let (ours, theirs) = compare(
        s.puts,
        s.threads,
        |i| {
            kv.write(&format!("b/k{i}"), &secret(i), None)
                .expect("write");
        },
        |i| raw_put(&db, &format!("b/k{i}")),
    );
    rows.push((format!("KV puts, {} threads", s.threads), ours, theirs));

    for threads in [1, s.threads] {
        let (ours, theirs) = compare(
            s.gets,
            threads,
            |i| {
                let read = kv.read(&format!("a/k{}", i % written), None).expect("read");
                assert!(
                    read.and_then(|r| r.data).is_some(),
                    "read-after-write failed"
                );
            },
            |i| raw_get(&db, &format!("a/k{}", i % written)),
        );
        rows.push((format!("KV gets, {threads} thread(s)"), ours, theirs));
    }

    println!(
        "tresor vs raw redb, durable (fsync per commit), {VALUE_LEN}-byte values, {} CPUs, median of {ROUNDS} alternating batches, dir {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        dir.path().display()
    );
    println!(
        "| {:<30} | {:>14} | {:>14} | {:>8} |",
        "operation", "tresor ops/s", "raw redb ops/s", "ratio"
    );
    println!("|{:-<32}|{:->16}|{:->16}|{:->10}|", "", "", "", "");
    for (name, ours, theirs) in rows {
        println!(
            "| {name:<30} | {ours:>14.0} | {theirs:>14.0} | {:>7.2}x |",
            ours / theirs
        );
    }
}
