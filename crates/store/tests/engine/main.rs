//! The engine over the real stores, with a manual clock: rotation races, grace windows,
//! expiry, key rotation, and two engines sharing one database. Every test here runs against
//! both backends (`sqlite::*` and `pg::*`); `pg_nodes` holds the multi-node PostgreSQL tests.

mod audit;
mod browser;
mod deployment;
mod env;
mod faults;
mod limits;
mod mfa;
mod newtypes;
mod pg_nodes;

use audit::*;
use browser::*;
use deployment::*;
use faults::*;
use limits::*;
use mfa::*;
use newtypes::*;
use tessera_core::authority::Actor;

use env::{Env, Kind};
use std::sync::Arc;
use tessera_core::authority::Authority;
use tessera_core::authority::{NewClient, TenantPolicy};
use tessera_core::clock::SystemRng;
use tessera_core::grant::token_type;
use tessera_core::grant::{ClientAuth, Grant, TokenRequest};
use tessera_core::keys::{Alg, MasterKey};
use tessera_core::principal::{GrantType, Profile};
use tessera_core::secret::Secret;
use tessera_core::token::ClaimSet;
use tessera_core::token::Invalid;
use tessera_core::{ErrorKind, Settings};

/// Each named `async fn name(kind: Kind)` becomes `sqlite::name` and `pg::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::Sqlite).await
                }
            )*
        }
        mod pg {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::Pg).await
                }
            )*
        }
    };
}

on_both_backends!(
    a_deployment_setting_is_claimed_once_then_replaced_on_purpose,
    a_database_migrated_by_a_newer_version_is_refused,
    concurrent_presentations_of_one_refresh_token_succeed_exactly_once,
    rotations_arriving_together_each_stand_on_their_own_and_survive_a_reopen,
    grace_window_tolerates_a_second_tab_then_reuse_kills_the_family,
    without_grace_a_second_presentation_is_reuse,
    tokens_expire_by_the_injected_clock,
    rotated_key_is_published_before_it_signs_and_the_old_one_retires,
    a_second_engine_on_the_same_database_follows_changes,
    a_wrong_master_key_refuses_to_open,
    expired_revocations_are_purged,
    wrong_password_unknown_user_and_disabled_user_are_invalid_grant,
    device_flow_pending_slow_down_approve_once,
    device_flow_denied_expired_and_foreign_client,
    token_exchange_to_access_and_legacy_tokens,
    tenant_policy_limits_grants_and_lifetimes,
    totp_is_required_once_confirmed_and_each_step_works_once,
    recovery_codes_work_once_and_disable_turns_it_off,
    totp_secret_is_sealed_at_rest,
    api_key_lifecycle,
    failed_second_factors_count_towards_the_lockout,
    concurrent_reservations_pass_a_cap_exactly_as_often_as_it_allows,
    concurrent_wrong_passwords_are_checked_no_more_than_the_limit,
    successes_give_their_reservations_back,
    a_disabled_account_is_a_counted_wrong_password,
    device_look_ups_are_limited_and_tickets_bound,
    the_same_fault_is_the_same_error_kind_on_both_backends,
    refresh_grant_types_are_stored_by_their_short_names,
    names_that_break_the_rules_are_unknown,
    audit_pages_filters_access_and_retention,
    authorization_codes_expire_and_are_redeemed_once,
    browser_sessions_end_idle_at_their_end_and_at_logout,
    consent_is_remembered_per_client_and_scopes,
    a_refused_refresh_leaves_the_token_unused_and_another_client_cannot_use_it,
);

pub(crate) fn settings() -> Settings {
    Settings { public_url: "https://auth.example".into(), ..Settings::default() }
}

/// A tenant `t`, a user `alice`, and a confidential client allowed password + refresh.
pub(crate) async fn setup(auth: &Authority) -> ClientAuth {
    auth.create_tenant(&Actor::Operator, "t", Alg::EdDSA, None, None, None, vec![]).await.unwrap();
    auth.create_user(&Actor::Operator, "t", "alice", Secret::new("correct horse battery"), vec![], Profile::default())
        .await
        .unwrap();
    let mut spec = NewClient::new("t", "app", vec![GrantType::Password, GrantType::RefreshToken]);
    spec.scopes = vec!["read".into()];
    let (c, s) = auth.create_client(&Actor::Operator, spec).await.unwrap();
    ClientAuth::Basic { client_id: c.client_id.into(), secret: s.unwrap() }
}

