//! The in-memory revocation set: every live revoked token id with its expiry, compact
//! (a 16-byte key and the expiry as 4 bytes) so a million entries stay well under 100 MB.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::HashMap;

/// Our token ids are 16 random bytes in base64url: the key is those bytes. Any other id
/// (none is minted today) is keyed by the first 16 bytes of its SHA-256.
fn key(jti: &str) -> u128 {
    let mut buf = [0u8; 18];
    if jti.len() == 22
        && let Ok(16) = URL_SAFE_NO_PAD.decode_slice(jti, &mut buf)
    {
        return u128::from_le_bytes(buf.get(..16).and_then(|b| b.try_into().ok()).unwrap_or_default());
    }
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, jti.as_bytes());
    u128::from_le_bytes(d.as_ref().get(..16).and_then(|b| b.try_into().ok()).unwrap_or_default())
}

/// Expiry is stored relative to a base, in seconds, to halve the value size.
#[derive(Debug, Default)]
pub struct RevocationSet {
    map: HashMap<u128, u32>,
    base: i64,
}

impl RevocationSet {
    pub fn new(now: i64) -> Self {
        RevocationSet { map: HashMap::new(), base: now - 1 }
    }

    fn rel(&self, exp: i64) -> u32 {
        (exp - self.base).clamp(0, i64::from(u32::MAX)) as u32
    }

    pub fn insert(&mut self, jti: &str, expires_at: i64) {
        let rel = self.rel(expires_at);
        self.map.insert(key(jti), rel);
    }

    pub fn contains(&self, jti: &str) -> bool {
        self.map.contains_key(&key(jti))
    }

    /// Forget entries whose tokens have expired.
    pub fn purge(&mut self, now: i64) {
        let cut = self.rel(now);
        self.map.retain(|_, exp| *exp > cut);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_purge() {
        let mut s = RevocationSet::new(1000);
        s.insert("K46PNQs3KG-vU0vIRj8tLg", 2000);
        s.insert("not-one-of-ours", 1500);
        assert!(s.contains("K46PNQs3KG-vU0vIRj8tLg"));
        assert!(s.contains("not-one-of-ours"));
        assert!(!s.contains("K46PNQs3KG-vU0vIRj8tLh"));
        s.purge(1500);
        assert!(s.contains("K46PNQs3KG-vU0vIRj8tLg"));
        assert!(!s.contains("not-one-of-ours"));
        assert_eq!(s.len(), 1);
    }
}
