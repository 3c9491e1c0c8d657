"""Tessera's token, introspection and revocation endpoints driven by authlib's OAuth 2 client
(authlib.integrations.requests_client), checked against RFC 6749, RFC 7662 and RFC 7009."""

from __future__ import annotations

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

from tessera_harness import HTTP_TIMEOUT, Client, Tenant, TesseraServer, client_credentials_token


@pytest.fixture(scope="module")
def tenant(server: TesseraServer) -> Tenant:
    return server.create_tenant("ES256")


@pytest.fixture(scope="module")
def other_tenant(server: TesseraServer) -> Tenant:
    return server.create_tenant("EdDSA")


def session(client: Client, method: str = "client_secret_basic", **kwargs) -> OAuth2Session:
    sess = OAuth2Session(
        client.client_id,
        client.client_secret,
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
        **kwargs,
    )
    sess.metadata["token_endpoint"] = client.tenant.token_endpoint
    return sess


def claims_of(token: str, tenant: Tenant) -> dict:
    key = jwt.PyJWKClient(tenant.jwks_uri, cache_keys=False).get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=[tenant.alg], audience=tenant.issuer, issuer=tenant.issuer)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def introspect(client: Client, token: str, tenant: Tenant | None = None, hint: str | None = None) -> dict:
    """RFC 7662 via authlib, at `tenant` (default: the client's own tenant)."""
    tenant = tenant or client.tenant
    resp = session(client).introspect_token(tenant.introspection_endpoint, token=token, token_type_hint=hint,
                                            timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, f"introspect -> {resp.status_code} {resp.text}"
    assert resp.headers["Content-Type"].startswith("application/json")
    return resp.json()


def revoke(client: Client, token: str, hint: str | None = None) -> requests.Response:
    resp = session(client).revoke_token(client.tenant.revocation_endpoint, token=token, token_type_hint=hint,
                                        timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, f"revoke -> {resp.status_code} {resp.text}"
    return resp


# ----- client_credentials -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials(server, tenant, method):
    client = server.create_client(tenant, scope="read write")
    sess = session(client, method, scope="read write")
    token = sess.fetch_token(tenant.token_endpoint, grant_type="client_credentials", timeout=HTTP_TIMEOUT)

    assert token["token_type"].lower() == "bearer"
    assert set(token["scope"].split()) == {"read", "write"}
    claims = claims_of(token["access_token"], tenant)
    assert claims["sub"] == client.client_id
    assert claims["client_id"] == client.client_id
    assert token["expires_at"] - token["expires_in"] == pytest.approx(claims["iat"], abs=5)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials_wrong_secret_is_invalid_client(server, tenant, method):
    client = server.create_client(tenant)
    bad = Client(tenant, client.client_id, client.client_secret[:-2] + "xx", client.scope)
    with pytest.raises(OAuthError) as err:
        session(bad, method).fetch_token(tenant.token_endpoint, grant_type="client_credentials",
                                         timeout=HTTP_TIMEOUT)
    assert err.value.error == "invalid_client"


def test_invalid_client_basic_is_401_with_www_authenticate(server, tenant):
    client = server.create_client(tenant)
    resp = requests.post(tenant.token_endpoint, data={"grant_type": "client_credentials"},
                         auth=(client.client_id, "tsc_wrong"), timeout=HTTP_TIMEOUT)
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    assert resp.headers.get("WWW-Authenticate", "").lower().startswith("basic")  # RFC 6749 5.2


def test_scope_outside_client_scopes_is_invalid_scope(server, tenant):
    client = server.create_client(tenant, scope="read")
    with pytest.raises(OAuthError) as err:
        session(client, scope="read admin").fetch_token(tenant.token_endpoint, grant_type="client_credentials",
                                                       timeout=HTTP_TIMEOUT)
    assert err.value.error == "invalid_scope"


def test_grant_not_allowed_is_unauthorized_client(server, tenant):
    client = server.create_client(tenant, grants="client_credentials")
    username, password = server.create_user(tenant)
    with pytest.raises(OAuthError) as err:
        session(client).fetch_token(tenant.token_endpoint, username=username, password=password,
                                    timeout=HTTP_TIMEOUT)
    assert err.value.error == "unauthorized_client"


def test_unknown_grant_type_is_unsupported_grant_type(server, tenant):
    client = server.create_client(tenant)
    resp = requests.post(tenant.token_endpoint, data={"grant_type": "urn:example:nope"}, auth=client.basic,
                         timeout=HTTP_TIMEOUT)
    assert resp.status_code == 400
    assert resp.json()["error"] == "unsupported_grant_type"


# ----- password grant and refresh rotation --------------------------------------------------


def password_token(server: TesseraServer, tenant: Tenant, method: str = "client_secret_basic"):
    client = server.create_client(tenant, grants="password,refresh_token", scope="read write")
    username, password = server.create_user(tenant)
    sess = session(client, method)
    token = sess.fetch_token(tenant.token_endpoint, username=username, password=password, timeout=HTTP_TIMEOUT)
    return client, username, token


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_password_grant(server, tenant, method):
    client, username, token = password_token(server, tenant, method)
    assert token["refresh_token"].startswith("tsr_")
    claims = claims_of(token["access_token"], tenant)
    assert claims["sub"] == username
    assert claims["client_id"] == client.client_id
    assert claims["tenant"] == tenant.name


def test_password_grant_wrong_password_is_invalid_grant(server, tenant):
    client = server.create_client(tenant, grants="password")
    username, password = server.create_user(tenant)
    with pytest.raises(OAuthError) as err:
        session(client).fetch_token(tenant.token_endpoint, username=username, password=password + "x",
                                    timeout=HTTP_TIMEOUT)
    assert err.value.error == "invalid_grant"


def test_password_grant_disabled_user_is_invalid_grant(server, tenant):
    client = server.create_client(tenant, grants="password")
    username, password = server.create_user(tenant)
    session(client).fetch_token(tenant.token_endpoint, username=username, password=password, timeout=HTTP_TIMEOUT)
    server.cli("user", "disable", "--tenant", tenant.name, "--username", username)
    with pytest.raises(OAuthError) as err:
        session(client).fetch_token(tenant.token_endpoint, username=username, password=password,
                                    timeout=HTTP_TIMEOUT)
    assert err.value.error == "invalid_grant"


def test_password_grant_public_client(server, tenant):
    client = server.create_client(tenant, grants="password,refresh_token", public=True)
    username, password = server.create_user(tenant)
    sess = OAuth2Session(client.client_id, token_endpoint_auth_method="none")
    token = sess.fetch_token(tenant.token_endpoint, username=username, password=password, timeout=HTTP_TIMEOUT)
    assert claims_of(token["access_token"], tenant)["sub"] == username
    new = sess.refresh_token(tenant.token_endpoint, refresh_token=token["refresh_token"], timeout=HTTP_TIMEOUT)
    assert new["refresh_token"] != token["refresh_token"]


def test_refresh_rotation_and_reuse_detection(server, tenant):
    client, username, first = password_token(server, tenant)
    rt1 = first["refresh_token"]

    second = session(client).refresh_token(tenant.token_endpoint, refresh_token=rt1, timeout=HTTP_TIMEOUT)
    rt2 = second["refresh_token"]
    assert rt2.startswith("tsr_")
    assert rt2 != rt1, "refresh token was not rotated"
    assert second["access_token"] != first["access_token"]
    claims = claims_of(second["access_token"], tenant)
    assert claims["sub"] == username

    # Reusing the rotated token fails ...
    with pytest.raises(OAuthError) as err:
        session(client).refresh_token(tenant.token_endpoint, refresh_token=rt1, timeout=HTTP_TIMEOUT)
    assert err.value.error == "invalid_grant"

    # ... and revokes the whole family, including the newest token.
    with pytest.raises(OAuthError) as err:
        session(client).refresh_token(tenant.token_endpoint, refresh_token=rt2, timeout=HTTP_TIMEOUT)
    assert err.value.error == "invalid_grant"
    assert introspect(client, rt2)["active"] is False


def test_refresh_token_bound_to_client(server, tenant):
    _, _, token = password_token(server, tenant)
    thief = server.create_client(tenant, grants="password,refresh_token")
    with pytest.raises(OAuthError) as err:
        session(thief).refresh_token(tenant.token_endpoint, refresh_token=token["refresh_token"],
                                     timeout=HTTP_TIMEOUT)
    assert err.value.error == "invalid_grant"  # RFC 6749 6: bound to the client it was issued to


def test_refresh_chain(server, tenant):
    client, _, token = password_token(server, tenant)
    seen = {token["refresh_token"]}
    for _ in range(3):
        token = session(client).refresh_token(tenant.token_endpoint, refresh_token=token["refresh_token"],
                                              timeout=HTTP_TIMEOUT)
        assert token["refresh_token"] not in seen
        seen.add(token["refresh_token"])
    assert introspect(client, token["access_token"])["active"] is True


# ----- introspection and revocation ---------------------------------------------------------


def test_introspection_of_active_token(server, tenant):
    client = server.create_client(tenant, scope="read write")
    token = client_credentials_token(client, scope="read")["access_token"]
    claims = claims_of(token, tenant)

    info = introspect(client, token)
    assert info["active"] is True
    for key in ("sub", "client_id", "scope", "exp", "iat", "iss", "jti"):
        assert info[key] == claims[key], key
    assert as_list(info["aud"]) == as_list(claims["aud"])
    assert info["tenant"] == tenant.name
    assert info["token_type"].lower() == "bearer"  # RFC 7662 2.2: a token type from RFC 6749 7.1


def test_introspection_requires_client_auth(server, tenant):
    client = server.create_client(tenant)
    token = client_credentials_token(client)["access_token"]
    resp = requests.post(tenant.introspection_endpoint, data={"token": token}, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"


def test_introspection_of_garbage_is_inactive(server, tenant):
    client = server.create_client(tenant)
    for junk in ("not-a-token", "tsr_" + "A" * 43, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."):
        assert introspect(client, junk) == {"active": False}


@pytest.mark.parametrize("hint", [None, "access_token"])
def test_revoked_access_token_is_inactive(server, tenant, hint):
    client = server.create_client(tenant)
    token = client_credentials_token(client)["access_token"]
    assert introspect(client, token)["active"] is True

    resp = revoke(client, token, hint)
    assert resp.content == b""
    assert introspect(client, token) == {"active": False}
    # Another token of the same client is unaffected.
    other = client_credentials_token(client)["access_token"]
    assert introspect(client, other)["active"] is True


@pytest.mark.parametrize("hint", [None, "refresh_token"])
def test_revoked_refresh_token_cannot_refresh(server, tenant, hint):
    client, _, token = password_token(server, tenant)
    assert introspect(client, token["refresh_token"])["active"] is True
    revoke(client, token["refresh_token"], hint)
    assert introspect(client, token["refresh_token"])["active"] is False
    with pytest.raises(OAuthError) as err:
        session(client).refresh_token(tenant.token_endpoint, refresh_token=token["refresh_token"],
                                      timeout=HTTP_TIMEOUT)
    assert err.value.error == "invalid_grant"


def test_revoke_unknown_token_is_200(server, tenant):
    client = server.create_client(tenant)
    resp = revoke(client, "tsr_unknown_" + "x" * 32)
    assert resp.content == b""


def test_revoke_with_post_auth(server, tenant):
    client = server.create_client(tenant)
    token = client_credentials_token(client)["access_token"]
    resp = session(client, "client_secret_post").revoke_token(tenant.revocation_endpoint, token=token,
                                                              timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200
    assert introspect(client, token)["active"] is False


# ----- tenants are isolated -----------------------------------------------------------------


def test_token_of_tenant_a_is_inactive_at_tenant_b(server, tenant, other_tenant):
    a_client = server.create_client(tenant)
    b_client = server.create_client(other_tenant)
    token = client_credentials_token(a_client)["access_token"]
    assert introspect(a_client, token)["active"] is True
    assert introspect(b_client, token) == {"active": False}


def test_refresh_token_of_tenant_a_is_rejected_at_tenant_b(server, tenant, other_tenant):
    _, _, token = password_token(server, tenant)
    b_client = server.create_client(other_tenant, grants="password,refresh_token")
    assert introspect(b_client, token["refresh_token"]) == {"active": False}
    with pytest.raises(OAuthError) as err:
        session(b_client).refresh_token(other_tenant.token_endpoint, refresh_token=token["refresh_token"],
                                        timeout=HTTP_TIMEOUT)
    assert err.value.error == "invalid_grant"


def test_client_of_tenant_a_cannot_authenticate_at_tenant_b(server, tenant, other_tenant):
    a_client = server.create_client(tenant)
    with pytest.raises(OAuthError) as err:
        session(a_client).fetch_token(other_tenant.token_endpoint, grant_type="client_credentials",
                                      timeout=HTTP_TIMEOUT)
    assert err.value.error == "invalid_client"
