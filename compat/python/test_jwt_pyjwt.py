"""Access tokens verified offline by PyJWT against Tessera's published JWKS (RFC 9068, RFC 7517)."""

from __future__ import annotations

import secrets
import time

import jwt
import pytest
import requests

from tessera_harness import HTTP_TIMEOUT, Client, Tenant, TesseraServer, client_credentials_token

KTY = {"EdDSA": "OKP", "ES256": "EC", "RS256": "RSA"}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture(scope="module")
def tenants(server: TesseraServer) -> dict[str, Tenant]:
    """The default tenant (served at the root) plus one tenant per signing algorithm."""
    return {
        "default": server.default_tenant(),
        "EdDSA": server.create_tenant("EdDSA"),
        "ES256": server.create_tenant("ES256"),
        "RS256": server.create_tenant("RS256"),
    }


def verify(token: str, tenant: Tenant, audience: str | None = None) -> tuple[dict, dict, jwt.PyJWK]:
    """Verify with PyJWKClient on the tenant's JWKS; returns (header, claims, key)."""
    jwks = jwt.PyJWKClient(tenant.jwks_uri, cache_keys=False, timeout=HTTP_TIMEOUT)
    key = jwks.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=[tenant.alg],
        audience=audience or tenant.issuer,
        issuer=tenant.issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    return jwt.get_unverified_header(token), claims, key


@pytest.mark.parametrize("which", ["default", "EdDSA", "ES256", "RS256"])
def test_client_credentials_token_verifies_with_pyjwkclient(server, tenants, which):
    tenant = tenants[which]
    client = server.create_client(tenant, scope="read write")

    resp = requests.post(
        tenant.token_endpoint,
        data={"grant_type": "client_credentials", "scope": "read"},
        auth=client.basic,
        timeout=HTTP_TIMEOUT,
    )
    assert resp.status_code == 200, resp.text
    assert "no-store" in resp.headers.get("Cache-Control", ""), resp.headers
    body = resp.json()
    assert body["token_type"].lower() == "bearer"
    assert body["scope"] == "read"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert "refresh_token" not in body, "client_credentials must not issue a refresh token (RFC 6749 4.4.3)"

    header, claims, key = verify(body["access_token"], tenant)

    assert header["alg"] == tenant.alg
    assert header["typ"] == "at+jwt"  # RFC 9068 section 2.1
    assert header["kid"] and header["kid"] == key.key_id
    assert claims["iss"] == tenant.issuer
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert tenant.issuer in aud
    assert claims["sub"] == client.client_id
    assert claims["client_id"] == client.client_id
    assert claims["scope"] == "read"
    assert claims["tenant"] == tenant.name
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    assert abs(claims["iat"] - time.time()) < 60
    assert isinstance(claims["jti"], str) and claims["jti"]


