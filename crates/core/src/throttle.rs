//! Brute-force protection: failed credential checks are counted per (tenant, username) and
//! per client address in fixed windows; past the limit, checks are refused until the window
//! ends. The counters live in the store, so the limits hold across nodes.

use std::net::IpAddr;

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

/// The store keys of one attempt: the user's, then the address's (if known).
pub fn keys(tenant: &str, username: &str, origin: Option<IpAddr>) -> Vec<String> {
    let mut k = vec![format!("u:{tenant}:{username}")];
    if let Some(o) = origin {
        k.push(format!("a:{o}"));
    }
    k
}

/// Seconds to wait, given the counts the store returned for [`keys`], or `None`.
pub fn blocked(limits: &Limits, counts: &[(i64, i64)], now: i64) -> Option<i64> {
    let caps = [i64::from(limits.per_user), i64::from(limits.per_origin)];
    counts
        .iter()
        .zip(caps)
        .filter(|((failures, _), cap)| failures >= cap)
        .map(|((_, start), _)| (start + limits.window - now).max(1))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_decision() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(keys("t", "u", Some(ip)), vec!["u:t:u".to_owned(), "a:192.0.2.7".to_owned()]);
        let l = Limits { per_user: 3, per_origin: 5, window: 60 };
        assert_eq!(blocked(&l, &[(2, 100), (4, 100)], 110), None);
        assert_eq!(blocked(&l, &[(3, 100), (0, 110)], 110), Some(50));
        assert_eq!(blocked(&l, &[(0, 110), (5, 90)], 110), Some(40));
    }
}
