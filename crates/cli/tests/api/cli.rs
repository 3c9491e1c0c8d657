//! The admin CLI: bad input fails cleanly; `token decode` checks signatures.

use serde_json::Value;

use crate::harness::{CliOut, TestServer, assert_cli_error, b64e, decode_jwt, signing_input};

const PW: &str = "correct horse battery";

#[tokio::test]
async fn cli_unknown_tenant_is_an_error() {
    let s = TestServer::start().await;
    let pw = format!("{PW}\n");
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["user", "create", "--tenant", "nope", "--username", "u1", "--password-stdin"], Some(&pw)),
        (&["user", "list", "--tenant", "nope"], None),
        (&["client", "create", "--tenant", "nope", "--name", "c", "--grant", "client_credentials", "--json"], None),
        (&["client", "list", "--tenant", "nope"], None),
        (&["key", "rotate", "--tenant", "nope"], None),
        (&["key", "list", "--tenant", "nope"], None),
    ];
    for (args, stdin) in cases {
        let o = s.cli(args, *stdin);
        assert_cli_error(&o, &args.join(" "));
    }
}

#[tokio::test]
async fn cli_ids_may_begin_with_a_hyphen() {
    // Ids are base64url: one in 64 begins with `-`, which must not be read as a flag.
    let s = TestServer::start().await;
    let cases: &[&[&str]] = &[
        &["apikey", "revoke", "--tenant", "default", "-MlmV4J-BSHz"],
        &["client", "delete", "--tenant", "default", "-NoSuchClient"],
        &["token", "decode", "-not.a.token"],
        &["key", "retire", "--tenant", "default", "-NoSuchKid"],
    ];
    for (what, o) in cli_errors(&s, cases) {
        assert!(!o.stderr.contains("unexpected argument"), "{what}: read as a flag: {}", o.stderr);
    }
    // A filter by such an id finds nothing here rather than failing.
    for filter in ["--actor", "--subject"] {
        let out = s.cli_ok(&["audit", "--json", filter, "-u1p6pRA4W1_XVH9FoZ65w"], None);
        let page: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(page["events"], serde_json::json!([]), "{filter}: {out}");
    }
}

/// Runs each command, which must fail with one `error: ` line; returns what each printed.
fn cli_errors(s: &TestServer, cases: &[&[&str]]) -> Vec<(String, CliOut)> {
    cases
        .iter()
        .map(|args| {
            let (what, o) = (args.join(" "), s.cli(args, None));
            assert_cli_error(&o, &what);
            (what, o)
        })
        .collect()
}

#[tokio::test]
async fn cli_duplicates_are_errors() {
    let s = TestServer::start().await;
    s.create_user("default", "alice", PW);
    let o = s.cli(
        &["user", "create", "--tenant", "default", "--username", "alice", "--password-stdin"],
        Some(&format!("{PW}2\n")),
    );
    assert_cli_error(&o, "duplicate user");
    s.create_tenant("acme", &[]);
    let o = s.cli(&["tenant", "create", "acme"], None);
    assert_cli_error(&o, "duplicate tenant");
    let o = s.cli(&["user", "disable", "--tenant", "default", "--username", "ghost"], None);
    assert_cli_error(&o, "disable unknown user");
}

#[tokio::test]
async fn cli_weak_password_is_an_error() {
    let s = TestServer::start().await;
    for (what, input) in [
        ("short password", Some("short\n")),
        ("9 chars", Some("123456789\n")),
        ("empty password", Some("\n")),
        ("no stdin", Some("")),
    ] {
        let o = s.cli(&["user", "create", "--tenant", "default", "--username", "weak", "--password-stdin"], input);
        assert_cli_error(&o, what);
    }
    // None of them created the user.
    s.create_user("default", "weak", PW);
}

#[tokio::test]
async fn cli_malformed_flags_are_errors() {
    let s = TestServer::start().await;
    let cases: &[&[&str]] = &[
        &["tenant", "create", "t1", "--alg", "HS999"],
        &["tenant", "create", "t2", "--access-ttl", "abc"],
        &["tenant", "create", "t3", "--access-ttl", "-5"],
        &["client", "create", "--tenant", "default", "--name", "c", "--grant", "bogus_grant", "--json"],
        &["tenant", "frobnicate"],
    ];
    cli_errors(&s, cases);
}

#[tokio::test]
async fn token_decode_reports_signature_validity() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read write"));
    let tok = s.cc_token("default", &id, &secret, Some("read")).await;
    let jwt = decode_jwt(&tok);

    let out = s.cli_ok(&["token", "decode", &tok], None);
    let v: Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("token decode printed non-JSON ({e}): {out}"));
    assert_eq!(v["signature_valid"], true, "real token: {v}");
    assert_eq!(v["header"], jwt.header, "{v}");
    assert_eq!(v["claims"], jwt.claims, "{v}");

    let mut claims = jwt.claims.clone();
    claims["scope"] = serde_json::json!("read write admin");
    let tampered = format!("{}.{}", signing_input(&jwt.header, &claims), b64e(&jwt.signature));
    let out = s.cli_ok(&["token", "decode", &tampered], None);
    let v: Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("token decode printed non-JSON ({e}): {out}"));
    assert_eq!(v["signature_valid"], false, "tampered token: {v}");
    assert_eq!(v["claims"]["scope"], "read write admin", "{v}");
}
