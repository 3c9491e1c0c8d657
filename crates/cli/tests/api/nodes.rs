//! Two `tessera serve` processes on one PostgreSQL database (stateless nodes): what one node
//! does, the other honours. Each test works in its own schema, dropped at the end.

use crate::harness::*;
use base64::Engine;
use std::process::Command;
use std::time::{Duration, Instant};

pub const PG: &str = "postgres://postgres@127.0.0.1:5432/test";

pub struct Schema {
    pub name: String,
    pub url: String,
}

impl Schema {
    pub fn new(tag: &str) -> Schema {
        let name = format!("tessera_n_{tag}_{}_{}", std::process::id(), now() % 100_000);
        psql(&format!("CREATE SCHEMA \"{name}\""));
        let url = format!("{PG}?options=-csearch_path%3D{name}");
        Schema { name, url }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        psql(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
    }
}

fn psql(sql: &str) {
    let out = Command::new("psql").args([PG, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]).output().expect("run psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Node A (which bootstraps the schema), then node B; one master key and one public URL
/// (the load balancer's) for both, as a deployment has.
async fn two_nodes(tag: &str) -> (Schema, TestServer, TestServer) {
    two_nodes_with(tag, &[]).await
}

/// [`two_nodes`], with more settings for both.
pub(crate) async fn two_nodes_with(tag: &str, more: &[(&str, &str)]) -> (Schema, TestServer, TestServer) {
    let schema = Schema::new(tag);
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).expect("random");
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let env = [
        ("TESSERA_DATABASE_URL", schema.url.as_str()),
        ("TESSERA_MASTER_KEY", key.as_str()),
        ("TESSERA_PUBLIC_URL", "http://tessera.test"),
    ];
    let env = [&env[..], more].concat();
    let a = TestServer::start_with_env(&env).await;
    let b = TestServer::start_with_env(&env).await;
    (schema, a, b)
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
