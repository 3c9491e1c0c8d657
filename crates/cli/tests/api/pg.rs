//! PostgreSQL for tests: a schema of its own per test (dropped at the end), and two
//! `tessera serve` nodes on it. Shared by the `api` and `attacks` suites.
#![allow(dead_code)]

use crate::harness::*;
use base64::Engine;
use std::process::Command;

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

pub fn psql(sql: &str) {
    let out = Command::new("psql").args([PG, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]).output().expect("run psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh master key (base64), to give every node of one deployment.
pub fn master_key() -> String {
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).expect("random");
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// Node A (which bootstraps the schema), then node B, with `more` settings for both; one
/// master key and one public URL (the load balancer's) for both, as a deployment has.
pub async fn two_nodes_with(tag: &str, more: &[(&str, &str)]) -> (Schema, TestServer, TestServer) {
    let schema = Schema::new(tag);
    let key = master_key();
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