@pytest.mark.parametrize("which", ["default", "EdDSA", "ES256", "RS256"])
def test_jwks_publishes_public_signing_keys_only(tenants, which):
    tenant = tenants[which]
    resp = requests.get(tenant.jwks_uri, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith(("application/json", "application/jwk-set+json"))
    keys = resp.json()["keys"]
    assert keys, "JWKS is empty"
    for jwk in keys:
        assert jwk["kty"] == KTY[tenant.alg], jwk
        assert jwk["alg"] == tenant.alg, jwk
        assert jwk["use"] == "sig", jwk
        assert jwk["kid"], jwk
        leaked = PRIVATE_MEMBERS & set(jwk)
        assert not leaked, f"JWKS leaks private key members {leaked}: {jwk}"
        parsed = jwt.PyJWK(jwk)  # PyJWT must be able to load every published key
        assert parsed.key_id == jwk["kid"]
        if tenant.alg == "RS256":
            assert parsed.key.key_size >= 2048
        if tenant.alg == "ES256":
            assert jwk["crv"] == "P-256"
        if tenant.alg == "EdDSA":
            assert jwk["crv"] == "Ed25519"
    assert len({k["kid"] for k in keys}) == len(keys), "duplicate kid in JWKS"


@pytest.mark.parametrize("a_alg,b_alg", [("EdDSA", "EdDSA"), ("ES256", "RS256"), ("RS256", "ES256")])
def test_token_rejected_with_another_tenants_jwks(server, a_alg, b_alg):
    a = server.create_tenant(a_alg)
    b = server.create_tenant(b_alg)
    token = client_credentials_token(server.create_client(a))["access_token"]

    # Sanity: it verifies at its own tenant.
    verify(token, a)

    # B's JWKS does not hold A's kid, so PyJWKClient cannot find a key for it.
    with pytest.raises(jwt.PyJWKClientError):
        jwt.PyJWKClient(b.jwks_uri, cache_keys=False, timeout=HTTP_TIMEOUT).get_signing_key_from_jwt(token)

    # A resource server of B that forces B's own key and algorithm must reject it too: a bad
    # signature when the algorithms match, a disallowed algorithm when they do not.
    b_keys = jwt.PyJWKClient(b.jwks_uri, cache_keys=False, timeout=HTTP_TIMEOUT).get_signing_keys()
    assert b_keys
    expected = jwt.InvalidSignatureError if a_alg == b_alg else jwt.InvalidAlgorithmError
    for key in b_keys:
        with pytest.raises(expected):
            jwt.decode(token, key.key, algorithms=[b_alg], options={"verify_aud": False})


def test_default_tenant_token_rejected_by_other_tenant_jwks(server, tenants):
    token = client_credentials_token(server.create_client(tenants["default"]))["access_token"]
    verify(token, tenants["default"])
    with pytest.raises(jwt.PyJWKClientError):
        jwt.PyJWKClient(tenants["EdDSA"].jwks_uri, cache_keys=False).get_signing_key_from_jwt(token)


def test_per_tenant_access_ttl(server):
    tenant = server.create_tenant("ES256", extra=("--access-ttl", "120"))
    body = client_credentials_token(server.create_client(tenant))
    assert body["expires_in"] == 120
    _, claims, _ = verify(body["access_token"], tenant)
    assert claims["exp"] - claims["iat"] == 120


def test_resource_parameter_sets_audience(server, tenants):
    tenant = tenants["EdDSA"]
    client = server.create_client(tenant)
    resource = "https://api.example.test/things"
    token = client_credentials_token(client, resource=resource)["access_token"]
    _, claims, _ = verify(token, tenant, audience=resource)
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert aud == [resource]
    # A resource server that expects the issuer as audience must reject it.
    with pytest.raises(jwt.InvalidAudienceError):
        verify(token, tenant)


def test_custom_issuer_is_used_in_tokens(server):
    issuer = "https://id.example.test/" + secrets.token_hex(4)
    tenant = server.create_tenant("EdDSA", extra=("--issuer", issuer))
    assert tenant.issuer == issuer
    token = client_credentials_token(server.create_client(tenant))["access_token"]
    _, claims, _ = verify(token, tenant)
    assert claims["iss"] == issuer


def wait_for_new_kid(client: Client, old_kid: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        token = client_credentials_token(client)["access_token"]
        if jwt.get_unverified_header(token)["kid"] != old_kid:
            return token
        time.sleep(0.1)
    raise AssertionError(f"still signing with {old_kid} {timeout}s after `key rotate`")


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
def test_key_rotation_keeps_old_tokens_verifiable(server, alg):
    tenant = server.create_tenant(alg)
    client = server.create_client(tenant)
    old = client_credentials_token(client)["access_token"]
    old_kid = jwt.get_unverified_header(old)["kid"]

    server.rotate_key(tenant)
    new = wait_for_new_kid(client, old_kid)
    new_kid = jwt.get_unverified_header(new)["kid"]

    kids = {k["kid"] for k in requests.get(tenant.jwks_uri, timeout=HTTP_TIMEOUT).json()["keys"]}
    assert {old_kid, new_kid} <= kids, f"JWKS after rotation: {kids}"
    _, old_claims, old_key = verify(old, tenant)
    _, new_claims, new_key = verify(new, tenant)
    assert old_key.key_id == old_kid and new_key.key_id == new_kid
    assert old_claims["jti"] != new_claims["jti"]
