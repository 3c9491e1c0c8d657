//! Signing keys: generation, encryption at rest under the master key, JWK/JWKS, and the
//! per-tenant KeyRing with pre-publication and retirement.

use crate::clock::Rng;
use crate::error::{Error, Result};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

/// The JWS algorithms a tenant may sign with. Nothing else is ever accepted on verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    EdDSA,
    ES256,
    RS256,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::EdDSA => "EdDSA",
            Alg::ES256 => "ES256",
            Alg::RS256 => "RS256",
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Alg {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "EdDSA" => Ok(Alg::EdDSA),
            "ES256" => Ok(Alg::ES256),
            "RS256" => Ok(Alg::RS256),
            other => Err(Error::invalid_request(format!(
                "unsupported signing algorithm `{other}` (use EdDSA, ES256 or RS256)"
            ))),
        }
    }
}

/// The 256-bit key that encrypts signing keys (and other secrets) at rest.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    pub fn generate(rng: &dyn Rng) -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rng.fill(k.as_mut());
        MasterKey(k)
    }

    /// Parse the base64 text form (32 bytes).
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = Zeroizing::new(
            STANDARD.decode(text.trim()).map_err(|_| Error::invalid_request("master key is not valid base64"))?,
        );
        let arr: [u8; 32] =
            bytes.as_slice().try_into().map_err(|_| Error::invalid_request("master key must be exactly 32 bytes"))?;
        Ok(MasterKey(Zeroizing::new(arr)))
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    #[allow(clippy::expect_used, reason = "no input reaches it: a 32-byte key is always a valid AES-256 key")]
    fn aead(&self) -> LessSafeKey {
        // A 32-byte key is always a valid AES-256 key.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, self.0.as_ref()).expect("32-byte AES key"))
    }

    /// AES-256-GCM; `context` (e.g. the kid) is bound as associated data.
    #[allow(clippy::expect_used, reason = "sealing an in-memory buffer cannot fail")]
    pub fn seal(&self, rng: &dyn Rng, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce);
        let mut buf = plaintext.to_vec();
        self.aead()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut buf)
            .expect("AES-GCM seal cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN {
            return Err(Error::internal("sealed value too short"));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::internal("bad nonce"))?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| Error::internal("cannot decrypt a stored key: the master key does not match this database"))?
            .to_vec();
        Ok(Zeroizing::new(plain))
    }
}

/// A signing key as the store keeps it.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub kid: String,
    pub tenant: String,
    pub alg: Alg,
    /// PKCS#8 v1 DER, sealed with the master key (context = kid).
    pub private_sealed: Vec<u8>,
    /// The public JWK, as JSON text.
    pub public_jwk: String,
    pub created_at: i64,
    /// The key signs from this time on; before it, it is only published.
    pub activates_at: i64,
}

enum Pair {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A decoded key pair, parsed once, ready to sign and verify.
pub struct SigningKey {
    pub kid: String,
    pub alg: Alg,
    pub activates_at: i64,
    pub created_at: i64,
    pair: Pair,
    verifier: UnparsedPublicKey<Vec<u8>>,
    jwk: Value,
    /// The base64url JWS header, precomputed: it is the same for every token of this key.
    header_b64: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).finish()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new PKCS#8 v1 private key for `alg`.
pub fn generate_pkcs8(alg: Alg) -> Result<Zeroizing<Vec<u8>>> {
    let rng = SystemRandom::new();
    let fail = |_| Error::internal("key generation failed");
    let der = match alg {
        Alg::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&rng).map_err(fail)?.as_ref().to_vec(),
        Alg::ES256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(fail)?.as_ref().to_vec()
        }
        Alg::RS256 => {
            let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(fail)?;
            kp.as_der().map_err(fail)?.as_ref().to_vec()
        }
    };
    Ok(Zeroizing::new(der))
}