pub(crate) fn password() -> TokenRequest {
    TokenRequest::new(Grant::Password {
        username: "alice".into(),
        password: Secret::new("correct horse battery"),
        otp: None,
    })
}

pub(crate) fn refresh(rt: &Secret) -> TokenRequest {
    TokenRequest::new(Grant::RefreshToken { refresh_token: rt.clone() })
}

/// The checks run inside the rotation's transaction: a scope the family lacks, or another
/// client presenting the token, is refused without using the token up.
async fn a_refused_refresh_leaves_the_token_unused_and_another_client_cannot_use_it(kind: Kind) {
    let env = Env::new(kind, "refused").await;
    let auth = env.engine(settings()).await.unwrap();
    let client = setup(&auth).await;
    let rt = auth.token("t", &client, password()).await.unwrap().refresh_token.unwrap();
    let mut wider = refresh(&rt);
    wider.scope = Some("read write".into());
    assert_eq!(auth.token("t", &client, wider).await.unwrap_err().kind, ErrorKind::InvalidScope);
    let spec = NewClient::new("t", "other", vec![GrantType::Password, GrantType::RefreshToken]);
    let (c, s) = auth.create_client(&Actor::Operator, spec).await.unwrap();
    let other = ClientAuth::Basic { client_id: c.client_id.into(), secret: s.unwrap() };
    assert_eq!(auth.token("t", &other, refresh(&rt)).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    // Neither refusal used it: its own client rotates it once, and a second use is reuse.
    let next = auth.token("t", &client, refresh(&rt)).await.unwrap().refresh_token.unwrap();
    assert_eq!(auth.token("t", &client, refresh(&rt)).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    assert_eq!(
        auth.token("t", &client, refresh(&next)).await.unwrap_err().kind,
        ErrorKind::InvalidGrant,
        "reuse ended the family"
    );
}

async fn concurrent_presentations_of_one_refresh_token_succeed_exactly_once(kind: Kind) {
    let env = Env::new(kind, "race").await;
    let auth = Arc::new(env.engine(settings()).await.unwrap());
    let client = setup(&auth).await;
    let rt = auth.token("t", &client, password()).await.unwrap().refresh_token.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (auth, client, rt) = (auth.clone(), client.clone(), rt.clone());
        tasks.push(tokio::spawn(async move { auth.token("t", &client, refresh(&rt)).await }));
    }
    let mut ok = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(issued) => ok.push(issued),
            Err(e) => assert_eq!(e.kind, ErrorKind::InvalidGrant, "{e}"),
        }
    }
    assert_eq!(ok.len(), 1, "exactly one presentation wins");
    // The losers were reuse: the family is dead, the winner's successor too.
    let successor = ok[0].refresh_token.clone().unwrap();
    let e = auth.token("t", &client, refresh(&successor)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidGrant);
    assert_eq!(auth.verify_access("t", &ok[0].access_token).unwrap_err(), Invalid::Revoked);
}

/// On SQLite, rotations that arrive together share one transaction (group commit): a reuse
/// in it, which revokes its family, must not undo or leak into the others, and every
/// rotation answered must be on disk.
async fn rotations_arriving_together_each_stand_on_their_own_and_survive_a_reopen(kind: Kind) {
    let env = Env::new(kind, "together").await;
    let auth = Arc::new(env.engine(settings()).await.unwrap());
    let client = setup(&auth).await;
    let (mut fresh, mut reused) = (Vec::new(), Vec::new());
    for i in 0..30 {
        let rt = auth.token("t", &client, password()).await.unwrap().refresh_token.unwrap();
        if i % 3 == 0 {
            let next = auth.token("t", &client, refresh(&rt)).await.unwrap().refresh_token.unwrap();
            reused.push((rt, next));
        } else {
            fresh.push(rt);
        }
    }
    let presented = fresh.iter().chain(reused.iter().map(|(old, _)| old));
    let tasks: Vec<_> = presented
        .map(|rt| {
            let (auth, client, rt) = (auth.clone(), client.clone(), rt.clone());
            tokio::spawn(async move { auth.token("t", &client, refresh(&rt)).await })
        })
        .collect();
    let mut successors = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(issued) if i < fresh.len() => successors.push(issued.refresh_token.unwrap()),
            Err(e) if i >= fresh.len() => assert_eq!(e.kind, ErrorKind::InvalidGrant, "{e}"),
            other => panic!("presentation {i}: {:?}", other.map(|_| "issued")),
        }
    }
    drop(auth);
    let auth = env.engine(settings()).await.unwrap();
    for rt in &successors {
        auth.token("t", &client, refresh(rt)).await.expect("a rotation answered is stored");
    }
    for (_, next) in &reused {
        let e = auth.token("t", &client, refresh(next)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidGrant, "a reuse answered revoked its family for good");
    }
}

