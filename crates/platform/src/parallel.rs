//! Running independent blocking calls (store writes, pushes over HTTP) a
//! few at a time on scoped threads, results kept in the items' order.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` of every item, at most `workers` at a time; the results in the
/// items' order. A panic in `f` is raised again here.
pub fn map<T, R, F>(items: &[T], workers: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    if items.len() <= 1 || workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.min(items.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_the_order_and_runs_every_item_once() {
        let items: Vec<u32> = (0..500).collect();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let out = super::map(&items, 8, |i| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(calls.into_inner(), 500);
        assert!(super::map(&[] as &[u32], 8, |i| *i).is_empty());
    }
}