impl SigningKey {
    pub fn from_pkcs8(kid: &str, alg: Alg, der: &[u8], created_at: i64, activates_at: i64) -> Result<Self> {
        let bad = |_| Error::internal(format!("stored key {kid} is not a valid {alg} key"));
        let (pair, public, jwk) = match alg {
            Alg::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8(der).map_err(bad)?;
                let public = kp.public_key().as_ref().to_vec();
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&public)});
                (Pair::Ed(kp), public, jwk)
            }
            Alg::ES256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(bad)?;
                let public = kp.public_key().as_ref().to_vec();
                // Uncompressed point: 0x04 || x (32) || y (32).
                let (Some(x), Some(y), 65) = (public.get(1..33), public.get(33..65), public.len()) else {
                    return Err(Error::internal("unexpected P-256 public key length"));
                };
                let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)});
                (Pair::Ec(kp), public, jwk)
            }
            Alg::RS256 => {
                let kp = RsaKeyPair::from_pkcs8(der).map_err(bad)?;
                let pk = kp.public_key();
                let public = pk.as_ref().to_vec();
                let jwk = json!({
                    "kty": "RSA",
                    "n": b64(pk.modulus().big_endian_without_leading_zero()),
                    "e": b64(pk.exponent().big_endian_without_leading_zero()),
                });
                (Pair::Rsa(kp), public, jwk)
            }
        };
        let mut jwk = jwk;
        if let Some(members) = jwk.as_object_mut() {
            members.insert("kid".into(), Value::String(kid.to_owned()));
            members.insert("alg".into(), Value::String(alg.as_str().to_owned()));
            members.insert("use".into(), Value::String("sig".to_owned()));
        }
        let verifier = UnparsedPublicKey::new(verification_alg(alg), public);
        let header = json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": kid});
        Ok(SigningKey {
            kid: kid.to_owned(),
            alg,
            activates_at,
            created_at,
            pair,
            verifier,
            jwk,
            header_b64: b64(header.to_string().as_bytes()),
        })
    }

    /// Generate a fresh key and its sealed record for the store.
    pub fn generate(
        rng: &dyn Rng,
        master: &MasterKey,
        tenant: &str,
        alg: Alg,
        now: i64,
        activates_at: i64,
    ) -> Result<(SigningKey, KeyRecord)> {
        let kid = crate::secret::random_b64(rng, 12);
        let der = generate_pkcs8(alg)?;
        let key = SigningKey::from_pkcs8(&kid, alg, &der, now, activates_at)?;
        let record = KeyRecord {
            kid: kid.clone(),
            tenant: tenant.to_owned(),
            alg,
            private_sealed: master.seal(rng, &kid, &der),
            public_jwk: key.jwk.to_string(),
            created_at: now,
            activates_at,
        };
        Ok((key, record))
    }

    pub fn from_record(master: &MasterKey, r: &KeyRecord) -> Result<Self> {
        let der = master.open(&r.kid, &r.private_sealed)?;
        SigningKey::from_pkcs8(&r.kid, r.alg, &der, r.created_at, r.activates_at)
    }

    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// A compact JWS over `payload` (already JSON) with this key's header.
    pub fn sign_jws(&self, payload_json: &[u8]) -> Result<String> {
        let mut out = String::with_capacity(self.header_b64.len() + payload_json.len() * 4 / 3 + 400);
        out.push_str(&self.header_b64);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(payload_json, &mut out);
        if let Pair::Ed(kp) = &self.pair {
            // The common case, without the intermediate Vec of `sign_raw`.
            let sig = kp.sign(out.as_bytes());
            out.push('.');
            URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut out);
            return Ok(out);
        }
        let sig = self.sign_raw(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
        Ok(out)
    }

    /// A compact JWS over `payload` with the header `typ: JWT` (an OpenID Connect ID token:
    /// never accepted where an access token, `typ: at+jwt`, is expected).
    pub fn sign_jwt(&self, payload_json: &[u8]) -> Result<String> {
        let header = json!({"alg": self.alg.as_str(), "typ": "JWT", "kid": self.kid});
        let mut out = b64(header.to_string().as_bytes());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(payload_json, &mut out);
        let sig = self.sign_raw(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
        Ok(out)
    }

    /// The signature of `msg` with this key (for a JWS: over `header.payload`).
    pub fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let fail = |_| Error::internal("signing failed");
        Ok(match &self.pair {
            Pair::Ed(kp) => kp.sign(msg).as_ref().to_vec(),
            Pair::Ec(kp) => kp.sign(&SystemRandom::new(), msg).map_err(fail)?.as_ref().to_vec(),
            Pair::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig).map_err(fail)?;
                sig
            }
        })
    }

    /// Verify a signature made by this key (with this key's algorithm only).
    pub fn verify_raw(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.verifier.verify(msg, sig).is_ok()
    }
}

fn verification_alg(alg: Alg) -> &'static dyn signature::VerificationAlgorithm {
    match alg {
        Alg::EdDSA => &ED25519,
        Alg::ES256 => &ECDSA_P256_SHA256_FIXED,
        Alg::RS256 => &RSA_PKCS1_2048_8192_SHA256,
    }
}

/// A key's place in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Published, not yet signing (pre-publication).
    Pending,
    /// The key that signs now.
    Active,
    /// Superseded, still published while tokens it signed may be alive.
    Retiring,
    /// Superseded long enough ago that no token it signed can be alive.
    Retired,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Pending => "pending",
            KeyStatus::Active => "active",
            KeyStatus::Retiring => "retiring",
            KeyStatus::Retired => "retired",
        }
    }
}

/// One tenant's keys, oldest activation first.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<std::sync::Arc<SigningKey>>,
}