async fn grace_window_tolerates_a_second_tab_then_reuse_kills_the_family(kind: Kind) {
    let env = Env::new(kind, "grace").await;
    let auth = env.engine(Settings { refresh_grace: 10, ..settings() }).await.unwrap();
    let client = setup(&auth).await;
    let a = auth.token("t", &client, password()).await.unwrap().refresh_token.unwrap();
    let b = auth.token("t", &client, refresh(&a)).await.unwrap().refresh_token.unwrap();
    env.clock.advance(5);
    let c = auth.token("t", &client, refresh(&a)).await.expect("within grace").refresh_token.unwrap();
    env.clock.advance(6);
    let e = auth.token("t", &client, refresh(&a)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidGrant);
    for rt in [&b, &c] {
        assert_eq!(auth.token("t", &client, refresh(rt)).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    }
}

async fn without_grace_a_second_presentation_is_reuse(kind: Kind) {
    let env = Env::new(kind, "nograce").await;
    let auth = env.engine(settings()).await.unwrap();
    let client = setup(&auth).await;
    let a = auth.token("t", &client, password()).await.unwrap().refresh_token.unwrap();
    let b = auth.token("t", &client, refresh(&a)).await.unwrap().refresh_token.unwrap();
    assert_eq!(auth.token("t", &client, refresh(&a)).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    assert_eq!(auth.token("t", &client, refresh(&b)).await.unwrap_err().kind, ErrorKind::InvalidGrant);
}

async fn tokens_expire_by_the_injected_clock(kind: Kind) {
    let env = Env::new(kind, "expiry").await;
    let auth = env.engine(Settings { access_ttl: 60, refresh_ttl: 600, ..settings() }).await.unwrap();
    let client = setup(&auth).await;
    let issued = auth.token("t", &client, password()).await.unwrap();
    assert_eq!(issued.expires_in, 60);
    assert!(auth.verify_access("t", &issued.access_token).is_ok());
    env.clock.advance(60);
    assert_eq!(auth.verify_access("t", &issued.access_token).unwrap_err(), Invalid::Expired);
    env.clock.advance(540);
    let e = auth.token("t", &client, refresh(issued.refresh_token.as_ref().unwrap())).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidGrant);
}

async fn rotated_key_is_published_before_it_signs_and_the_old_one_retires(kind: Kind) {
    let env = Env::new(kind, "rotate").await;
    let auth = env.engine(Settings { access_ttl: 100, key_prepublish: 30, ..settings() }).await.unwrap();
    let client = setup(&auth).await;
    // The served document (cached per tenant) is the JWK Set, before and after each change.
    let served = |auth: &Authority| serde_json::from_slice::<serde_json::Value>(&auth.jwks_json("t").unwrap()).unwrap();
    assert_eq!(served(&auth), auth.jwks("t").unwrap());
    let old = auth.token("t", &client, password()).await.unwrap().access_token;
    let new_kid = auth.rotate_key(&Actor::Operator, "t").await.unwrap().kid;
    let jwks = auth.jwks("t").unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "published at once");
    assert_eq!(served(&auth), jwks, "the served set follows a rotation");
    let kid_of = |tok: &str| auth.decode_any(tok).unwrap().0.kid.unwrap();
    let before = auth.token("t", &client, password()).await.unwrap().access_token;
    assert_ne!(kid_of(&before), new_kid, "not signing during pre-publication");
    env.clock.advance(30);
    let after = auth.token("t", &client, password()).await.unwrap().access_token;
    assert_eq!(kid_of(&after), new_kid);
    assert!(auth.verify_access("t", &before).is_ok(), "old key still verifies");
    env.clock.advance(100);
    assert_eq!(auth.jwks("t").unwrap()["keys"].as_array().unwrap().len(), 1, "old key retired");
    assert_eq!(served(&auth), auth.jwks("t").unwrap(), "the served set drops a retired key");
    assert!(auth.verify_access("t", &old).is_err());
}

