//! Access tokens: RFC 9068 JWT claims, minting, and strict verification.

use crate::error::{Error, Result};
use crate::keys::{KeyRing, SigningKey};
use crate::principal::GrantType;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The claims of an access token (RFC 9068 plus ours); fronts add theirs in `extra`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// The client the token was issued to (absent only where a front's API lets a user
    /// sign in without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub tenant: String,
    /// The user the token speaks for; absent for client (machine) tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// When the user authenticated (OpenID Connect `auth_time`); user tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// How the user authenticated (RFC 8176 values: `pwd`, `otp`, plus `apikey`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The session the token belongs to, when it is not the token itself: a refresh family,
    /// or the token another token was minted from. Revoking a token ends its session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The API key the chain began with; revoking the key ends every token minted from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// The latest expiry any token minted from this one may have (the earliest expiry of its
    /// chain); absent on a token a person or client signed in for directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_exp: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AccessClaims {
    /// The session this token belongs to: its `sid`, else the token itself.
    pub fn session(&self) -> &str {
        self.sid.as_deref().unwrap_or(&self.jti)
    }

    /// Whether the token has the audience `aud`.
    pub fn is_for(&self, aud: &str) -> bool {
        self.aud == aud
    }
}

/// How the holder of a token authenticated: carried unchanged by every token minted from
/// it (token exchange, a front minting its own token from a bearer token), so that no chain
/// of tokens turns a weaker or shorter-lived sign-in into a stronger or longer one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Provenance {
    pub auth_time: Option<i64>,
    pub amr: Vec<String>,
    pub sid: Option<String>,
    pub api_key_id: Option<String>,
    pub session_exp: Option<i64>,
}

/// `amr` values (RFC 8176), and ours for API keys.
pub mod amr {
    pub const PASSWORD: &str = "pwd";
    pub const OTP: &str = "otp";
    pub const API_KEY: &str = "apikey";
}

impl Provenance {
    /// A person who just signed in with a password (and a one-time code, with `otp`).
    pub fn sign_in(now: i64, otp: bool) -> Self {
        let mut amr = vec![amr::PASSWORD.to_owned()];
        if otp {
            amr.push(amr::OTP.to_owned());
        }
        Provenance { auth_time: Some(now), amr, ..Provenance::default() }
    }

    /// A person acting through an API key.
    pub fn api_key(now: i64, key_id: &str) -> Self {
        Provenance {
            auth_time: Some(now),
            amr: vec![amr::API_KEY.to_owned()],
            api_key_id: Some(key_id.to_owned()),
            ..Provenance::default()
        }
    }

    /// What a token minted from `parent` inherits: its authentication facts, its session,
    /// and an expiry no later than the parent's.
    pub fn inherited(parent: &AccessClaims) -> Self {
        Provenance {
            auth_time: parent.auth_time,
            amr: parent.amr.clone(),
            sid: Some(parent.session().to_owned()),
            api_key_id: parent.api_key_id.clone(),
            session_exp: Some(parent.session_exp.map_or(parent.exp, |s| s.min(parent.exp))),
        }
    }

    pub fn has(&self, method: &str) -> bool {
        self.amr.iter().any(|m| m == method)
    }
}

/// Which family of claims a token carries: the standard RFC 9068 set, or that set plus
/// what a front's clients expect. Remembered with refresh families and device codes, so a
/// refreshed token looks like its predecessor whichever endpoint refreshes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClaimSet {
    Standard,
    /// Tapis v3: `sub` is `user@tenant`, plus the `tapis/...` claims.
    Tapis,
}

impl ClaimSet {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimSet::Standard => "standard",
            ClaimSet::Tapis => "tapis",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standard" => Some(ClaimSet::Standard),
            "tapis" => Some(ClaimSet::Tapis),
            _ => None,
        }
    }
}

/// Who and what a token is for, before the claim set shapes it.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub tenant: &'a str,
    pub username: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub grant_type: GrantType,
    pub refresh_count: i64,
}

