//! Two `tessera serve` processes on one PostgreSQL database (stateless nodes): what one node
//! does, the other honours. Each test works in its own schema, dropped at the end.

use crate::harness::*;
use crate::pg::{Schema, two_nodes_with};
use std::time::{Duration, Instant};

/// Two nodes on a fresh schema ([`two_nodes_with`]).
async fn two_nodes(tag: &str) -> (Schema, TestServer, TestServer) {
    two_nodes_with(tag, &[]).await
}

#[tokio::test]
async fn a_revocation_at_one_node_is_refused_at_the_other_within_a_second() {
    let (_schema, a, b) = two_nodes("revoke").await;
    let (id, secret) = a.create_client("default", "client_credentials", None);
    let token = a.cc_token("default", &id, &secret, None).await;
    assert!(b.is_active("default", &token, Auth::Basic(&id, &secret)).await, "B accepts A's token");
    let r = a.revoke("default", &token, Auth::Basic(&id, &secret)).await;
    assert_eq!(r.status, 200);
    let start = Instant::now();
    while b.is_active("default", &token, Auth::Basic(&id, &secret)).await {
        assert!(start.elapsed() < Duration::from_secs(1), "B still accepts the token after 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("revocation reached node B after {:?}", start.elapsed());
}

#[tokio::test]
async fn one_refresh_token_presented_100_times_at_two_nodes_wins_once() {
    let (_schema, a, b) = two_nodes("race").await;
    a.create_user("default", "gina", "gina's long password");
    let (id, secret) = a.create_client("default", "password,refresh_token", None);
    let t = a.password_token("default", &id, &secret, "gina", "gina's long password", None).await;
    let rt = t["refresh_token"].as_str().expect("refresh token").to_owned();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let url = if i % 2 == 0 { a.url("default", "/oauth2/token") } else { b.url("default", "/oauth2/token") };
        let (id, secret, rt) = (id.clone(), secret.clone(), rt.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().expect("client");
            let r = http
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", rt.as_str())])
                .send()
                .await
                .expect("send");
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (status, body)
        }));
    }
    let mut wins = 0;
    for t in tasks {
        let (status, body) = t.await.expect("task");
        match status {
            200 => wins += 1,
            400 => assert_eq!(body["error"], "invalid_grant", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(wins, 1, "exactly one of 100 presentations at two nodes succeeds");
}

#[tokio::test]
async fn a_key_rotated_through_one_node_is_published_and_used_by_both() {
    let (_schema, a, b) = two_nodes("rotate").await;
    let before: Vec<String> = kids(&b.jwks("default").await);
    a.rotate_key("default");
    let start = Instant::now();
    loop {
        let (ka, kb) = (kids(&a.jwks("default").await), kids(&b.jwks("default").await));
        if ka.len() == before.len() + 1 && ka == kb {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(2), "JWKS differ: {ka:?} vs {kb:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (id, secret) = a.create_client("default", "client_credentials", None);
    let token = b.cc_token("default", &id, &secret, None).await;
    let kid = decode_jwt(&token).header["kid"].as_str().expect("kid").to_owned();
    assert!(!before.contains(&kid), "node B signs with the rotated-in key");
}

fn kids(jwks: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> =
        jwks["keys"].as_array().expect("keys").iter().map(|k| k["kid"].as_str().expect("kid").to_owned()).collect();
    k.sort();
    k
}
