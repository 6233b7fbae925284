//! Per-client limit on failed authentications: past a burst within a
//! window, a client's failed attempts are answered 429 until the window
//! passes. Only failures are limited: a valid token, or an endpoint that
//! needs none (`sys/health` behind a load balancer), is always served.
//!
//! Memory stays bounded: clients are grouped (an IPv6 client by its /64,
//! which one host typically owns whole), and at most `capacity` groups are
//! tracked; past that, stale ones are dropped first, then the oldest.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct FailedAuthLimiter {
    burst: u32,
    window: Duration,
    capacity: usize,
    clients: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Groups tracked by default: about 1 MiB.
pub const DEFAULT_CAPACITY: usize = 16_384;

impl FailedAuthLimiter {
    pub fn new(burst: u32, window: Duration, capacity: usize) -> Self {
        Self {
            burst,
            window,
            capacity: capacity.max(1),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one failure of `client`; returns whether it is now over the limit.
    pub fn record_failure(&self, client: IpAddr) -> bool {
        let key = group(client);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if !clients.contains_key(&key) && clients.len() >= self.capacity {
            let window = self.window;
            clients.retain(|_, (_, since)| since.elapsed() < window);
            if clients.len() >= self.capacity
                && let Some(oldest) = clients
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(ip, _)| *ip)
            {
                clients.remove(&oldest);
            }
        }
        let entry = clients.entry(key).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 = entry.0.saturating_add(1);
        entry.0 > self.burst
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.clients.lock().unwrap().len()
    }
}

/// The group a client is counted in: an IPv4 address (also when mapped into
/// IPv6), or an IPv6 /64.
fn group(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_burst_until_the_window_passes() {
        let limiter = FailedAuthLimiter::new(3, Duration::from_millis(50), 100);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        for _ in 0..3 {
            assert!(!limiter.record_failure(a));
        }
        assert!(limiter.record_failure(a));
        assert!(!limiter.record_failure(b));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!limiter.record_failure(a));
    }

    #[test]
    fn an_ipv6_host_cannot_escape_by_changing_its_interface_id() {
        let limiter = FailedAuthLimiter::new(2, Duration::from_secs(60), 100);
        let over = (0..3u16)
            .map(|i| {
                let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, i, 7, 7, i));
                limiter.record_failure(ip)
            })
            .last()
            .unwrap();
        assert!(over);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let plain: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(group(mapped), group(plain));
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn memory_is_bounded_by_the_capacity() {
        let limiter = FailedAuthLimiter::new(5, Duration::from_secs(60), 64);
        for i in 0..10_000u32 {
            limiter.record_failure(IpAddr::V4(i.into()));
        }
        assert_eq!(limiter.tracked(), 64);
        // The newest clients are still counted.
        let last = IpAddr::V4(9_999u32.into());
        for _ in 0..5 {
            limiter.record_failure(last);
        }
        assert!(limiter.record_failure(last));
    }
}
