//! Brute-force protection: attempts at a credential check are counted per (tenant, username)
//! or (tenant, client id) and per client address, and failed device user-code look-ups per
//! client address and per tenant, in fixed windows; past a limit, attempts are refused until
//! the window ends. The counters live in the store, so the limits hold across nodes.
//!
//! A password (or a secret a client's maker chose) is counted (reserved) atomically in the
//! store BEFORE it is checked, so that concurrent attempts cannot all pass a limit while each
//! is being checked; an attempt that turns out not to be a failure gives its reservation
//! back. A request that dies between the two leaves its attempt counted, at worst until its
//! window ends.
//!
//! A server-made secret (a generated client secret, an API key: 256 random bits) is checked
//! first and only its failures are counted, so that the hot paths (client_credentials,
//! introspection) write nothing; a node that finds a counter past its limit remembers it and
//! refuses that credential before checking it until the window ends. Guessing stays bounded
//! (the limit, plus the guesses in flight at once and one per node), which against 2^256
//! values is as good as the strict order.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failures allowed per (tenant, username) in one window.
    pub per_user: u32,
    /// Failures allowed per client address in one window.
    pub per_origin: u32,
    /// Window length, seconds.
    pub window: i64,
    /// Failed device user-code look-ups allowed per client address in one window.
    pub device_per_origin: u32,
    /// Failed device user-code look-ups allowed per tenant in one window.
    pub device_per_tenant: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { per_user: 10, per_origin: 100, window: 300, device_per_origin: 10, device_per_tenant: 100 }
    }
}

/// One brute-force counter: its store key and how many attempts a window allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub key: String,
    pub cap: i64,
}

impl Limits {
    /// The counters of one sign-in: the user's first, then the address's (if known).
    pub fn login(&self, tenant: &str, username: &str, origin: Option<IpAddr>) -> Vec<Counter> {
        let mut c = vec![Counter { key: format!("u:{tenant}:{username}"), cap: i64::from(self.per_user) }];
        if let Some(o) = origin {
            c.push(Counter { key: format!("a:{o}"), cap: i64::from(self.per_origin) });
        }
        c
    }

    /// The counters of one client authentication by secret: the client's first, then the
    /// address's (shared with sign-ins: one budget of failures per address).
    pub fn client(&self, tenant: &str, client_id: &str, origin: Option<IpAddr>) -> Vec<Counter> {
        let mut c = vec![Counter { key: format!("c:{tenant}:{client_id}"), cap: i64::from(self.per_user) }];
        if let Some(o) = origin {
            c.push(Counter { key: format!("a:{o}"), cap: i64::from(self.per_origin) });
        }
        c
    }

    /// The counters of one API key check: the address's only (a key names no account until
    /// it is found), shared with sign-ins.
    pub fn api_key(&self, origin: Option<IpAddr>) -> Vec<Counter> {
        origin.map(|o| Counter { key: format!("a:{o}"), cap: i64::from(self.per_origin) }).into_iter().collect()
    }

    /// The counters of one device user-code look-up: the tenant's, then the address's.
    pub fn device_lookup(&self, tenant: &str, origin: Option<IpAddr>) -> Vec<Counter> {
        let mut c = vec![Counter { key: format!("d:t:{tenant}"), cap: i64::from(self.device_per_tenant) }];
        if let Some(o) = origin {
            c.push(Counter { key: format!("d:a:{o}"), cap: i64::from(self.device_per_origin) });
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_of_sign_ins_and_look_ups_are_distinct() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let l = Limits { per_user: 3, per_origin: 5, window: 60, device_per_origin: 2, device_per_tenant: 9 };
        assert_eq!(
            l.login("t", "u", Some(ip)),
            vec![Counter { key: "u:t:u".into(), cap: 3 }, Counter { key: "a:192.0.2.7".into(), cap: 5 }]
        );
        assert_eq!(l.login("t", "u", None).len(), 1);
        assert_eq!(
            l.client("t", "c1", Some(ip)),
            vec![Counter { key: "c:t:c1".into(), cap: 3 }, Counter { key: "a:192.0.2.7".into(), cap: 5 }]
        );
        assert_eq!(l.api_key(Some(ip)), vec![Counter { key: "a:192.0.2.7".into(), cap: 5 }]);
        assert!(l.api_key(None).is_empty());
        assert_eq!(
            l.device_lookup("t", Some(ip)),
            vec![Counter { key: "d:t:t".into(), cap: 9 }, Counter { key: "d:a:192.0.2.7".into(), cap: 2 }]
        );
    }
}