/// `sub` and the extra claims for a claim set.
pub fn shape(set: ClaimSet, s: &Subject<'_>) -> (String, Map<String, Value>) {
    let principal = s.username.or(s.client_id).unwrap_or_default();
    match set {
        ClaimSet::Standard => (principal.to_owned(), Map::new()),
        ClaimSet::Tapis => {
            let mut m = Map::new();
            m.insert("tapis/tenant_id".into(), s.tenant.into());
            m.insert("tapis/username".into(), principal.into());
            m.insert("tapis/token_type".into(), "access".into());
            m.insert("tapis/account_type".into(), if s.username.is_some() { "user" } else { "service" }.into());
            m.insert("tapis/delegation".into(), false.into());
            m.insert("tapis/delegation_sub".into(), Value::Null);
            m.insert("tapis/client_id".into(), s.client_id.map_or(Value::Null, |c| c.into()));
            m.insert("tapis/grant_type".into(), s.grant_type.short_name().into());
            m.insert("tapis/refresh_count".into(), s.refresh_count.into());
            (format!("{principal}@{}", s.tenant), m)
        }
    }
}

/// The claims of a token about to be minted, borrowed from where they already live (the
/// tenant, the cached client): minting clones nothing. Serialises exactly as [`AccessClaims`]
/// does (same members, same order), which a test holds it to.
#[derive(Debug, Clone, Copy)]
pub struct NewClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub exp: i64,
    pub iat: i64,
    pub jti: &'a str,
    pub client_id: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub tenant: &'a str,
    pub username: Option<&'a str>,
    pub provenance: Option<&'a Provenance>,
    pub extra: &'a Map<String, Value>,
}

impl NewClaims<'_> {
    /// The JSON payload, appended to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<()> {
        fn member(out: &mut Vec<u8>, name: &str, value: &str) {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            json_str(out, value);
        }
        fn number(out: &mut Vec<u8>, name: &str, value: i64) {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        }
        out.extend_from_slice(b"{\"iss\":");
        json_str(out, self.iss);
        member(out, "sub", self.sub);
        member(out, "aud", self.aud);
        number(out, "exp", self.exp);
        number(out, "iat", self.iat);
        member(out, "jti", self.jti);
        if let Some(c) = self.client_id {
            member(out, "client_id", c);
        }
        if let Some(s) = self.scope {
            member(out, "scope", s);
        }
        member(out, "tenant", self.tenant);
        if let Some(u) = self.username {
            member(out, "username", u);
        }
        if let Some(p) = self.provenance {
            if let Some(t) = p.auth_time {
                number(out, "auth_time", t);
            }
            if !p.amr.is_empty() {
                out.extend_from_slice(b",\"amr\":[");
                for (i, m) in p.amr.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_str(out, m);
                }
                out.push(b']');
            }
            if let Some(s) = &p.sid {
                member(out, "sid", s);
            }
            if let Some(k) = &p.api_key_id {
                member(out, "api_key_id", k);
            }
            if let Some(t) = p.session_exp {
                number(out, "session_exp", t);
            }
        }
        for (k, v) in self.extra {
            out.push(b',');
            json_str(out, k);
            out.push(b':');
            serde_json::to_writer(&mut *out, v).map_err(|_| Error::internal("claims encoding"))?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// Append `s` as a JSON string: copied as is when nothing in it needs escaping (the usual
/// case), else escaped by serde_json. Same bytes as serde_json either way.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    if !crate::scan::any_byte(s.as_bytes(), |b| (b < 0x20) | (b == b'"') | (b == b'\\')) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Sign `claims` with `key`: a compact JWS.
pub fn mint(key: &SigningKey, claims: &NewClaims<'_>) -> Result<String> {
    let mut payload = Vec::with_capacity(384);
    claims.write_json(&mut payload)?;
    key.sign_jws(&payload)
}

/// The parts of a JWS header we look at.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Header {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
    /// RFC 7515 section 4.1.11: extensions the verifier must understand. Tessera
    /// understands none, so a token naming any is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<Value>,
}

