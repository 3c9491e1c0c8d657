//! The browser flow's state in the real stores, with the manual clock: authorization codes
//! expire and are redeemed once (also when two redemptions race), browser sessions end when
//! idle, at their absolute end and at logout, and consent is remembered per client and scopes.

use super::env::{Env, Kind};
use super::settings;
use tessera_core::ErrorKind;
use tessera_core::Settings;
use tessera_core::authority::{
    Actor, Authority, Authorization, AuthorizeRequest, NewClient, SignInStep, browser::s256,
};
use tessera_core::grant::{ClientAuth, Grant, TokenRequest};
use tessera_core::keys::Alg;
use tessera_core::principal::{GrantType, Profile};
use tessera_core::secret::Secret;
use tessera_core::store::BrowserSession;

const CB: &str = "https://app.example/cb";
const VERIFIER: &str = "a-verifier-of-more-than-forty-three-characters-0123456789";

/// A tenant `t` with user alice and a public code-flow client; returns its id.
async fn setup(auth: &Authority) -> String {
    auth.create_tenant(&Actor::Operator, "t", Alg::EdDSA, None, None, None, vec![]).await.unwrap();
    let pw = Secret::new("correct horse battery");
    auth.create_user(&Actor::Operator, "t", "alice", pw, vec![], Profile::default()).await.unwrap();
    let mut spec = NewClient::new("t", "web", vec![GrantType::AuthorizationCode, GrantType::RefreshToken]);
    spec.public = true;
    spec.redirect_uris = vec![CB.to_owned()];
    let (c, _) = auth.create_client(&Actor::Operator, spec).await.unwrap();
    c.client_id.to_string()
}

async fn request(auth: &Authority, client_id: &str, scope: &str) -> Authorization {
    let req = AuthorizeRequest {
        client_id: Some(client_id.to_owned()),
        redirect_uri: Some(CB.to_owned()),
        response_type: Some("code".to_owned()),
        scope: Some(scope.to_owned()),
        code_challenge: Some(s256(VERIFIER)),
        code_challenge_method: Some("S256".to_owned()),
        ..AuthorizeRequest::default()
    };
    auth.authorize_request("t", req).await.unwrap()
}

async fn sign_in(auth: &Authority) -> (Secret, BrowserSession) {
    match auth.browser_sign_in("t", "alice", Secret::new("correct horse battery"), None).await.unwrap() {
        SignInStep::Done(cookie, session) => (cookie, session),
        other => panic!("alice has no second factor: {}", matches!(other, SignInStep::SecondFactor { .. })),
    }
}

fn redeem(client_id: &str, code: &Secret) -> (ClientAuth, TokenRequest) {
    let grant = Grant::AuthorizationCode {
        code: code.clone(),
        redirect_uri: Some(CB.to_owned()),
        code_verifier: Some(Secret::new(VERIFIER)),
    };
    (ClientAuth::None { client_id: client_id.to_owned() }, TokenRequest::new(grant))
}

pub(crate) async fn authorization_codes_expire_and_are_redeemed_once(kind: Kind) {
    let env = Env::new(kind, "codes").await;
    let auth = env.engine(settings()).await.unwrap();
    let id = setup(&auth).await;
    let req = request(&auth, &id, "openid").await;
    let (_, session) = sign_in(&auth).await;

    // 60 s to redeem it.
    let late = auth.issue_code(&req, &session).await.unwrap();
    env.clock.advance(61);
    let (client, token_req) = redeem(&id, &late);
    let e = auth.token("t", &client, token_req).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidGrant, "expired code: {e}");

    // Two redemptions at once: one wins, and the other revokes what the winner got.
    let code = auth.issue_code(&req, &session).await.unwrap();
    let (c1, r1) = redeem(&id, &code);
    let (c2, r2) = redeem(&id, &code);
    let (a, b) = tokio::join!(auth.token("t", &c1, r1), auth.token("t", &c2, r2));
    let won: Vec<_> = [a, b].into_iter().filter_map(Result::ok).collect();
    assert_eq!(won.len(), 1, "exactly one redemption succeeds");
    let issued = &won[0];
    assert!(issued.id_token.is_some());
    assert!(auth.verify_access("t", &issued.access_token).is_err(), "the winner's access token is revoked");
    let refresh = issued.refresh_token.clone().expect("refresh token");
    let e = auth.token("t", &client, TokenRequest::new(Grant::RefreshToken { refresh_token: refresh })).await;
    assert_eq!(e.unwrap_err().kind, ErrorKind::InvalidGrant, "the winner's refresh token is revoked");
}

pub(crate) async fn browser_sessions_end_idle_at_their_end_and_at_logout(kind: Kind) {
    let env = Env::new(kind, "sessions").await;
    let auth = env.engine(Settings { session_idle: 100, session_ttl: 250, ..settings() }).await.unwrap();
    setup(&auth).await;
    let (idle, _) = sign_in(&auth).await;
    assert!(auth.browser_session("t", Some(idle.expose())).await.unwrap().is_some());
    assert!(auth.browser_session("other", Some(idle.expose())).await.unwrap().is_none(), "another tenant's");
    env.clock.advance(101);
    assert!(auth.browser_session("t", Some(idle.expose())).await.unwrap().is_none(), "idle");

    let (busy, _) = sign_in(&auth).await;
    for _ in 0..2 {
        env.clock.advance(90);
        assert!(auth.browser_session("t", Some(busy.expose())).await.unwrap().is_some(), "used: still live");
    }
    env.clock.advance(80);
    assert!(auth.browser_session("t", Some(busy.expose())).await.unwrap().is_none(), "past its absolute end");

    let (cookie, s) = sign_in(&auth).await;
    assert!(auth.end_browser_session("t", &s.sid).await.unwrap());
    assert!(auth.browser_session("t", Some(cookie.expose())).await.unwrap().is_none(), "logged out");
    assert!(!auth.end_browser_session("t", &s.sid).await.unwrap(), "once");
}

pub(crate) async fn consent_is_remembered_per_client_and_scopes(kind: Kind) {
    let env = Env::new(kind, "consent").await;
    let auth = env.engine(settings()).await.unwrap();
    let id = setup(&auth).await;
    let (_, session) = sign_in(&auth).await;
    let narrow = request(&auth, &id, "openid").await;
    let wide = request(&auth, &id, "openid profile").await;
    assert!(auth.consent_needed(&narrow, &session).await.unwrap());
    auth.remember_consent(&narrow, &session).await.unwrap();
    assert!(!auth.consent_needed(&narrow, &session).await.unwrap());
    assert!(auth.consent_needed(&wide, &session).await.unwrap(), "a new scope is asked for");
    auth.remember_consent(&wide, &session).await.unwrap();
    assert!(!auth.consent_needed(&narrow, &session).await.unwrap(), "the union is remembered");
    assert!(!auth.consent_needed(&wide, &session).await.unwrap());
}