impl KeyRing {
    pub fn new(mut keys: Vec<std::sync::Arc<SigningKey>>) -> Self {
        keys.sort_by_key(|k| (k.activates_at, k.created_at));
        KeyRing { keys }
    }

    pub fn keys(&self) -> &[std::sync::Arc<SigningKey>] {
        &self.keys
    }

    /// The newest key whose activation time has come.
    pub fn signing_key(&self, now: i64) -> Option<&std::sync::Arc<SigningKey>> {
        self.keys.iter().rev().find(|k| k.activates_at <= now)
    }

    pub fn find(&self, kid: &str) -> Option<&std::sync::Arc<SigningKey>> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// Where each key is in its life, given the longest lifetime of a token it may have signed.
    pub fn status(&self, idx: usize, now: i64, max_token_ttl: i64) -> KeyStatus {
        let Some(k) = self.keys.get(idx) else {
            return KeyStatus::Retired;
        };
        if k.activates_at > now {
            return KeyStatus::Pending;
        }
        // The first later key that has taken over ends this key's signing life.
        let later = self.keys.get(idx + 1..).unwrap_or_default();
        match later.iter().find(|n| n.activates_at <= now) {
            None => KeyStatus::Active,
            Some(next) if next.activates_at + max_token_ttl > now => KeyStatus::Retiring,
            Some(_) => KeyStatus::Retired,
        }
    }

    /// The keys to publish in JWKS: everything not retired.
    pub fn published(&self, now: i64, max_token_ttl: i64) -> impl Iterator<Item = &std::sync::Arc<SigningKey>> {
        self.keys
            .iter()
            .enumerate()
            .filter(move |&(i, _)| self.status(i, now, max_token_ttl) != KeyStatus::Retired)
            .map(|(_, k)| k)
    }

    /// A key usable to verify a token now (not retired).
    pub fn verifying_key(&self, kid: &str, now: i64, max_token_ttl: i64) -> Option<&std::sync::Arc<SigningKey>> {
        let (i, k) = self.keys.iter().enumerate().find(|(_, k)| k.kid == kid)?;
        match self.status(i, now, max_token_ttl) {
            KeyStatus::Retired => None,
            _ => Some(k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemRng;

    #[test]
    fn seal_open_roundtrip_and_wrong_key() {
        let m = MasterKey::generate(&SystemRng);
        let sealed = m.seal(&SystemRng, "kid1", b"secret");
        assert_eq!(m.open("kid1", &sealed).unwrap().as_slice(), b"secret");
        assert!(m.open("kid2", &sealed).is_err(), "context is bound");
        let other = MasterKey::generate(&SystemRng);
        assert!(other.open("kid1", &sealed).is_err());
        let text = m.to_base64();
        assert!(MasterKey::from_base64(&text).is_ok());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }

    #[test]
    fn every_alg_signs_and_verifies_with_its_own_key_only() {
        let m = MasterKey::generate(&SystemRng);
        for alg in [Alg::EdDSA, Alg::ES256, Alg::RS256] {
            let (k, rec) = SigningKey::generate(&SystemRng, &m, "t", alg, 0, 0).unwrap();
            let jws = k.sign_jws(br#"{"a":1}"#).unwrap();
            let (signed, sig) = jws.rsplit_once('.').unwrap();
            let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            assert!(k.verify_raw(signed.as_bytes(), &sig), "{alg}");
            assert!(!k.verify_raw(b"other", &sig), "{alg}");
            let reloaded = SigningKey::from_record(&m, &rec).unwrap();
            assert!(reloaded.verify_raw(signed.as_bytes(), &sig));
            assert_eq!(reloaded.jwk()["alg"], alg.as_str());
        }
    }

    #[test]
    fn ring_status_through_rotation() {
        let m = MasterKey::generate(&SystemRng);
        let (a, _) = SigningKey::generate(&SystemRng, &m, "t", Alg::EdDSA, 0, 0).unwrap();
        let (b, _) = SigningKey::generate(&SystemRng, &m, "t", Alg::EdDSA, 100, 110).unwrap();
        let ring = KeyRing::new(vec![a.into(), b.into()]);
        let ttl = 60;
        assert_eq!(ring.status(0, 105, ttl), KeyStatus::Active);
        assert_eq!(ring.status(1, 105, ttl), KeyStatus::Pending);
        assert_eq!(ring.signing_key(105).unwrap().kid, ring.keys()[0].kid);
        assert_eq!(ring.published(105, ttl).count(), 2);
        assert_eq!(ring.status(0, 150, ttl), KeyStatus::Retiring);
        assert_eq!(ring.signing_key(150).unwrap().kid, ring.keys()[1].kid);
        assert_eq!(ring.status(0, 171, ttl), KeyStatus::Retired);
        assert_eq!(ring.published(171, ttl).count(), 1);
        assert!(ring.verifying_key(&ring.keys()[0].kid, 171, ttl).is_none());
    }
}
