//! TOTP (RFC 6238: HMAC-SHA-1, 30 s steps, 6 digits, one step of skew) and recovery codes.

use crate::clock::Rng;
use crate::error::{Error, Result};
use totp_rs::{Builder, Secret as TotpSecret, Totp};

pub const SECRET_LEN: usize = 20;
pub const RECOVERY_CODES: usize = 10;

/// A fresh 160-bit TOTP secret (RFC 4226 section 4 recommends 160 bits).
pub fn new_secret(rng: &dyn Rng) -> Vec<u8> {
    let mut s = vec![0u8; SECRET_LEN];
    rng.fill(&mut s);
    s
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<Totp> {
    Builder::new()
        .with_secret(TotpSecret::new(secret.to_vec().into_boxed_slice()))
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()
        .map_err(|_| Error::internal("invalid TOTP parameters"))
}

/// The `otpauth://` URI authenticator apps import (and the base32 secret, for typing).
pub fn provisioning(secret: &[u8], issuer: &str, account: &str) -> Result<(String, String)> {
    let t = totp(secret, issuer, account)?;
    let uri = t.to_url().map_err(|_| Error::internal("cannot build the otpauth URI"))?;
    Ok((uri, t.secret().to_base32()))
}

/// The time step (`unix_time / 30`) that `code` is valid for at `now`, within one step of
/// skew; `None` if it matches none. Compared in constant time by totp-rs.
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) || now < 0 {
        return None;
    }
    let t = totp(secret, "tessera", "user").ok()?;
    t.check(code, now as u64).map(|step| step as i64)
}

/// The code for `now` (for tests and tools).
pub fn code_at(secret: &[u8], now: i64) -> String {
    totp(secret, "tessera", "user").map(|t| t.generate(now.max(0) as u64).to_string()).unwrap_or_default()
}

const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Ten single-use recovery codes, `xxxxx-xxxxx` (~49 bits each).
pub fn recovery_codes(rng: &dyn Rng) -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut out = String::with_capacity(11);
            while out.len() < 11 {
                let mut b = [0u8; 16];
                rng.fill(&mut b);
                for x in b {
                    // 248 = 8 * 31: rejection sampling keeps it uniform.
                    if x < 248 && out.len() < 11 {
                        if out.len() == 5 {
                            out.push('-');
                        }
                        if let Some(&c) = RECOVERY_ALPHABET.get(usize::from(x % 31)) {
                            out.push(char::from(c));
                        }
                    }
                }
            }
            out
        })
        .collect()
}

/// A recovery code as typed, normalised for hashing (case and dashes do not matter).
pub fn normalize_recovery_code(typed: &str) -> String {
    typed.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemRng;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890"; 6 low digits of the 8 listed.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59), "287082");
        assert_eq!(code_at(secret, 1_111_111_109), "081804");
        assert_eq!(code_at(secret, 2_000_000_000), "279037");
    }

    #[test]
    fn window_is_one_step_each_side() {
        let s = new_secret(&SystemRng);
        let now = 1_800_000_000;
        let code = code_at(&s, now);
        assert_eq!(matching_step(&s, &code, now), Some(now / 30));
        assert_eq!(matching_step(&s, &code, now + 30), Some(now / 30));
        assert_eq!(matching_step(&s, &code, now - 30), Some(now / 30));
        assert_eq!(matching_step(&s, &code, now + 60), None);
        assert_eq!(matching_step(&s, "12345", now), None);
        assert_eq!(matching_step(&s, "abcdef", now), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalise() {
        let codes = recovery_codes(&SystemRng);
        assert_eq!(codes.len(), 10);
        let mut uniq = codes.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 10);
        assert_eq!(normalize_recovery_code(&codes[0].to_uppercase()), codes[0].replace('-', ""));
    }

    #[test]
    fn provisioning_uri_names_issuer_and_account() {
        let (uri, b32) = provisioning(&new_secret(&SystemRng), "Tessera", "alice").unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains("secret=") && uri.contains("issuer=Tessera"), "{uri}");
        assert_eq!(b32.len(), 32);
    }
}
