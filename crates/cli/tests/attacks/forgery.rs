//! Forged and altered tokens, at every route of every front: `alg: none`, HMAC keyed with
//! the public key, a key of another tenant, unknown and hostile `kid`s, keys offered in the
//! header (`jwk`, `jku`, `x5u`), `crit`, a tampered payload, and correctly signed tokens
//! (with the tenant's own key, as a thief of it would) that are expired, not yet valid or
//! issued in the future.

use crate::fronts::*;
use crate::harness::*;
use serde_json::{Value, json};

/// `claims` with some members replaced.
fn with(claims: &Value, changes: Value) -> Value {
    let mut c = claims.clone();
    for (k, v) in changes.as_object().expect("an object") {
        c[k] = v.clone();
    }
    c
}

fn kid(jwt: &Jwt) -> String {
    jwt.header["kid"].as_str().expect("kid").to_owned()
}

#[tokio::test]
async fn alg_none_is_refused_everywhere() {
    let s = TestServer::start().await;
    let at = world(&s, "default");
    forgery_refused(&s, &at, "alg none", |real| {
        let claims = with(&real.claims, json!({"sub": "admin", "username": "admin"}));
        ["none", "None", "NONE", "nOnE"]
            .iter()
            .flat_map(|alg| {
                let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid(real)});
                let unsigned = signing_input(&header, &claims);
                let original = signing_input(&header, &real.claims);
                [
                    (format!("{alg}, empty signature"), format!("{unsigned}.")),
                    (format!("{alg}, claims kept"), format!("{original}.")),
                    (format!("{alg}, the original signature"), format!("{original}.{}", b64e(&real.signature))),
                ]
            })
            .collect()
    })
    .await;
}

#[tokio::test]
async fn hs256_keyed_with_the_public_key_is_refused_everywhere() {
    let s = TestServer::start().await;
    let at = world(&s, "default");
    let jwks = s.jwks("default").await;
    let jwk = jwks["keys"][0].clone();
    let kid0 = jwk["kid"].as_str().expect("kid").to_owned();
    // Every form a naive verifier might load the public key in, as the HMAC secret.
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("raw key", raw_public_key(&jwk)),
        ("SPKI DER", spki_der(&jwk)),
        ("PEM", pem("PUBLIC KEY", &spki_der(&jwk)).into_bytes()),
        ("JWK JSON", serde_json::to_vec(&jwk).expect("json")),
        ("JWKS JSON", serde_json::to_vec(&jwks).expect("json")),
        ("x member", jwk["x"].as_str().unwrap_or("").as_bytes().to_vec()),
    ];
    forgery_refused(&s, &at, "HS256 with the public key", |real| {
        let claims = with(&real.claims, json!({"sub": "admin", "username": "admin"}));
        let mut out = vec![];
        for (name, secret) in &secrets {
            for alg in ["HS256", "HS384", "HS512"] {
                let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid0});
                let input = signing_input(&header, &claims);
                let sig = match alg {
                    "HS256" => hs256(secret, input.as_bytes()),
                    "HS384" => hmac(aws_lc_rs::hmac::HMAC_SHA384, secret, input.as_bytes()),
                    _ => hmac(aws_lc_rs::hmac::HMAC_SHA512, secret, input.as_bytes()),
                };
                out.push((format!("{alg} keyed with the {name}"), format!("{input}.{}", b64e(&sig))));
            }
            out.push((format!("forge_hs256 with the {name}"), forge_hs256(&kid0, &claims, secret)));
        }
        out
    })
    .await;
}

fn hmac(alg: aws_lc_rs::hmac::Algorithm, secret: &[u8], input: &[u8]) -> Vec<u8> {
    aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(alg, secret), input).as_ref().to_vec()
}

