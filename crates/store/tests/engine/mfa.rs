//! Two-factor authentication and API keys, with the injected clock.

use super::*;
use crate::env::{Kind, T0};
use tessera_core::authority::Actor;
use tessera_core::clock::Clock;
use tessera_core::totp;

/// Enrol and confirm alice's TOTP; returns the raw secret and the recovery codes.
async fn enrol(auth: &Authority, env: &Env) -> (Vec<u8>, Vec<String>) {
    let e = auth.totp_enroll(&Actor::Operator, "t", "alice").await.unwrap();
    assert!(e.otpauth_uri.starts_with("otpauth://totp/"));
    let raw = base32_decode(&e.secret_base32);
    let codes = auth.totp_confirm(&Actor::Operator, "t", "alice", &totp::code_at(&raw, env.clock.now())).await.unwrap();
    (raw, codes)
}

fn base32_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut acc, mut out) = (0u32, 0u64, Vec::new());
    for c in s.bytes().filter(|c| *c != b'=') {
        acc = (acc << 5) | alphabet.iter().position(|a| *a == c).unwrap() as u64;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn with_otp(code: &str) -> TokenRequest {
    TokenRequest::new(Grant::Password {
        username: "alice".into(),
        password: Secret::new("correct horse battery"),
        otp: Some(Secret::new(code)),
    })
}

pub(crate) async fn totp_is_required_once_confirmed_and_each_step_works_once(kind: Kind) {
    let env = Env::new(kind, "totp").await;
    let auth = env.engine(settings()).await.unwrap();
    let client = setup(&auth).await;
    let e = auth.totp_enroll(&Actor::Operator, "t", "alice").await.unwrap();
    // Enrolled but not confirmed: not enforced yet.
    auth.token("t", &client, password()).await.expect("not enforced before confirmation");
    let raw = base32_decode(&e.secret_base32);
    let right = totp::code_at(&raw, env.clock.now());
    let wrong: String = right.chars().map(|c| if c == '9' { '0' } else { (c as u8 + 1) as char }).collect();
    assert_eq!(
        auth.totp_confirm(&Actor::Operator, "t", "alice", &wrong).await.unwrap_err().kind,
        ErrorKind::InvalidGrant
    );
    let first = totp::code_at(&raw, env.clock.now());
    let codes = auth.totp_confirm(&Actor::Operator, "t", "alice", &first).await.unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(auth.token("t", &client, password()).await.unwrap_err().kind, ErrorKind::MfaRequired);
    // The confirmation code's step is spent: replaying it fails.
    assert_eq!(auth.token("t", &client, with_otp(&first)).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    env.clock.advance(30);
    let next = totp::code_at(&raw, env.clock.now());
    auth.token("t", &client, with_otp(&next)).await.expect("fresh code");
    assert_eq!(auth.token("t", &client, with_otp(&next)).await.unwrap_err().kind, ErrorKind::InvalidGrant, "replay");
    // One step of skew either way, no more.
    env.clock.advance(30);
    let late = totp::code_at(&raw, env.clock.now() - 30);
    assert_eq!(late, next, "the previous step's code is the one just used");
    env.clock.advance(30);
    let ahead = totp::code_at(&raw, env.clock.now() + 30);
    auth.token("t", &client, with_otp(&ahead)).await.expect("one step ahead is accepted");
    let far = totp::code_at(&raw, env.clock.now() + 120);
    assert_eq!(auth.token("t", &client, with_otp(&far)).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    assert_eq!(auth.token("t", &client, with_otp("12345x")).await.unwrap_err().kind, ErrorKind::InvalidGrant);
}

pub(crate) async fn recovery_codes_work_once_and_disable_turns_it_off(kind: Kind) {
    let env = Env::new(kind, "recovery").await;
    let auth = env.engine(settings()).await.unwrap();
    let client = setup(&auth).await;
    let (_, codes) = enrol(&auth, &env).await;
    auth.token("t", &client, with_otp(&codes[3].to_uppercase())).await.expect("recovery code, any case");
    assert_eq!(auth.token("t", &client, with_otp(&codes[3])).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    auth.token("t", &client, with_otp(&codes[4])).await.expect("another code");
    // A second enrolment is refused while enabled; disabling removes the requirement.
    assert_eq!(auth.totp_enroll(&Actor::Operator, "t", "alice").await.unwrap_err().kind, ErrorKind::Conflict);
    auth.totp_disable(&Actor::Operator, "t", "alice").await.unwrap();
    auth.token("t", &client, password()).await.expect("no second factor any more");
    auth.token("t", &client, with_otp(&codes[5])).await.expect("otp ignored when off");
}

pub(crate) async fn totp_secret_is_sealed_at_rest(kind: Kind) {
    let env = Env::new(kind, "sealed").await;
    let auth = env.engine(settings()).await.unwrap();
    setup(&auth).await;
    let e = auth.totp_enroll(&Actor::Operator, "t", "alice").await.unwrap();
    let user = auth.get_user(&Actor::Operator, "t", "alice").await.unwrap();
    let stored = user.totp.sealed_secret.expect("stored");
    let raw = base32_decode(&e.secret_base32);
    assert!(!stored.windows(raw.len()).any(|w| w == raw.as_slice()), "the raw secret is not in the row");
}

pub(crate) async fn api_key_lifecycle(kind: Kind) {
    let env = Env::new(kind, "apikeys").await;
    let auth = env.engine(settings()).await.unwrap();
    setup(&auth).await;
    let (k, key) =
        auth.create_api_key(&Actor::Operator, "t", "alice", "ci", Some(3600), vec!["read".into()]).await.unwrap();
    assert!(key.expose().starts_with("tsk_"));
    let (user, found) = auth.authenticate_api_key(Some("t"), key.expose(), None).await.unwrap();
    assert_eq!((user.username.as_str(), found.id.as_str()), ("alice", k.id.as_str()));
    assert_eq!(found.scopes, vec!["read".to_owned()]);
    let listed = auth.list_api_keys(&Actor::Operator, "t", Some("alice")).await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(T0), "use is recorded");
    // Another tenant, a wrong key, expiry, revocation, a disabled user: all refused.
    assert_eq!(
        auth.authenticate_api_key(Some("other"), key.expose(), None).await.unwrap_err().kind,
        ErrorKind::InvalidToken
    );
    assert!(auth.authenticate_api_key(None, "tsk_nope", None).await.is_err());
    env.clock.advance(3600);
    assert!(auth.authenticate_api_key(None, key.expose(), None).await.is_err(), "expired");
    let (k2, key2) = auth.create_api_key(&Actor::Operator, "t", "alice", "", None, vec![]).await.unwrap();
    auth.authenticate_api_key(None, key2.expose(), None).await.unwrap();
    auth.revoke_api_key(&Actor::Operator, "t", &k2.id).await.unwrap();
    assert!(auth.authenticate_api_key(None, key2.expose(), None).await.is_err(), "revoked");
    assert_eq!(auth.revoke_api_key(&Actor::Operator, "t", &k2.id).await.unwrap_err().kind, ErrorKind::NotFound);
    let (_, key3) = auth.create_api_key(&Actor::Operator, "t", "alice", "", None, vec![]).await.unwrap();
    auth.set_user_disabled(&Actor::Operator, "t", "alice", true).await.unwrap();
    assert!(auth.authenticate_api_key(None, key3.expose(), None).await.is_err(), "disabled user");
    assert!(auth.create_api_key(&Actor::Operator, "t", "alice", "", None, vec![]).await.is_err());
    assert!(auth.create_api_key(&Actor::Operator, "t", "nobody", "", None, vec![]).await.is_err());
}

pub(crate) async fn failed_second_factors_count_towards_the_lockout(kind: Kind) {
    let env = Env::new(kind, "mfa-lockout").await;
    let limits = tessera_core::throttle::Limits { per_user: 3, per_origin: 100, window: 60, ..Default::default() };
    let auth = env.engine(Settings { limits, ..settings() }).await.unwrap();
    let client = setup(&auth).await;
    enrol(&auth, &env).await;
    for _ in 0..3 {
        assert_eq!(auth.token("t", &client, with_otp("000001")).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    }
    // Right password, any code: locked.
    assert_eq!(auth.token("t", &client, with_otp("000002")).await.unwrap_err().kind, ErrorKind::RateLimited);
}
