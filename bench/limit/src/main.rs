//! The limit: what one Ed25519 JWT costs on this machine with nothing else in the way.
//!
//! `tessera-bench-limit [ADDR]` (default 127.0.0.1:0; the bound address is printed on stdout)
//!
//! - `POST /oauth2/token`: answers every POST with a freshly signed Ed25519 JWT carrying the
//!   same claims, in the same order and of the same size, as a Tessera client_credentials
//!   token (iss, sub, aud, exp, iat, jti, client_id, tenant; header alg/kid/typ=at+jwt), in
//!   the same RFC 6749 JSON answer. No client authentication, no parsing of the body.
//! - `POST /oauth2/introspect`: the bare verifier. Takes `token=` from the form body, checks
//!   the header's alg and kid, verifies the Ed25519 signature, parses the claims, checks
//!   `exp`, and answers `{"active":true, ...claims}`. No client authentication.
//! - `GET /.well-known/jwks.json`: the precomputed JWK Set.
//! - `GET /readyz`: 200.
//!
//! The key is generated at start and parsed once.
//!
//! `tessera-bench-limit --argon2 [SECONDS]` (default 3) instead hashes a password with
//! Argon2id at Tessera's default parameters (19 MiB, 2 passes, 1 lane; the argon2 crate
//! Tessera uses) on one thread for that long, and prints the raw rate, the limit of the
//! password grant per core: `ARGON2 hashes=N seconds=S per_second=R cpu_ticks=T` (its CPU time,
//! in clock ticks).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

struct Limit {
    pair: Ed25519KeyPair,
    verifier: UnparsedPublicKey<Vec<u8>>,
    rng: SystemRandom,
    kid: String,
    /// base64url of `{"alg":"EdDSA","kid":"...","typ":"at+jwt"}`, computed once.
    header_b64: String,
    issuer: String,
    client_id: String,
    jwks: Bytes,
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn json_response(body: Vec<u8>) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

async fn token_post(State(l): State<Arc<Limit>>, _body: Bytes) -> Response {
    let mut jti = [0u8; 16];
    if l.rng.fill(&mut jti).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let iat = now();
    let payload = format!(
        r#"{{"iss":"{iss}","sub":"{cid}","aud":"{iss}","exp":{exp},"iat":{iat},"jti":"{jti}","client_id":"{cid}","tenant":"default"}}"#,
        iss = l.issuer,
        cid = l.client_id,
        exp = iat + 3600,
        jti = B64.encode(jti),
    );
    let mut jwt = String::with_capacity(l.header_b64.len() + payload.len() * 4 / 3 + 100);
    jwt.push_str(&l.header_b64);
    jwt.push('.');
    B64.encode_string(payload.as_bytes(), &mut jwt);
    let sig = l.pair.sign(jwt.as_bytes());
    jwt.push('.');
    B64.encode_string(sig.as_ref(), &mut jwt);
    let body = format!(r#"{{"access_token":"{jwt}","token_type":"Bearer","expires_in":3600}}"#);
    json_response(body.into_bytes())
}

fn verify(l: &Limit, token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let header: serde_json::Value = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "EdDSA" || header.get("kid")?.as_str()? != l.kid {
        return None;
    }
    let sig = B64.decode(s).ok()?;
    l.verifier.verify(&token.as_bytes()[..h.len() + 1 + p.len()], &sig).ok()?;
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&B64.decode(p).ok()?).ok()?;
    (claims.get("exp")?.as_i64()? > now()).then_some(claims)
}

async fn introspect_post(State(l): State<Arc<Limit>>, body: Bytes) -> Response {
    let form = std::str::from_utf8(&body).unwrap_or("");
    let token = form.split('&').find_map(|kv| kv.strip_prefix("token=")).unwrap_or("");
    let out = match verify(&l, token) {
        Some(claims) => {
            let mut m = serde_json::Map::new();
            m.insert("active".into(), true.into());
            m.extend(claims);
            serde_json::Value::Object(m)
        }
        None => serde_json::json!({"active": false}),
    };
    json_response(serde_json::to_vec(&out).unwrap_or_default())
}

async fn jwks_get(State(l): State<Arc<Limit>>) -> Response {
    let mut res = (StatusCode::OK, l.jwks.clone()).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    res
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--argon2") {
        let secs = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(3.0);
        return argon2_rate(secs);
    }
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| std::io::Error::other("keygen"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| std::io::Error::other("key parse"))?;
    let public = pair.public_key().as_ref().to_vec();
    let mut kid_raw = [0u8; 12];
    rng.fill(&mut kid_raw).map_err(|_| std::io::Error::other("rng"))?;
    let kid = B64.encode(kid_raw);
    let mut cid_raw = [0u8; 16];
    rng.fill(&mut cid_raw).map_err(|_| std::io::Error::other("rng"))?;
    let header = format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"at+jwt"}}"#);
    let jwks = serde_json::json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "x": B64.encode(&public), "kid": kid, "alg": "EdDSA", "use": "sig",
    }]});
    let limit = Arc::new(Limit {
        verifier: UnparsedPublicKey::new(&ED25519, public),
        pair,
        rng,
        header_b64: B64.encode(header),
        kid,
        issuer: format!("http://{local}"),
        client_id: B64.encode(cid_raw),
        jwks: Bytes::from(jwks.to_string()),
    });
    let app = Router::new()
        .route("/oauth2/token", post(token_post))
        .route("/oauth2/introspect", post(introspect_post))
        .route("/.well-known/jwks.json", get(jwks_get))
        .route("/readyz", get(|| async { "ready" }))
        .with_state(limit);
    println!("listening on {local}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// Hash for `secs` seconds on this thread, with a fresh salt each time as a sign-in's verify
/// would hash; print the rate.
fn argon2_rate(secs: f64) -> std::io::Result<()> {
    use argon2::{Algorithm, Argon2, Params, Version};
    let params = Params::new(19 * 1024, 2, 1, Some(32)).map_err(|e| std::io::Error::other(e.to_string()))?;
    let engine = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let rng = SystemRandom::new();
    let mut out = [0u8; 32];
    let mut salt = [0u8; 16];
    let start = std::time::Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        rng.fill(&mut salt).map_err(|_| std::io::Error::other("rng"))?;
        engine
            .hash_password_into(b"bench passphrase 0123", &salt, &mut out)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        n += 1;
    }
    let s = start.elapsed().as_secs_f64();
    // Also per CPU-second (the process's utime + stime, in clock ticks), which a shared
    // machine's stolen time does not skew, to compare with the node's CPU per sign-in.
    let cpu_ticks = cpu_ticks().unwrap_or(0);
    println!("ARGON2 hashes={n} seconds={s:.3} per_second={:.2} cpu_ticks={cpu_ticks}", n as f64 / s);
    Ok(())
}

/// This process's user + system CPU time so far, in clock ticks (Linux: `/proc/self/stat`).
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which is in parentheses and may hold spaces):
    // utime and stime are the 12th and 13th of them.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}