impl Header {
    /// RFC 9068 section 4: an access token's `typ` is `at+jwt` (or `application/at+jwt`),
    /// compared case-insensitively.
    pub fn is_access_token(&self) -> bool {
        self.typ.as_deref().is_some_and(|t| {
            let t = t.strip_prefix("application/").unwrap_or(t);
            t.eq_ignore_ascii_case("at+jwt")
        })
    }
}

/// Why a token failed verification (never shown to callers beyond "inactive").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Malformed,
    UnknownKey,
    AlgorithmMismatch,
    BadSignature,
    Expired,
    /// Issued (`iat`) or valid from (`nbf`) later than now, beyond the allowed clock skew.
    NotYetValid,
    WrongIssuer,
    WrongTenant,
    Revoked,
    /// Not an access token (`typ` is not `at+jwt`), or a `crit` header we do not understand.
    WrongType,
    /// Valid, but meant for another API (`aud`).
    WrongAudience,
}

/// A compact JWS split and decoded, signature not yet checked.
pub struct Parsed<'a> {
    pub header: Header,
    pub claims: Value,
    signed: &'a str,
    signature: Vec<u8>,
}

pub fn parse(token: &str) -> Result<Parsed<'_>, Invalid> {
    if token.len() > 16 * 1024 {
        return Err(Invalid::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Invalid::Malformed);
    };
    let dec = |x: &str| URL_SAFE_NO_PAD.decode(x).map_err(|_| Invalid::Malformed);
    let header: Header = serde_json::from_slice(&dec(h)?).map_err(|_| Invalid::Malformed)?;
    let claims: Value = serde_json::from_slice(&dec(p)?).map_err(|_| Invalid::Malformed)?;
    if !claims.is_object() {
        return Err(Invalid::Malformed);
    }
    Ok(Parsed { header, claims, signed: &token[..h.len() + 1 + p.len()], signature: dec(s)? })
}

impl Parsed<'_> {
    /// Check the signature with exactly this key, and only with the key's own algorithm.
    pub fn verify_with(&self, key: &SigningKey) -> Result<(), Invalid> {
        if self.header.alg != key.alg.as_str() {
            return Err(Invalid::AlgorithmMismatch);
        }
        if key.verify_raw(self.signed.as_bytes(), &self.signature) { Ok(()) } else { Err(Invalid::BadSignature) }
    }
}

/// How far ahead of this node's clock a token's `iat` or `nbf` may be: the clock skew allowed
/// between the nodes of a deployment. Tessera never mints a token that is not valid at once,
/// so a later one was signed by someone else's clock, or by a stolen key.
pub const CLOCK_SKEW: i64 = 60;

