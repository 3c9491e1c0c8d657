//! Secrets: generation, hashing (SHA-256 for high-entropy secrets, Argon2id for passwords)
//! and constant-time comparison.

use crate::clock::Rng;
use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// A secret string whose `Debug` is redacted and whose memory is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// Prefixes that make our secrets recognisable to secret scanners.
pub mod prefix {
    pub const CLIENT_SECRET: &str = "tsc_";
    pub const REFRESH_TOKEN: &str = "tsr_";
    pub const API_KEY: &str = "tsk_";
    pub const LEGACY_TOKEN: &str = "tsl_";
    pub const DEVICE_CODE: &str = "tsd_";
}

/// `n` random bytes, base64url without padding.
pub fn random_b64(rng: &dyn Rng, n: usize) -> String {
    let mut buf = vec![0u8; n];
    rng.fill(&mut buf);
    let s = URL_SAFE_NO_PAD.encode(&buf);
    buf.zeroize();
    s
}

/// A fresh 256-bit secret with a recognisable prefix.
pub fn generate_secret(rng: &dyn Rng, prefix: &str) -> Secret {
    Secret(format!("{prefix}{}", random_b64(rng, 32)))
}

/// SHA-256 of a high-entropy secret, base64url: what the store keeps.
pub fn sha256_b64(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()))
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Does `presented` hash to `stored_hash`? Constant time in the hash comparison.
pub fn verify_sha256(presented: &str, stored_hash: &str) -> bool {
    ct_eq(sha256_b64(presented).as_bytes(), stored_hash.as_bytes())
}

/// Password policy: what a password must satisfy to be accepted.
pub fn check_password_policy(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < 10 {
        return Err(Error::invalid_request("password must be at least 10 characters long"));
    }
    if n > 1024 {
        return Err(Error::invalid_request("password must be at most 1024 characters long"));
    }
    let first = password.chars().next();
    if password.chars().all(|c| Some(c) == first) {
        return Err(Error::invalid_request("password must not repeat one character"));
    }
    Ok(())
}

/// Argon2id with the OWASP-recommended parameters (19 MiB, 2 passes, 1 lane).
#[derive(Clone)]
pub struct Argon2id {
    params: argon2::Params,
}

impl Default for Argon2id {
    fn default() -> Self {
        Argon2id::new(19 * 1024, 2, 1)
    }
}

impl Argon2id {
    pub fn new(m_kib: u32, t: u32, p: u32) -> Self {
        let params = argon2::Params::new(m_kib, t, p, None).unwrap_or_default();
        Argon2id { params }
    }

    fn engine(&self) -> argon2::Argon2<'static> {
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, self.params.clone())
    }

    /// PHC string of a new hash of `password`.
    pub fn hash(&self, rng: &dyn Rng, password: &str) -> Result<String> {
        use argon2::password_hash::{PasswordHasher as _, SaltString};
        let mut salt = [0u8; 16];
        rng.fill(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|_| Error::internal("salt encoding"))?;
        self.engine()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| Error::internal("password hashing failed"))
    }

    /// Does `password` match the PHC string `phc`? (argon2 compares in constant time.)
    pub fn verify(&self, phc: &str, password: &str) -> bool {
        use argon2::password_hash::{PasswordHash, PasswordVerifier as _};
        match PasswordHash::new(phc) {
            Ok(h) => self.engine().verify_password(password.as_bytes(), &h).is_ok(),
            Err(_) => false,
        }
    }
}

/// Password hashing as the engine sees it: possibly slow, so async, so that a server can run
/// it on a bounded blocking pool off its async runtime.
#[async_trait::async_trait]
pub trait PasswordHasher: Send + Sync {
    async fn hash(&self, password: Secret) -> Result<String>;
    async fn verify(&self, phc: String, password: Secret) -> bool;
}

/// Hashes inline on the calling thread: for the CLI and tests.
pub struct InlineHasher {
    pub argon: Argon2id,
    pub rng: std::sync::Arc<dyn Rng>,
}

#[async_trait::async_trait]
impl PasswordHasher for InlineHasher {
    async fn hash(&self, password: Secret) -> Result<String> {
        self.argon.hash(self.rng.as_ref(), password.expose())
    }
    async fn verify(&self, phc: String, password: Secret) -> bool {
        self.argon.verify(&phc, password.expose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemRng;

    #[test]
    fn sha256_roundtrip_and_mismatch() {
        let s = generate_secret(&SystemRng, prefix::CLIENT_SECRET);
        assert!(s.expose().starts_with("tsc_"));
        assert_eq!(s.expose().len(), 4 + 43);
        let h = sha256_b64(s.expose());
        assert!(verify_sha256(s.expose(), &h));
        assert!(!verify_sha256("tsc_other", &h));
    }

    #[test]
    fn argon2_roundtrip() {
        let a = Argon2id::new(1024, 1, 1);
        let h = a.hash(&SystemRng, "correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(a.verify(&h, "correct horse battery"));
        assert!(!a.verify(&h, "wrong horse battery"));
        assert!(!a.verify("not a hash", "x"));
    }

    #[test]
    fn password_policy() {
        assert!(check_password_policy("").is_err());
        assert!(check_password_policy("short").is_err());
        assert!(check_password_policy("aaaaaaaaaaaa").is_err());
        assert!(check_password_policy("long enough pw").is_ok());
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
