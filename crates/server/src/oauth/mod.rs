//! The standard OAuth 2 front: token (RFC 6749), introspection (RFC 7662), revocation
//! (RFC 7009), metadata (RFC 8414 / OpenID discovery) and JWKS.

mod device;
mod error;
pub mod metadata;
mod token;
mod userinfo;

pub use error::OAuthError;

use crate::openapi::{Api, Field, Front, JSON, doc, object};
use crate::pages::authorize;
use utoipa::openapi::{RefOr, Schema};

/// The fields of a token request (RFC 6749 section 4, RFC 8628 section 3.4, RFC 8693
/// section 2.1), each grant reading its own.
const TOKEN_FORM: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "username",
    "password",
    "otp",
    "refresh_token",
    "code",
    "redirect_uri",
    "code_verifier",
    "device_code",
    "subject_token",
    "subject_token_type",
    "requested_token_type",
    "audience",
];

/// The parameters of an authorization request (RFC 6749 section 4.1.1, RFC 7636, OpenID
/// Connect Core section 3.1.2.1).
pub(crate) const AUTHORIZE_QUERY: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
];

/// The fields of the sign-in, second-factor and consent forms.
pub(crate) const AUTHORIZE_FORM: &[&str] =
    &["csrf", "step", "username", "password", "otp", "ticket", "secret", "uri", "decision", "action"];

/// The errors of the standard endpoints (RFC 6749 section 5.2).
fn oauth_errors() -> (&'static str, RefOr<Schema>) {
    (JSON, object(&[("error", Field::Str), ("error_description", Field::Str)]))
}

/// The standard endpoints of one tenant; mounted at the root (default tenant) and under
/// `/t/{tenant}`.
pub fn front() -> Front {
    use Field::{Bool, Int, Str};
    let token = object(&[
        ("access_token", Str),
        ("token_type", Str),
        ("expires_in", Int),
        ("scope?", Str),
        ("refresh_token?", Str),
        ("refresh_expires_in?", Int),
        ("issued_token_type?", Str),
        ("id_token?", Str),
    ]);
    let introspection = object(&[
        ("active", Bool),
        ("scope?", Str),
        ("client_id?", Str),
        ("username?", Str),
        ("token_type?", Str),
        ("exp?", Int),
        ("iat?", Int),
        ("nbf?", Int),
        ("sub?", Str),
        ("aud?", Str),
        ("iss?", Str),
        ("jti?", Str),
    ]);
    let device = object(&[
        ("device_code", Str),
        ("user_code", Str),
        ("verification_uri", Str),
        ("verification_uri_complete?", Str),
        ("expires_in", Int),
        ("interval", Int),
    ]);
    let userinfo = object(&[
        ("sub", Str),
        ("preferred_username?", Str),
        ("name?", Str),
        ("given_name?", Str),
        ("family_name?", Str),
        ("email?", Str),
    ]);
    let jwks = object(&[("keys", Field::Objs)]);
    let api = Api::default()
        .post(
            "/oauth2/token",
            token::token_post,
            doc("Token endpoint: every grant (RFC 6749, 7636, 8628, 8693)")
                .form(TOKEN_FORM)
                .also(200, "tokens", JSON, token),
        )
        .post(
            "/oauth2/introspect",
            token::introspect_post,
            doc("Token introspection (RFC 7662)")
                .form(&["token", "token_type_hint", "client_id", "client_secret"])
                .also(200, "whether the token is active, and its claims", JSON, introspection),
        )
        .post(
            "/oauth2/revoke",
            token::revoke_post,
            doc("Token revocation (RFC 7009)")
                .form(&["token", "token_type_hint", "client_id", "client_secret"])
                .bare(200, "revoked, or unknown"),
        )
        .post(
            "/oauth2/device_authorization",
            device::device_authorization_post,
            doc("Device authorization (RFC 8628 section 3.1)").form(&["client_id", "client_secret", "scope"]).also(
                200,
                "the codes",
                JSON,
                device,
            ),
        )
        .get(
            "/device",
            crate::pages::device::device_get,
            doc("Device verification page").query(&["user_code"]).public().for_people(),
        )
        .post(
            "/device",
            crate::pages::device::device_post,
            doc("Device verification: a person's answer")
                .form(&["csrf", "step", "user_code", "username", "password", "otp", "ticket", "decision"])
                .public()
                .for_people(),
        )
        .get(
            "/oauth2/authorize",
            authorize::authorize_get,
            doc("Authorization endpoint (code + PKCE S256; OpenID Connect)")
                .query(AUTHORIZE_QUERY)
                .public()
                .for_people(),
        )
        .post(
            "/oauth2/authorize",
            authorize::authorize_post,
            doc("Authorization: the sign-in, code and consent forms").form(AUTHORIZE_FORM).public().for_people(),
        )
        .get(
            "/oauth2/logout",
            authorize::logout,
            doc("RP-initiated logout")
                .query(&["id_token_hint", "post_logout_redirect_uri", "state", "client_id"])
                .public()
                .for_people(),
        )
        .post(
            "/oauth2/logout",
            authorize::logout,
            doc("RP-initiated logout (form)")
                .form(&["id_token_hint", "post_logout_redirect_uri", "state", "client_id", "csrf", "confirm"])
                .public()
                .for_people(),
        )
        .get(
            "/oauth2/userinfo",
            userinfo::userinfo,
            doc("OpenID Connect UserInfo").also(200, "claims", JSON, userinfo.clone()),
        )
        .post(
            "/oauth2/userinfo",
            userinfo::userinfo,
            doc("OpenID Connect UserInfo").also(200, "claims", JSON, userinfo),
        )
        .get(
            "/.well-known/openid-configuration",
            metadata::discovery_get,
            doc("OpenID Connect Discovery").public().also(200, "the metadata", JSON, metadata::discovery_schema()),
        )
        .get(
            "/.well-known/oauth-authorization-server",
            metadata::discovery_get,
            doc("Authorization server metadata (RFC 8414)").public().also(
                200,
                "the metadata",
                JSON,
                metadata::discovery_schema(),
            ),
        )
        .get(
            "/.well-known/jwks.json",
            metadata::jwks_get,
            doc("The tenant's public keys (JWK Set)").public().also(200, "the keys", JSON, jwks),
        );
    Front {
        tag: "oauth",
        prefixes: &["", "/t/{tenant}"],
        api,
        security: &["basic"],
        errors: oauth_errors(),
        error_schemas: vec![],
    }
}

/// RFC 8414 section 3.1: the metadata of issuer `<base>/t/T` at
/// `/.well-known/oauth-authorization-server/t/T`.
pub fn metadata_front() -> Front {
    let api = Api::default().get(
        "/.well-known/oauth-authorization-server/t/{tenant}",
        metadata::discovery_get,
        doc("Authorization server metadata of a tenant (RFC 8414 section 3.1)").also(
            200,
            "the metadata",
            JSON,
            metadata::discovery_schema(),
        ),
    );
    Front { tag: "oauth", prefixes: &[""], api, security: &[], errors: oauth_errors(), error_schemas: vec![] }
}