async fn a_second_engine_on_the_same_database_follows_changes(kind: Kind) {
    let env = Env::new(kind, "follow").await;
    let a = env.engine(settings()).await.unwrap();
    let client = setup(&a).await;
    let b = env.engine(settings()).await.unwrap();
    let issued = a.token("t", &client, password()).await.unwrap();
    let claims = b.verify_access("t", &issued.access_token).unwrap();
    // Revoked through A: B refuses it after one sync.
    a.revoke_access(&claims).await.unwrap();
    b.sync().await.unwrap();
    assert_eq!(b.verify_access("t", &issued.access_token).unwrap_err(), Invalid::Revoked);
    // A client deleted through A stops working at B (which had it cached).
    b.authenticate_client("t", &client, None).await.unwrap();
    a.delete_client(&Actor::Operator, "t", client.client_id().unwrap()).await.unwrap();
    b.sync().await.unwrap();
    assert_eq!(b.authenticate_client("t", &client, None).await.unwrap_err().kind, ErrorKind::InvalidClient);
    // A key rotated through A is published by B, in the served (cached) document too.
    let served = |e: &Authority| serde_json::from_slice::<serde_json::Value>(&e.jwks_json("t").unwrap()).unwrap();
    assert_eq!(served(&b)["keys"].as_array().unwrap().len(), 1);
    a.rotate_key(&Actor::Operator, "t").await.unwrap();
    b.sync().await.unwrap();
    assert_eq!(b.jwks("t").unwrap()["keys"].as_array().unwrap().len(), 2);
    assert_eq!(served(&b), b.jwks("t").unwrap());
}

async fn a_wrong_master_key_refuses_to_open(kind: Kind) {
    let env = Env::new(kind, "master").await;
    let a = env.engine(settings()).await.unwrap();
    a.create_tenant(&Actor::Operator, "t", Alg::RS256, None, None, None, vec![]).await.unwrap();
    drop(a);
    let other = MasterKey::generate(&SystemRng).to_base64().to_string();
    let err = env.engine_with_key(settings(), &other).await.err().expect("must refuse");
    assert!(err.description.contains("master key"), "{}", err.description);
}

async fn expired_revocations_are_purged(kind: Kind) {
    let env = Env::new(kind, "purge").await;
    let auth = env.engine(Settings { access_ttl: 60, ..settings() }).await.unwrap();
    let client = setup(&auth).await;
    let issued = auth.token("t", &client, password()).await.unwrap();
    let claims = auth.verify_access("t", &issued.access_token).unwrap();
    auth.revoke_access(&claims).await.unwrap();
    assert_eq!(auth.revoked_count(), 2, "the token, and its session: its refresh family");
    env.clock.advance(61);
    assert!(auth.purge_expired().await.unwrap() >= 1);
    assert_eq!(auth.revoked_count(), 0);
}