#[tokio::test]
async fn a_key_of_another_tenant_is_refused_everywhere() {
    let s = TestServer::start().await;
    let at = world(&s, "default");
    // Another tenant of the same server, with the same algorithm: its key signs the token,
    // its kid names it; the claims say the victim tenant.
    s.create_tenant("mallory", &[]);
    let theirs = s.signing_key("mallory").await;
    let mallory_jwks = s.jwks("mallory").await;
    let mallory_kid = mallory_jwks["keys"][0]["kid"].as_str().expect("kid").to_owned();
    forgery_refused(&s, &at, "another tenant's key", |real| {
        let claims = with(&real.claims, json!({"sub": "admin", "username": "admin"}));
        let alg = real.header["alg"].clone();
        vec![
            ("its kid".into(), sign_as(&theirs, &json!({"alg": alg, "typ": "at+jwt", "kid": mallory_kid}), &claims)),
            (
                "the victim's kid".into(),
                sign_as(&theirs, &json!({"alg": alg, "typ": "at+jwt", "kid": kid(real)}), &claims),
            ),
            (
                "its kid, its claims kept".into(),
                sign_as(&theirs, &json!({"alg": alg, "typ": "at+jwt", "kid": mallory_kid}), &real.claims),
            ),
        ]
    })
    .await;
}

#[tokio::test]
async fn unknown_and_hostile_kids_are_refused_everywhere() {
    let s = TestServer::start().await;
    let at = world(&s, "default");
    let key = s.signing_key("default").await;
    let kids = [
        json!("no-such-key"),
        json!(""),
        json!("../../../../etc/passwd"),
        json!("' OR '1'='1"),
        json!("x'; DROP TABLE keys; --"),
        json!("/dev/zero"),
        json!("http://127.0.0.1:9/key"),
        json!(7),
        json!(null),
        json!(["a"]),
    ];
    forgery_refused(&s, &at, "a kid naming no key of the tenant", |real| {
        let alg = real.header["alg"].clone();
        let mut out: Vec<(String, String)> = kids
            .iter()
            .map(|k| (format!("kid {k}"), sign_as(&key, &json!({"alg": alg, "typ": "at+jwt", "kid": k}), &real.claims)))
            .collect();
        out.push(("no kid".into(), sign_as(&key, &json!({"alg": alg, "typ": "at+jwt"}), &real.claims)));
        out
    })
    .await;
}

/// An attacker's own Ed25519 key: (JWK, signer).
fn attacker_key() -> (Value, aws_lc_rs::signature::Ed25519KeyPair) {
    use aws_lc_rs::signature::KeyPair;
    let pkcs8 =
        aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).expect("generate");
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse");
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64e(pair.public_key().as_ref()), "kid": "attacker", "alg": "EdDSA"});
    (jwk, pair)
}

#[tokio::test]
async fn keys_offered_in_the_header_are_ignored() {
    let s = TestServer::start().await;
    let at = world(&s, "default");
    let (jwk, pair) = attacker_key();
    let jwks_url = "http://127.0.0.1:9/attacker/jwks.json";
    forgery_refused(&s, &at, "a key offered in the header", |real| {
        let claims = with(&real.claims, json!({"sub": "admin", "username": "admin"}));
        let headers = [
            ("embedded jwk, attacker kid", json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker", "jwk": jwk})),
            ("embedded jwk, the tenant's kid", json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid(real), "jwk": jwk})),
            ("jku", json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker", "jku": jwks_url})),
            ("jku, the tenant's kid", json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid(real), "jku": jwks_url})),
            ("x5u", json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid(real), "x5u": "http://127.0.0.1:9/cert.pem"})),
            ("x5c", json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid(real), "x5c": ["MIIB"]})),
        ];
        headers
            .into_iter()
            .map(|(name, header)| {
                let input = signing_input(&header, &claims);
                let sig = pair.sign(input.as_bytes());
                (name.to_owned(), format!("{input}.{}", b64e(sig.as_ref())))
            })
            .collect()
    })
    .await;
}

