//! Per-client limit on failed authentications: after a burst within a
//! window, the client gets 429 until the window passes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most clients tracked before stale ones are dropped.
const MAX_TRACKED: usize = 100_000;

pub struct FailedAuthLimiter {
    burst: u32,
    window: Duration,
    clients: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailedAuthLimiter {
    pub fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `client` has used up its failures for the current window.
    pub fn blocked(&self, client: IpAddr) -> bool {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .get(&client)
            .is_some_and(|(count, since)| *count >= self.burst && since.elapsed() < self.window)
    }

    pub fn record_failure(&self, client: IpAddr) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_TRACKED {
            let window = self.window;
            clients.retain(|_, (_, since)| since.elapsed() < window);
        }
        let entry = clients.entry(client).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_burst_and_forgets_after_the_window() {
        let limiter = FailedAuthLimiter::new(3, Duration::from_millis(50));
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        for _ in 0..3 {
            assert!(!limiter.blocked(a));
            limiter.record_failure(a);
        }
        assert!(limiter.blocked(a));
        assert!(!limiter.blocked(b));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!limiter.blocked(a));
    }
}
