//! Checks of the harness's own JOSE helpers against aws-lc-rs, so a negative test (a forged
//! token comes back inactive) cannot pass just because the forgery itself was wrong.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair};
use serde_json::json;

use crate::harness::{b64e, hs256, raw_public_key, spki_der, verify_with_jwk};

#[test]
fn ed25519_jwk_verifies_and_encodes() {
    let kp = signature::Ed25519KeyPair::generate().unwrap();
    let x = kp.public_key().as_ref().to_vec();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64e(&x)});
    let sig = kp.sign(b"msg");
    assert!(verify_with_jwk(&jwk, b"msg", sig.as_ref()));
    assert!(!verify_with_jwk(&jwk, b"msh", sig.as_ref()));
    assert_eq!(spki_der(&jwk), kp.public_key().as_der().unwrap().as_ref());
    assert_eq!(raw_public_key(&jwk), x);
}

#[test]
fn p256_jwk_verifies_and_encodes() {
    let rng = SystemRandom::new();
    let kp = signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pt = kp.public_key().as_ref().to_vec();
    assert_eq!(pt.len(), 65);
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64e(&pt[1..33]), "y": b64e(&pt[33..])});
    let sig = kp.sign(&rng, b"msg").unwrap();
    assert!(verify_with_jwk(&jwk, b"msg", sig.as_ref()));
    assert!(!verify_with_jwk(&jwk, b"msh", sig.as_ref()));
    assert_eq!(spki_der(&jwk), kp.public_key().as_der().unwrap().as_ref());
}

#[test]
fn rsa_jwk_verifies() {
    let rng = SystemRandom::new();
    let kp = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let comps: aws_lc_rs::rsa::PublicKeyComponents<Vec<u8>> = kp.public_key().into();
    let jwk = json!({"kty": "RSA", "n": b64e(&comps.n), "e": b64e(&comps.e)});
    let mut sig = vec![0u8; kp.public_modulus_len()];
    kp.sign(&signature::RSA_PKCS1_SHA256, &rng, b"msg", &mut sig).unwrap();
    assert!(verify_with_jwk(&jwk, b"msg", &sig));
    assert!(!verify_with_jwk(&jwk, b"msh", &sig));
    assert_eq!(spki_der(&jwk), kp.public_key().as_der().unwrap().as_ref());
}

#[test]
fn hs256_matches_rfc4231_case_2() {
    let mac = hs256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