/// Verify a token issued by this tenant: key by `kid` from its ring, that key's algorithm
/// only, issuer and tenant claims, expiry, issue time and `nbf`. Revocation is the caller's
/// check.
pub fn verify(
    token: &str,
    ring: &KeyRing,
    issuer: &str,
    tenant: &str,
    now: i64,
    max_token_ttl: i64,
) -> Result<AccessClaims, Invalid> {
    let parsed = parse(token)?;
    if parsed.header.crit.is_some() || !parsed.header.is_access_token() {
        return Err(Invalid::WrongType);
    }
    let kid = parsed.header.kid.as_deref().ok_or(Invalid::UnknownKey)?;
    let key = ring.verifying_key(kid, now, max_token_ttl).ok_or(Invalid::UnknownKey)?;
    parsed.verify_with(key)?;
    let claims: AccessClaims = serde_json::from_value(parsed.claims).map_err(|_| Invalid::Malformed)?;
    if claims.iss != issuer {
        return Err(Invalid::WrongIssuer);
    }
    if claims.tenant != tenant {
        return Err(Invalid::WrongTenant);
    }
    if claims.exp <= now {
        return Err(Invalid::Expired);
    }
    if claims.iat > now + CLOCK_SKEW {
        return Err(Invalid::NotYetValid);
    }
    match claims.extra.get("nbf") {
        None => {}
        Some(nbf) if nbf.as_i64().is_some_and(|n| n <= now + CLOCK_SKEW) => {}
        Some(_) => return Err(Invalid::NotYetValid),
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemRng;
    use crate::keys::{Alg, MasterKey};
    use std::sync::Arc;

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://a".into(),
            sub: "s".into(),
            aud: "https://a".into(),
            exp: now + 60,
            iat: now,
            jti: "j".into(),
            client_id: Some("c".into()),
            scope: Some("read".into()),
            tenant: "a".into(),
            username: None,
            auth_time: None,
            amr: vec![],
            sid: None,
            api_key_id: None,
            session_exp: None,
            extra: Map::new(),
        }
    }

    fn provenance(c: &AccessClaims) -> Option<Provenance> {
        let p = Provenance {
            auth_time: c.auth_time,
            amr: c.amr.clone(),
            sid: c.sid.clone(),
            api_key_id: c.api_key_id.clone(),
            session_exp: c.session_exp,
        };
        (p != Provenance::default()).then_some(p)
    }

    fn ring(alg: Alg) -> KeyRing {
        let m = MasterKey::generate(&SystemRng);
        let (k, _) = SigningKey::generate(&SystemRng, &m, "a", alg, 0, 0).unwrap();
        KeyRing::new(vec![Arc::new(k)])
    }

    fn new_claims<'a>(c: &'a AccessClaims, p: Option<&'a Provenance>) -> NewClaims<'a> {
        NewClaims {
            iss: &c.iss,
            sub: &c.sub,
            aud: &c.aud,
            exp: c.exp,
            iat: c.iat,
            jti: &c.jti,
            client_id: c.client_id.as_deref(),
            scope: c.scope.as_deref(),
            tenant: &c.tenant,
            username: c.username.as_deref(),
            provenance: p,
            extra: &c.extra,
        }
    }

    type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

    /// Mint `c` with the key `r` signs with at `c.iat`.
    fn mint_claims(r: &KeyRing, c: &AccessClaims) -> TestResult<String> {
        let key = r.signing_key(c.iat).ok_or("the ring has no signing key")?;
        let p = provenance(c);
        Ok(mint(key, &new_claims(c, p.as_ref()))?)
    }

    #[test]
    fn written_claims_are_exactly_serdes() -> TestResult {
        let mut odd = claims(-5);
        odd.sub = "quote \" back \\ nl \n tab \t nul \u{0} del \u{7f} é 日本 😀 </script>".into();
        odd.iss = "https://x/\u{1f}".into();
        odd.username = Some("ünïcödé".into());
        odd.client_id = None;
        odd.scope = None;
        odd.extra.insert("tapis/x\"y".into(), Value::Null);
        odd.extra.insert("n".into(), serde_json::json!([1, 2.5, {"a": "\u{8}"}]));
        let mut derived = claims(1_700_000_000);
        derived.username = Some("u".into());
        derived.auth_time = Some(1_699_999_000);
        derived.amr = vec!["pwd".into(), "o\"tp".into()];
        derived.sid = Some("family".into());
        derived.api_key_id = Some("key".into());
        derived.session_exp = Some(1_700_000_300);
        let mut amr_only = claims(5);
        amr_only.amr = vec!["apikey".into()];
        for c in [claims(1_700_000_000), odd, derived, amr_only] {
            let mut out = Vec::new();
            let p = provenance(&c);
            new_claims(&c, p.as_ref()).write_json(&mut out)?;
            assert_eq!(String::from_utf8(out.clone())?, serde_json::to_string(&c)?);
            let back: AccessClaims = serde_json::from_slice(&out)?;
            assert_eq!(back, c);
        }
        Ok(())
    }

    #[test]
    fn mint_then_verify_each_alg() -> TestResult {
        for alg in [Alg::EdDSA, Alg::ES256, Alg::RS256] {
            let r = ring(alg);
            let t = mint_claims(&r, &claims(10))?;
            let c = verify(&t, &r, "https://a", "a", 20, 3600).unwrap();
            assert_eq!(c, claims(10));
            assert_eq!(verify(&t, &r, "https://a", "a", 70, 3600), Err(Invalid::Expired));
            assert_eq!(verify(&t, &r, "https://b", "a", 20, 3600), Err(Invalid::WrongIssuer));
            assert_eq!(verify(&t, &ring(alg), "https://a", "a", 20, 3600), Err(Invalid::UnknownKey));
        }
        Ok(())
    }

    #[test]
    fn tokens_from_the_future_are_not_yet_valid() -> TestResult {
        let r = ring(Alg::EdDSA);
        let mut c = claims(1000);
        c.exp = 5000;
        let t = mint_claims(&r, &c)?;
        assert_eq!(verify(&t, &r, "https://a", "a", 1000 - CLOCK_SKEW, 3600).map(|_| ()), Ok(()));
        assert_eq!(verify(&t, &r, "https://a", "a", 1000 - CLOCK_SKEW - 1, 3600), Err(Invalid::NotYetValid));
        for (nbf, ok) in
            [(serde_json::json!(1060), true), (serde_json::json!(1061), false), (serde_json::json!("1"), false)]
        {
            let mut c = claims(1000);
            c.exp = 5000;
            c.extra.insert("nbf".into(), nbf.clone());
            let t = mint_claims(&r, &c)?;
            assert_eq!(verify(&t, &r, "https://a", "a", 1000, 3600).is_ok(), ok, "nbf {nbf}");
        }
        Ok(())
    }

    #[test]
    fn header_alg_must_match_key() -> TestResult {
        let r = ring(Alg::EdDSA);
        let t = mint_claims(&r, &claims(0))?;
        let (_, rest) = t.split_once('.').unwrap();
        let kid = &r.keys()[0].kid;
        for alg in ["none", "HS256", "ES256"] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{kid}"}}"#));
            let forged = format!("{h}.{rest}");
            assert_eq!(verify(&forged, &r, "https://a", "a", 1, 3600), Err(Invalid::AlgorithmMismatch));
        }
        Ok(())
    }

    #[test]
    fn only_access_tokens_without_crit_verify() -> TestResult {
        let r = ring(Alg::EdDSA);
        let t = mint_claims(&r, &claims(0))?;
        let (_, rest) = t.split_once('.').ok_or("not a JWS")?;
        let kid = &r.keys()[0].kid;
        // The header is signed: a changed header is a bad signature unless it is refused
        // before the signature is checked, which is what these must be.
        for (header, want) in [
            (format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#), Invalid::WrongType),
            (format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#), Invalid::WrongType),
            (format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","crit":["exp"]}}"#), Invalid::WrongType),
            (format!(r#"{{"alg":"EdDSA","typ":"application/AT+JWT","kid":"{kid}"}}"#), Invalid::BadSignature),
        ] {
            let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header));
            assert_eq!(verify(&forged, &r, "https://a", "a", 1, 3600), Err(want));
        }
        Ok(())
    }

    #[test]
    fn inherited_provenance_keeps_the_chain() {
        let mut parent = claims(100);
        parent.amr = vec!["apikey".into()];
        parent.auth_time = Some(90);
        parent.api_key_id = Some("k".into());
        let p = Provenance::inherited(&parent);
        assert_eq!(p.sid.as_deref(), Some("j"), "a root token's session is the token itself");
        assert_eq!(p.session_exp, Some(160));
        assert_eq!((p.amr.clone(), p.auth_time, p.api_key_id.as_deref()), (parent.amr.clone(), Some(90), Some("k")));
        parent.sid = Some("fam".into());
        parent.session_exp = Some(120);
        let p = Provenance::inherited(&parent);
        assert_eq!((p.sid.as_deref(), p.session_exp), (Some("fam"), Some(120)));
    }

    #[test]
    fn tampered_payload_is_bad_signature() -> TestResult {
        let r = ring(Alg::EdDSA);
        let t = mint_claims(&r, &claims(0))?;
        let parts: Vec<&str> = t.split('.').collect();
        let mut c = claims(0);
        c.sub = "admin".into();
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        let forged = format!("{}.{}.{}", parts[0], p, parts[2]);
        assert_eq!(verify(&forged, &r, "https://a", "a", 1, 3600), Err(Invalid::BadSignature));
        assert_eq!(verify("a.b", &r, "https://a", "a", 1, 3600).err(), Some(Invalid::Malformed));
        Ok(())
    }
}
