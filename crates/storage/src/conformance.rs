//! The behaviour every [`Backend`] must show. A backend's tests call
//! [`run_all`] with a factory that returns a fresh, empty backend each time.

use crate::{Backend, Outcome, Transaction};
use std::sync::Arc;

/// Makes a fresh, empty backend.
pub type Factory<'a> = &'a dyn Fn() -> Box<dyn Backend>;

/// One named check of a fresh backend.
type Check = (&'static str, fn(&dyn Backend));

/// Runs every check against backends made by `fresh`; panics on the first
/// failure, naming the check.
pub fn run_all(fresh: Factory<'_>) {
    let checks: &[Check] = &[
        ("get_put_delete", get_put_delete),
        ("values_are_opaque_bytes", values_are_opaque_bytes),
        ("list_folds_folders", list_folds_folders),
        ("list_paginates", list_paginates),
        ("list_prefix_is_exact", list_prefix_is_exact),
        ("conditions_guard_all_ops", conditions_guard_all_ops),
        ("compare_and_swap_counter", compare_and_swap_counter),
        (
            "generation_moves_with_commits",
            generation_moves_with_commits,
        ),
        ("scan_reads_one_moment", scan_reads_one_moment),
    ];
    for (name, check) in checks {
        let backend = fresh();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&*backend)));
        if let Err(panic) = result {
            eprintln!("conformance check `{name}` failed on {}", backend.kind());
            std::panic::resume_unwind(panic);
        }
    }
    concurrent_increments(fresh().into());
}

/// A scan sees every key in order, as it stood when the scan began: what
/// commits while it runs (here, from inside it) is not in it.
fn scan_reads_one_moment(b: &dyn Backend) {
    let mut txn = Transaction::new();
    for i in 0..2500 {
        txn = txn.put(&format!("s/k{i:04}"), format!("v{i}").as_bytes());
    }
    assert!(b.commit(txn).unwrap().applied());
    let mut seen = Vec::new();
    let mut first = true;
    b.scan(&mut |key, value| {
        if first {
            first = false;
            b.commit(
                Transaction::new()
                    .delete("s/k1999")
                    .put("s/k2500", b"late")
                    .put("s/k0001", b"changed"),
            )?;
        }
        seen.push((key.to_owned(), value.to_vec()));
        Ok(())
    })
    .unwrap();
    let expected: Vec<(String, Vec<u8>)> = (0..2500)
        .map(|i| (format!("s/k{i:04}"), format!("v{i}").into_bytes()))
        .collect();
    assert_eq!(seen.len(), expected.len());
    assert!(
        seen == expected,
        "the scan saw a commit made after it began"
    );
    assert_eq!(b.get("s/k0001").unwrap().as_deref(), Some(&b"changed"[..]));
}

/// A backend that offers a generation must move it with every change, and
/// only then: a cache keyed on it would otherwise serve stale records.
fn generation_moves_with_commits(b: &dyn Backend) {
    let Some(start) = b.generation() else {
        return;
    };
    b.get("g").unwrap();
    b.list("", None, None).unwrap();
    assert_eq!(b.generation(), Some(start), "reads must not move it");
    b.put("g", b"1").unwrap();
    let after_put = b.generation().unwrap();
    assert_ne!(after_put, start);
    b.delete("g").unwrap();
    assert_ne!(b.generation().unwrap(), after_put);
}

fn get_put_delete(b: &dyn Backend) {
    assert_eq!(b.get("a/b").unwrap(), None);
    b.put("a/b", b"one").unwrap();
    assert_eq!(b.get("a/b").unwrap().as_deref(), Some(&b"one"[..]));
    b.put("a/b", b"two").unwrap();
    assert_eq!(b.get("a/b").unwrap().as_deref(), Some(&b"two"[..]));
    b.delete("a/b").unwrap();
    assert_eq!(b.get("a/b").unwrap(), None);
    b.delete("a/b").unwrap();
}

fn values_are_opaque_bytes(b: &dyn Backend) {
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    b.put("bin", &binary).unwrap();
    b.put("empty", b"").unwrap();
    assert_eq!(b.get("bin").unwrap(), Some(binary));
    assert_eq!(b.get("empty").unwrap(), Some(Vec::new()));
    b.put("k\u{e9}y with space", b"x").unwrap();
    assert_eq!(
        b.get("k\u{e9}y with space").unwrap().as_deref(),
        Some(&b"x"[..])
    );
}

