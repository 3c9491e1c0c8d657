//! Brute-force protection: failed credential checks counted per (tenant, username) and per
//! client address in fixed windows; past the limit, checks are refused until the window ends.
//! In memory, per node (a multi-node deployment shares it through the store later).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failures allowed per (tenant, username) in one window.
    pub per_user: u32,
    /// Failures allowed per client address in one window.
    pub per_origin: u32,
    /// Window length, seconds.
    pub window: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { per_user: 10, per_origin: 100, window: 300 }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    failures: u32,
}

/// Bound on tracked keys, so that a flood of distinct usernames cannot exhaust memory.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub struct Throttle {
    limits: Limits,
    users: Mutex<HashMap<(String, String), Window>>,
    origins: Mutex<HashMap<IpAddr, Window>>,
}

fn over<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Window>>,
    key: &K,
    now: i64,
    l: &Limits,
    max: u32,
) -> Option<i64> {
    let map = map.lock().ok()?;
    let w = map.get(key)?;
    (now < w.start + l.window && w.failures >= max).then(|| w.start + l.window - now)
}

fn bump<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Window>>, key: K, now: i64, l: &Limits) {
    let Ok(mut map) = map.lock() else { return };
    if map.len() >= MAX_KEYS {
        map.retain(|_, w| now < w.start + l.window);
    }
    let w = map.entry(key).or_insert(Window { start: now, failures: 0 });
    if now >= w.start + l.window {
        *w = Window { start: now, failures: 0 };
    }
    w.failures = w.failures.saturating_add(1);
}

impl Throttle {
    pub fn new(limits: Limits) -> Self {
        Throttle { limits, ..Default::default() }
    }

    /// Seconds to wait, if this user or address is over its limit now.
    pub fn blocked(&self, tenant: &str, username: &str, origin: Option<IpAddr>, now: i64) -> Option<i64> {
        let l = &self.limits;
        let user = over(&self.users, &(tenant.to_owned(), username.to_owned()), now, l, l.per_user);
        let addr = origin.and_then(|o| over(&self.origins, &o, now, l, l.per_origin));
        user.max(addr)
    }

    pub fn failed(&self, tenant: &str, username: &str, origin: Option<IpAddr>, now: i64) {
        bump(&self.users, (tenant.to_owned(), username.to_owned()), now, &self.limits);
        if let Some(o) = origin {
            bump(&self.origins, o, now, &self.limits);
        }
    }

    /// A successful sign-in clears the user's count (not the address's).
    pub fn succeeded(&self, tenant: &str, username: &str) {
        if let Ok(mut m) = self.users.lock() {
            m.remove(&(tenant.to_owned(), username.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_limit_window_and_reset() {
        let t = Throttle::new(Limits { per_user: 3, per_origin: 100, window: 60 });
        for _ in 0..3 {
            assert_eq!(t.blocked("t", "u", None, 100), None);
            t.failed("t", "u", None, 100);
        }
        assert_eq!(t.blocked("t", "u", None, 110), Some(50));
        assert_eq!(t.blocked("t", "other", None, 110), None, "per user");
        assert_eq!(t.blocked("t", "u", None, 160), None, "window over");
        t.succeeded("t", "u");
        assert_eq!(t.blocked("t", "u", None, 110), None);
    }

    #[test]
    fn origin_limit_spans_usernames() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t = Throttle::new(Limits { per_user: 100, per_origin: 2, window: 60 });
        t.failed("t", "a", Some(ip), 0);
        t.failed("t", "b", Some(ip), 0);
        assert!(t.blocked("t", "c", Some(ip), 1).is_some());
        assert!(t.blocked("t", "c", None, 1).is_none());
    }
}
