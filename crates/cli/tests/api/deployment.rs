//! Nodes of one PostgreSQL database agree on the deployment's public URL, the base of every
//! default issuer: a node that would mint tokens the others refuse does not start silently.

use crate::harness::*;
use crate::pg::{Schema, master_key};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `tessera serve` on a fresh data dir with `env`, which must exit with an error within 30 s:
/// its stderr.
fn serve_is_refused(env: &[(&str, &str)]) -> String {
    let dir = unique_dir("refused");
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    scrub_env(&mut cmd);
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("spawn tessera serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tessera serve started although it should have refused");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success(), "a refused start exits with an error");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn discovered_issuer(node: &TestServer) -> String {
    let r = node.get("/.well-known/oauth-authorization-server").await;
    r.json["issuer"].as_str().expect("issuer").to_owned()
}

#[tokio::test]
async fn nodes_without_a_public_url_use_the_first_nodes_and_accept_each_others_tokens() {
    let schema = Schema::new("agree");
    let key = master_key();
    let env = [("TESSERA_DATABASE_URL", schema.url.as_str()), ("TESSERA_MASTER_KEY", key.as_str())];
    let a = TestServer::start_with_env(&env).await;
    let b = TestServer::start_with_env(&env).await;
    assert_ne!(a.base, b.base, "two listen addresses");
    assert_eq!(discovered_issuer(&a).await, a.base);
    assert_eq!(discovered_issuer(&b).await, a.base, "B takes the deployment's URL, recorded by A");
    assert!(b.server_log().contains("public_url is not set"), "B warns: {}", b.server_log());

    let (id, secret) = a.create_client("default", "client_credentials", None);
    let from_b = b.cc_token("default", &id, &secret, None).await;
    assert_eq!(decode_jwt(&from_b).claims["iss"], a.base.as_str());
    assert!(a.is_active("default", &from_b, Auth::Basic(&id, &secret)).await, "A accepts B's token");
    let from_a = a.cc_token("default", &id, &secret, None).await;
    assert!(b.is_active("default", &from_a, Auth::Basic(&id, &secret)).await, "B accepts A's token");
}

#[tokio::test]
async fn a_node_configured_with_another_public_url_is_refused_until_the_deployment_moves() {
    let schema = Schema::new("disagree");
    let key = master_key();
    let db = [("TESSERA_DATABASE_URL", schema.url.as_str()), ("TESSERA_MASTER_KEY", key.as_str())];
    let one = [&db[..], &[("TESSERA_PUBLIC_URL", "http://one.test")]].concat();
    let two = [&db[..], &[("TESSERA_PUBLIC_URL", "http://two.test")]].concat();
    let a = TestServer::start_with_env(&one).await;

    let err = serve_is_refused(&two);
    assert!(
        err.contains("http://one.test")
            && err.contains("http://two.test")
            && err.contains("tessera deployment public-url"),
        "the refusal names both URLs and the way out: {err}"
    );
    assert_eq!(a.cli_ok(&["deployment", "public-url"], None).trim(), "http://one.test");

    // Moving the deployment on purpose: then a node with the new URL starts, and one with the
    // old URL is the one refused.
    a.cli_ok(&["deployment", "public-url", "http://two.test"], None);
    let c = TestServer::start_with_env(&two).await;
    assert_eq!(discovered_issuer(&c).await, "http://two.test");
    let err = serve_is_refused(&one);
    assert!(err.contains("http://two.test"), "{err}");
}

#[tokio::test]
async fn a_configured_public_url_replaces_one_taken_from_a_listen_address() {
    let schema = Schema::new("replace");
    let key = master_key();
    let db = [("TESSERA_DATABASE_URL", schema.url.as_str()), ("TESSERA_MASTER_KEY", key.as_str())];
    let a = TestServer::start_with_env(&db).await;
    let listen = a.cli_ok(&["deployment", "public-url"], None);
    assert!(listen.contains(&a.base) && listen.contains("listen address"), "{listen}");

    let lb = [&db[..], &[("TESSERA_PUBLIC_URL", "http://lb.test")]].concat();
    let b = TestServer::start_with_env(&lb).await;
    assert_eq!(discovered_issuer(&b).await, "http://lb.test");
    assert!(b.server_log().contains("listen address"), "B warns that the issuers change: {}", b.server_log());
    assert_eq!(a.cli_ok(&["deployment", "public-url"], None).trim(), "http://lb.test");
}

#[tokio::test]
async fn sqlite_has_no_deployment_to_agree_with() {
    let a = TestServer::start().await;
    let o = a.cli(&["deployment", "public-url", "http://elsewhere.test"], None);
    assert!(!o.status.success(), "setting a deployment URL on SQLite is refused");
    assert!(o.stderr.contains("SQLite"), "{}", o.stderr);
}
