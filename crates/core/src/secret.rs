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
    pub const AUTHORIZATION_CODE: &str = "tsa_";
    pub const BROWSER_SESSION: &str = "tsb_";
}

/// `n` random bytes, base64url without padding.
pub fn random_b64(rng: &dyn Rng, n: usize) -> String {
    // On the stack: a token id is drawn for every token.
    let mut buf = [0u8; 64];
    let mut heap = Vec::new();
    let raw = match buf.get_mut(..n) {
        Some(b) => b,
        None => {
            heap.resize(n, 0);
            &mut heap[..]
        }
    };
    rng.fill(raw);
    let s = URL_SAFE_NO_PAD.encode(&*raw);
    raw.zeroize();
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
    // Encoded on the stack: this runs on every client-authenticated request.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, presented.as_bytes());
    let mut encoded = [0u8; 43];
    match URL_SAFE_NO_PAD.encode_slice(digest.as_ref(), &mut encoded) {
        Ok(n) => encoded.get(..n).is_some_and(|e| ct_eq(e, stored_hash.as_bytes())),
        Err(_) => false,
    }
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

/// Working memory for [`Argon2id::verify_in`], kept by a thread between checks.
pub type Argon2Memory = Vec<argon2::Block>;

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

    /// Does `password` match the PHC string `phc`? Allocates the hash's memory afresh; a
    /// server verifies with [`Argon2id::verify_in`] and memory it keeps per thread.
    pub fn verify(&self, phc: &str, password: &str) -> bool {
        Self::verify_in(phc, password, &mut Vec::new())
    }

    /// [`Argon2id::verify`] working in `memory`, grown to the hash's size if smaller and left
    /// for the next call. Reusing it spares each check mapping, faulting in and unmapping
    /// 19 MiB, work that also interrupts the process's other threads (TLB shootdowns).
    /// The parameters are the stored hash's own, so hashes made with older ones still verify.
    pub fn verify_in(phc: &str, password: &str, memory: &mut Argon2Memory) -> bool {
        use argon2::password_hash::PasswordHash;
        let Ok(h) = PasswordHash::new(phc) else {
            return false;
        };
        let (Ok(alg), Ok(params)) = (argon2::Algorithm::try_from(h.algorithm), argon2::Params::try_from(&h)) else {
            return false;
        };
        let version = match h.version.map(argon2::Version::try_from) {
            None => argon2::Version::V0x13,
            Some(Ok(v)) => v,
            Some(Err(_)) => return false,
        };
        let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
            return false;
        };
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
            return false;
        };
        let expected = expected.as_bytes();
        let mut out = [0u8; 64];
        let Some(out) = out.get_mut(..expected.len()) else {
            return false;
        };
        let blocks = params.block_count();
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::default());
        }
        let Some(memory) = memory.get_mut(..blocks) else {
            return false;
        };
        argon2::Argon2::new(alg, version, params)
            .hash_password_into_with_memory(password.as_bytes(), salt, out, memory)
            .is_ok()
            && ct_eq(out, expected)
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
    fn random_b64_lengths_on_and_off_the_stack() {
        for (n, chars) in [(0, 0), (16, 22), (64, 86), (65, 87), (100, 134)] {
            let a = random_b64(&SystemRng, n);
            assert_eq!(a.len(), chars, "{n} bytes");
            assert_eq!(URL_SAFE_NO_PAD.decode(&a).map(|d| d.len()).ok(), Some(n));
            if n >= 16 {
                assert_ne!(a, random_b64(&SystemRng, n));
            }
        }
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
    fn verify_in_reuses_memory_and_agrees_with_argon2() -> std::result::Result<(), argon2::password_hash::Error> {
        use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
        let salt = SaltString::encode_b64(b"sixteen byte slt")?;
        let made = |alg, m, t| -> std::result::Result<String, argon2::password_hash::Error> {
            let params = argon2::Params::new(m, t, 1, None)?;
            Ok(argon2::Argon2::new(alg, argon2::Version::V0x13, params).hash_password(b"pw 123", &salt)?.to_string())
        };
        let mut memory = Argon2Memory::new();
        // Growing, shrinking, another algorithm: each agrees with the argon2 crate's verifier.
        for (alg, m, t) in [
            (argon2::Algorithm::Argon2id, 64, 1),
            (argon2::Algorithm::Argon2id, 256, 2),
            (argon2::Algorithm::Argon2i, 128, 1),
            (argon2::Algorithm::Argon2id, 64, 1),
        ] {
            let phc = made(alg, m, t)?;
            let parsed = PasswordHash::new(&phc)?;
            let reference = |pw: &str| argon2::Argon2::default().verify_password(pw.as_bytes(), &parsed).is_ok();
            for pw in ["pw 123", "pw 124", ""] {
                assert_eq!(Argon2id::verify_in(&phc, pw, &mut memory), reference(pw), "{phc} {pw:?}");
            }
            assert!(memory.len() >= m as usize);
        }
        assert_eq!(memory.len(), 256);
        // A hash whose output was cut is refused, not matched on a prefix.
        let phc = made(argon2::Algorithm::Argon2id, 64, 1)?;
        let cut = &phc[..phc.len() - 4];
        assert!(!Argon2id::verify_in(cut, "pw 123", &mut memory));
        Ok(())
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

    /// Every type that holds a secret prints none of it with `Debug` (none has `Display`).
    #[test]
    fn debug_of_every_secret_type_is_redacted() -> crate::Result<()> {
        use crate::grant::IssuedTokens;
        use crate::keys::{Alg, MasterKey, SigningKey};
        use crate::name::{ClientId, TenantName, Username};
        use crate::principal::{Client, TotpState, User};
        let mut printed = vec![];
        let master = MasterKey::from_base64("c2VjcmV0LW1hc3Rlci1rZXktb2YtMzItYnl0ZXMhISE=")?;
        printed.push(format!("{master:?}"));
        let (key, record) = SigningKey::generate(&SystemRng, &master, "t", Alg::EdDSA, 0, 0)?;
        printed.push(format!("{key:?}"));
        let issued = IssuedTokens::access("eyJhbGciOi.secret-access-token.sig".into(), "j".into(), None, 10, 0)
            .with_refresh(Some(Secret::new("tsr_secret-refresh-token")), 100);
        printed.push(format!("{issued:?}"));
        let enrolment = crate::authority::TotpEnrolment {
            otpauth_uri: "otpauth://totp/x?secret=TOTPSECRETBASE32".into(),
            secret_base32: "TOTPSECRETBASE32".into(),
        };
        printed.push(format!("{enrolment:?}"));
        let user = User {
            tenant: TenantName::parse("t")?,
            username: Username::parse("alice")?,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$secret-password-hash".into(),
            roles: vec![],
            disabled: false,
            created_at: 0,
            profile: Default::default(),
            totp: TotpState { sealed_secret: Some(b"sealed-totp-secret".to_vec()), ..Default::default() },
        };
        printed.push(format!("{user:?}"));
        let client = Client {
            tenant: TenantName::parse("t")?,
            client_id: ClientId::parse("c")?,
            name: "c".into(),
            secret_hash: Some("secret-client-hash".into()),
            grants: vec![],
            scopes: vec![],
            owner: None,
            callback_url: None,
            description: None,
            created_at: 0,
            updated_at: 0,
            previous_secret: Some(("secret-previous-client-hash".into(), 0)),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            first_party: false,
        };
        printed.push(format!("{client:?}"));
        let all = printed.join("\n");
        let sealed_key = URL_SAFE_NO_PAD.encode(&record.private_sealed);
        for secret in [
            "c2VjcmV0LW1hc3Rlci1rZXktb2YtMzItYnl0ZXMhISE",
            "secret-master-key",
            "secret-access-token",
            "secret-refresh-token",
            "TOTPSECRETBASE32",
            "secret-password-hash",
            "argon2id",
            "sealed-totp-secret",
            "secret-client-hash",
            "secret-previous-client-hash",
            &sealed_key,
        ] {
            assert!(!all.contains(secret), "{secret:?} printed by Debug:\n{all}");
        }
        assert!(all.contains("alice") && all.contains("IssuedTokens"), "the rest is still shown: {all}");
        Ok(())
    }
}