#[tokio::test]
async fn crit_is_refused_at_every_route_even_correctly_signed() {
    let s = TestServer::start().await;
    let at = world(&s, "default");
    let key = s.signing_key("default").await;
    forgery_refused(&s, &at, "a crit header", |real| {
        let (alg, k) = (real.header["alg"].clone(), kid(real));
        [
            json!({"alg": alg, "typ": "at+jwt", "kid": k, "crit": ["exp"]}),
            json!({"alg": alg, "typ": "at+jwt", "kid": k, "crit": []}),
            json!({"alg": alg, "typ": "at+jwt", "kid": k, "crit": ["b64"], "b64": false}),
        ]
        .into_iter()
        .map(|h| (h["crit"].to_string(), sign_as(&key, &h, &real.claims)))
        .collect()
    })
    .await;
}

#[tokio::test]
async fn a_tampered_token_is_refused_everywhere() {
    let s = TestServer::start().await;
    let at = world(&s, "default");
    forgery_refused(&s, &at, "a tampered token", |real| {
        let parts: Vec<&str> = real.raw.split('.').collect();
        let resign = |claims: &Value| {
            let input = signing_input(&real.header, claims);
            format!("{}.{}.{}", input.split('.').next().unwrap_or(""), input.split('.').nth(1).unwrap_or(""), parts[2])
        };
        let mut flipped = real.signature.clone();
        flipped[0] ^= 1;
        vec![
            (
                "sub and username changed".into(),
                resign(&with(&real.claims, json!({"sub": "admin", "username": "admin"}))),
            ),
            ("scope widened".into(), resign(&with(&real.claims, json!({"scope": "admin root *"})))),
            ("exp extended".into(), resign(&with(&real.claims, json!({"exp": now() + 10 * 365 * 86400})))),
            ("tenant changed".into(), resign(&with(&real.claims, json!({"tenant": "other"})))),
            ("one bit of the signature".into(), format!("{}.{}.{}", parts[0], parts[1], b64e(&flipped))),
            ("signature cut".into(), format!("{}.{}.{}", parts[0], parts[1], &parts[2][..parts[2].len() / 2])),
            ("no signature".into(), format!("{}.{}.", parts[0], parts[1])),
            ("signature appended twice".into(), format!("{}{}", real.raw, parts[2])),
            ("a fourth part".into(), format!("{}.{}", real.raw, parts[2])),
            ("padding added".into(), format!("{}.{}=.{}", parts[0], parts[1], parts[2])),
        ]
    })
    .await;
}

#[tokio::test]
async fn expired_not_yet_valid_and_future_tokens_are_refused_even_correctly_signed() {
    let s = TestServer::start().await;
    let at = world(&s, "default");
    let key = s.signing_key("default").await;
    let t = now();
    forgery_refused(&s, &at, "a token outside its lifetime", |real| {
        let variants = [
            ("expired a second ago", json!({"exp": t - 1})),
            ("expired a day ago", json!({"exp": t - 86400, "iat": t - 90000})),
            ("exp 0", json!({"exp": 0})),
            ("exp negative", json!({"exp": -1})),
            ("exp a string", json!({"exp": (t + 3600).to_string()})),
            ("exp a float", json!({"exp": (t + 3600) as f64 + 0.5})),
            ("no exp", json!({"exp": null})),
            ("not before in an hour", json!({"nbf": t + 3600})),
            ("not before in a year", json!({"nbf": t + 365 * 86400, "exp": t + 366 * 86400})),
            ("issued in a day", json!({"iat": t + 86400})),
            ("issued in a hundred years", json!({"iat": t + 100 * 365 * 86400, "exp": t + 101 * 365 * 86400})),
        ];
        variants
            .into_iter()
            .map(|(name, change)| {
                let mut claims = with(&real.claims, change);
                if claims["exp"].is_null() {
                    claims.as_object_mut().map(|m| m.remove("exp"));
                }
                (name.to_owned(), sign_as(&key, &real.header, &claims))
            })
            .collect()
    })
    .await;
}