async fn wrong_password_unknown_user_and_disabled_user_are_invalid_grant(kind: Kind) {
    let env = Env::new(kind, "users").await;
    let auth = env.engine(settings()).await.unwrap();
    let client = setup(&auth).await;
    let mut req = password();
    req.grant = Grant::Password { username: "alice".into(), password: Secret::new("wrong password!"), otp: None };
    assert_eq!(auth.token("t", &client, req.clone()).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    req.grant =
        Grant::Password { username: "nobody".into(), password: Secret::new("correct horse battery"), otp: None };
    assert_eq!(auth.token("t", &client, req).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    let rt = auth.token("t", &client, password()).await.unwrap().refresh_token.unwrap();
    auth.set_user_disabled(&Actor::Operator, "t", "alice", true).await.unwrap();
    // A disabled account is answered as a wrong password (no oracle), even with the right one.
    let e = auth.token("t", &client, password()).await.unwrap_err();
    assert_eq!((e.kind, e.description.as_str()), (ErrorKind::InvalidGrant, "invalid username or password"));
    assert_eq!(auth.token("t", &client, refresh(&rt)).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    // The refusal ended the session: enabling the account again does not bring it back.
    auth.set_user_disabled(&Actor::Operator, "t", "alice", false).await.unwrap();
    assert_eq!(auth.token("t", &client, refresh(&rt)).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    auth.token("t", &client, password()).await.unwrap();
    assert_eq!(
        auth.create_user(&Actor::Operator, "t", "alice", Secret::new("another password"), vec![], Profile::default())
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
}

/// A tenant `t`, user `alice`, and a confidential client allowed the device flow.
pub(crate) async fn device_setup(auth: &Authority) -> ClientAuth {
    auth.create_tenant(&Actor::Operator, "t", Alg::EdDSA, None, None, None, vec![]).await.unwrap();
    auth.create_user(&Actor::Operator, "t", "alice", Secret::new("correct horse battery"), vec![], Profile::default())
        .await
        .unwrap();
    let spec = NewClient::new("t", "tv", vec![GrantType::DeviceCode, GrantType::RefreshToken]);
    let (c, s) = auth.create_client(&Actor::Operator, spec).await.unwrap();
    ClientAuth::Basic { client_id: c.client_id.into(), secret: s.unwrap() }
}

pub(crate) fn poll(code: &Secret) -> TokenRequest {
    TokenRequest::new(Grant::DeviceCode { device_code: code.clone() })
}

async fn device_flow_pending_slow_down_approve_once(kind: Kind) {
    let env = Env::new(kind, "device").await;
    let auth = env.engine(Settings { device_interval: 5, device_ttl: 300, ..settings() }).await.unwrap();
    let client = device_setup(&auth).await;
    let d = auth.device_authorize("t", &client, None, ClaimSet::Standard, None).await.unwrap();
    assert_eq!(d.user_code.len(), 9, "shown as XXXX-XXXX");
    let kind = |r: Result<_, tessera_core::Error>| r.map(|_| ()).unwrap_err().kind;
    assert_eq!(kind(auth.token("t", &client, poll(&d.device_code)).await), ErrorKind::AuthorizationPending);
    env.clock.advance(1);
    assert_eq!(kind(auth.token("t", &client, poll(&d.device_code)).await), ErrorKind::SlowDown);
    // The interval grew to 10 s: 6 s later is still too soon.
    env.clock.advance(6);
    assert_eq!(kind(auth.token("t", &client, poll(&d.device_code)).await), ErrorKind::SlowDown);
    env.clock.advance(16);
    assert_eq!(kind(auth.token("t", &client, poll(&d.device_code)).await), ErrorKind::AuthorizationPending);
    // Another user's code typed in lower case with the dash still works.
    auth.device_decide("t", &d.user_code.to_lowercase(), "alice", true).await.unwrap();
    let issued = auth.token("t", &client, poll(&d.device_code)).await.unwrap();
    assert_eq!(auth.verify_access("t", &issued.access_token).unwrap().username.as_deref(), Some("alice"));
    assert!(issued.refresh_token.is_some());
    assert_eq!(kind(auth.token("t", &client, poll(&d.device_code)).await), ErrorKind::InvalidGrant, "used once");
}

async fn device_flow_denied_expired_and_foreign_client(kind: Kind) {
    let env = Env::new(kind, "device2").await;
    let auth = env.engine(Settings { device_interval: 1, device_ttl: 60, ..settings() }).await.unwrap();
    let client = device_setup(&auth).await;
    let kind = |r: Result<_, tessera_core::Error>| r.map(|_| ()).unwrap_err().kind;
    let denied = auth.device_authorize("t", &client, None, ClaimSet::Standard, None).await.unwrap();
    auth.device_decide("t", &denied.user_code, "alice", false).await.unwrap();
    assert_eq!(kind(auth.token("t", &client, poll(&denied.device_code)).await), ErrorKind::AccessDenied);
    assert!(auth.device_decide("t", &denied.user_code, "alice", true).await.is_err(), "decided once");
    assert!(auth.device_decide("t", "BCDF-GHJK", "alice", true).await.is_err(), "unknown code");
    let late = auth.device_authorize("t", &client, None, ClaimSet::Standard, None).await.unwrap();
    assert!(auth.device_decide("t", &late.user_code, "nobody", true).await.is_err(), "unknown user");
    env.clock.advance(61);
    assert_eq!(kind(auth.token("t", &client, poll(&late.device_code)).await), ErrorKind::ExpiredToken);
    assert!(auth.device_decide("t", &late.user_code, "alice", true).await.is_err(), "expired");
    // A client that is not allowed the device flow cannot start one.
    let (c, s) = auth
        .create_client(&Actor::Operator, NewClient::new("t", "other", vec![GrantType::ClientCredentials]))
        .await
        .unwrap();
    let other = ClientAuth::Basic { client_id: c.client_id.into(), secret: s.unwrap() };
    let refused = auth.device_authorize("t", &other, None, ClaimSet::Standard, None).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::UnauthorizedClient);
}

async fn token_exchange_to_access_and_legacy_tokens(kind: Kind) {
    let env = Env::new(kind, "exchange").await;
    let auth = env.engine(settings()).await.unwrap();
    let client = setup(&auth).await;
    let (c, s) =
        auth.create_client(&Actor::Operator, NewClient::new("t", "svc", vec![GrantType::TokenExchange])).await.unwrap();
    let exchanger = ClientAuth::Basic { client_id: c.client_id.into(), secret: s.unwrap() };
    let subject = auth.token("t", &client, password()).await.unwrap();
    let exchange = |requested: Option<&str>| {
        TokenRequest::new(Grant::TokenExchange {
            subject_token: Secret::new(subject.access_token.clone()),
            subject_token_type: token_type::ACCESS_TOKEN.into(),
            requested_token_type: requested.map(str::to_owned),
        })
    };
    let jwt = auth.token("t", &exchanger, exchange(None)).await.unwrap();
    assert_eq!(jwt.issued_token_type, Some(token_type::ACCESS_TOKEN));
    let claims = auth.verify_access("t", &jwt.access_token).unwrap();
    assert_eq!(claims.username.as_deref(), Some("alice"));
    assert!(claims.exp <= subject.expires_at, "never outlives its subject");
    let legacy = auth.token("t", &exchanger, exchange(Some(token_type::LEGACY))).await.unwrap();
    assert!(legacy.access_token.starts_with("tsl_"));
    let seen = auth.introspect("t", &exchanger, &legacy.access_token, None).await.unwrap();
    assert!(seen.active);
    assert_eq!(seen.username.as_deref(), Some("alice"));
    assert!(auth.revoke_by_possession("t", &legacy.access_token).await.unwrap().is_some());
    assert!(!auth.introspect("t", &exchanger, &legacy.access_token, None).await.unwrap().active);
    // A revoked subject cannot be exchanged.
    auth.revoke_access(&auth.verify_access("t", &subject.access_token).unwrap()).await.unwrap();
    assert_eq!(auth.token("t", &exchanger, exchange(None)).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    // A client without the grant is refused.
    assert_eq!(auth.token("t", &client, exchange(None)).await.unwrap_err().kind, ErrorKind::UnauthorizedClient);
}

async fn tenant_policy_limits_grants_and_lifetimes(kind: Kind) {
    let env = Env::new(kind, "policy").await;
    let auth = env.engine(settings()).await.unwrap();
    let client = setup(&auth).await;
    let policy = TenantPolicy {
        access_ttl: Some(120),
        refresh_ttl: None,
        allowed_grants: Some(vec![GrantType::RefreshToken]),
        ..Default::default()
    };
    auth.update_tenant_policy(&Actor::Operator, "t", policy).await.unwrap();
    let e = auth.token("t", &client, password()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnsupportedGrantType);
    auth.update_tenant_policy(
        &Actor::Operator,
        "t",
        TenantPolicy { allowed_grants: Some(vec![GrantType::Password]), ..Default::default() },
    )
    .await
    .unwrap();
    let issued = auth.token("t", &client, password()).await.unwrap();
    assert_eq!(issued.expires_in, 120);
    assert!(issued.refresh_token.is_none(), "refresh is not allowed by the tenant any more");
}