fn list_folds_folders(b: &dyn Backend) {
    for key in [
        "app/a",
        "app/b/c",
        "app/b/d",
        "app/b/e/f",
        "app/c",
        "app-x",
        "apq",
        "app/b0",
    ] {
        b.put(key, b"v").unwrap();
    }
    assert_eq!(
        b.list("app/", None, None).unwrap(),
        ["a", "b/", "b0", "c"].map(String::from)
    );
    assert_eq!(
        b.list("app/b/", None, None).unwrap(),
        ["c", "d", "e/"].map(String::from)
    );
    assert_eq!(
        b.list("", None, None).unwrap(),
        ["app-x", "app/", "apq"].map(String::from)
    );
    assert!(b.list("nothing/", None, None).unwrap().is_empty());
}

fn list_paginates(b: &dyn Backend) {
    for i in 0..30 {
        b.put(&format!("p/k{i:02}"), b"v").unwrap();
        b.put(&format!("p/f{i:02}/x"), b"v").unwrap();
    }
    let all = b.list("p/", None, None).unwrap();
    assert_eq!(all.len(), 60);
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = b.list("p/", after.as_deref(), Some(7)).unwrap();
        assert!(page.len() <= 7);
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert_eq!(
        b.list("p/", Some("f29/"), Some(2)).unwrap(),
        ["k00", "k01"].map(String::from)
    );
    assert_eq!(b.list("p/", None, Some(0)).unwrap(), Vec::<String>::new());
}

fn list_prefix_is_exact(b: &dyn Backend) {
    b.put("ab", b"v").unwrap();
    b.put("a/b", b"v").unwrap();
    b.put("a", b"v").unwrap();
    assert_eq!(b.list("a/", None, None).unwrap(), ["b"].map(String::from));
    assert_eq!(
        b.list("a", None, None).unwrap(),
        ["", "/", "b"].map(String::from)
    );
}

fn conditions_guard_all_ops(b: &dyn Backend) {
    b.put("x", b"1").unwrap();
    let stale = Transaction::new()
        .expect("x", Some(b"0"))
        .put("x", b"2")
        .put("y", b"2");
    assert_eq!(
        b.commit(stale).unwrap(),
        Outcome::ConditionFailed { key: "x".into() }
    );
    assert_eq!(b.get("x").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(b.get("y").unwrap(), None);

    let fresh = Transaction::new()
        .expect("x", Some(b"1"))
        .expect("y", None)
        .put("x", b"2")
        .put("y", b"2")
        .delete("x");
    assert!(b.commit(fresh).unwrap().applied());
    assert_eq!(b.get("x").unwrap(), None);
    assert_eq!(b.get("y").unwrap().as_deref(), Some(&b"2"[..]));

    let absent = Transaction::new().expect("y", None).put("z", b"3");
    assert!(!b.commit(absent).unwrap().applied());
    assert_eq!(b.get("z").unwrap(), None);
}

fn compare_and_swap_counter(b: &dyn Backend) {
    assert!(
        b.commit(Transaction::new().expect("n", None).put("n", b"1"))
            .unwrap()
            .applied()
    );
    assert!(
        !b.commit(Transaction::new().expect("n", None).put("n", b"9"))
            .unwrap()
            .applied()
    );
    assert!(
        b.commit(Transaction::new().expect("n", Some(b"1")).put("n", b"2"))
            .unwrap()
            .applied()
    );
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"2"[..]));
}

/// Many threads incrementing one counter with compare-and-swap: no update lost.
fn concurrent_increments(b: Arc<dyn Backend>) {
    const THREADS: usize = 4;
    const EACH: usize = 25;
    b.put("counter", b"0").unwrap();
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                let mut done = 0;
                while done < EACH {
                    let current = b.get("counter").unwrap().unwrap();
                    let n: usize = std::str::from_utf8(&current).unwrap().parse().unwrap();
                    let txn = Transaction::new()
                        .expect("counter", Some(&current))
                        .put("counter", (n + 1).to_string().as_bytes());
                    if b.commit(txn).unwrap().applied() {
                        done += 1;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let last = b.get("counter").unwrap().unwrap();
    assert_eq!(
        std::str::from_utf8(&last).unwrap(),
        (THREADS * EACH).to_string()
    );
}
