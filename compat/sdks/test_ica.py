"""Illumina ICA front (`/ica/rest`) driven by the published `libica` 3.3, the seed's v2 API
(`libica.openapi.v2`, TokenApi), as in CONTRACTS.md sections 2 and 5."""

from __future__ import annotations

import json
import time
from datetime import datetime

import libica.openapi.v2 as ica
import pytest
import requests
from libica.openapi.v2.api.token_api import TokenApi
from libica.openapi.v2.exceptions import ForbiddenException, UnauthorizedException

from conftest import ACME, avoid_step_edge, wrong_code

PROBLEM_FIELDS = {"type", "title", "status", "parameters", "timestamp"}


def config(base: str, **kw) -> ica.Configuration:
    return ica.Configuration(host=base + "/ica/rest", **kw)


def create(base: str, *, tenant: str | None = None, headers: dict | None = None, **kw) -> str:
    with ica.ApiClient(config(base, **kw)) as c:
        for k, v in (headers or {}).items():
            c.set_default_header(k, v)
        api = TokenApi(c)
        t = api.create_jwt_token(tenant=tenant) if tenant is not None else api.create_jwt_token()
    assert isinstance(t.token, str) and t.token.count(".") == 2, t
    return t.token


def refresh(base: str, token: str) -> str:
    with ica.ApiClient(config(base, access_token=token)) as c:
        t = TokenApi(c).refresh_jwt_token()
    assert isinstance(t.token, str) and t.token.count(".") == 2, t
    return t.token


def assert_problem(e: ica.ApiException, status: int) -> dict:
    """The SDK raised for `status`, with an RFC 7807 problem body."""
    assert e.status == status, (e.status, e.body)
    ct = e.headers.get("Content-Type", "") if e.headers else ""  # case-insensitive HTTPHeaderDict
    assert ct.startswith("application/problem+json"), ct
    p = json.loads(e.body)
    assert PROBLEM_FIELDS <= p.keys(), p
    assert p["status"] == status and isinstance(p["parameters"], dict), p
    datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00"))
    return p


def expect_error(exc_type, fn, *args, **kw) -> ica.ApiException:
    with pytest.raises(exc_type) as e:
        fn(*args, **kw)
    return e.value


# ----- API key (X-API-Key) ---------------------------------------------------------------


def test_api_key_token(server, base, make_user):
    u = make_user()
    key = server.apikey_create(u.tenant, u.username)["key"]
    tok = create(base, api_key={"ApiKeyAuth": key})
    claims = server.verify(tok)
    assert claims["username"] == u.username and claims["aud"] == "ica", claims
    assert claims["exp"] > time.time() + 60 and "jti" in claims and "iat" in claims, claims


def test_token_content_type(server, base, make_user):
    """The success content type from the spec, with the exact request the v2 SDK sends
    (empty body, Content-Type: application/json, Accept: the vendor type)."""
    u = make_user()
    key = server.apikey_create(u.tenant, u.username)["key"]
    r = requests.post(
        base + "/ica/rest/api/tokens",
        headers={"X-API-Key": key, "Content-Type": "application/json",
                 "Accept": "application/problem+json, application/vnd.illumina.v3+json"},
        data=b"",
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] in ("application/vnd.illumina.v3+json", "application/json")
    assert set(r.json()) == {"token"}


def test_revoked_api_key(server, base, make_user):
    u = make_user()
    k = server.apikey_create(u.tenant, u.username)
    create(base, api_key={"ApiKeyAuth": k["key"]})
    server.apikey_revoke(u.tenant, k["id"])
    e = expect_error(UnauthorizedException, create, base, api_key={"ApiKeyAuth": k["key"]})
    assert_problem(e, 401)


def test_expired_api_key(server, base, make_user):
    u = make_user()
    k = server.apikey_create(u.tenant, u.username, expires="1")
    time.sleep(max(0.0, k["expires_at"] - time.time()) + 0.3)
    e = expect_error(UnauthorizedException, create, base, api_key={"ApiKeyAuth": k["key"]})
    assert_problem(e, 401)


def test_unknown_api_key_and_no_credentials(base):
    e = expect_error(UnauthorizedException, create, base, api_key={"ApiKeyAuth": "tsk_" + "A" * 43})
    assert_problem(e, 401)
    e = expect_error(UnauthorizedException, create, base)
    assert_problem(e, 401)


# ----- Basic (e-mail and password) --------------------------------------------------------


def test_basic_token(server, base, make_user):
    u = make_user()
    tok = create(base, username=u.username, password=u.password)
    claims = server.verify(tok)
    assert claims["username"] == u.username and claims["aud"] == "ica", claims


def test_basic_wrong_password(base, make_user):
    u = make_user()
    e = expect_error(UnauthorizedException, create, base, username=u.username, password="wrong-" + u.password)
    p = assert_problem(e, 401)
    assert p["title"] == "Unauthorized"


def test_basic_disabled_user(server, base, make_user):
    u = make_user()
    tok = create(base, username=u.username, password=u.password)
    server.user_disable(u.tenant, u.username)
    expect_error(UnauthorizedException, create, base, username=u.username, password=u.password)
    # A password token of a disabled user does not refresh either.
    expect_error(UnauthorizedException, refresh, base, tok)


def test_basic_totp_via_header(server, base, totp_user):
    """The OTP for Basic travels in `X-Tessera-OTP` (set with ApiClient.set_default_header)."""
    u = totp_user
    creds = dict(username=u.username, password=u.password)
    e = expect_error(UnauthorizedException, create, base, **creds)
    assert_problem(e, 401)
    e = expect_error(UnauthorizedException, create, base, headers={"X-Tessera-OTP": wrong_code(u.totp)}, **creds)
    assert_problem(e, 401)

    avoid_step_edge()
    code = u.totp.now()
    tok = create(base, headers={"X-Tessera-OTP": code}, **creds)
    assert server.verify(tok)["username"] == u.username
    e = expect_error(UnauthorizedException, create, base, headers={"X-Tessera-OTP": code}, **creds)
    assert_problem(e, 401)
    # A recovery code works once.
    create(base, headers={"X-Tessera-OTP": u.recovery_codes[0]}, **creds)
    expect_error(UnauthorizedException, create, base, headers={"X-Tessera-OTP": u.recovery_codes[0]}, **creds)


def test_api_key_needs_no_otp(server, base, totp_user):
    """An API key is its own credential: a 2FA user's key needs no code."""
    k = server.apikey_create(totp_user.tenant, totp_user.username)["key"]
    assert server.verify(create(base, api_key={"ApiKeyAuth": k}))["username"] == totp_user.username


# ----- tenants ----------------------------------------------------------------------------


def test_tenant_parameter(server, base, make_user):
    name = f"multi-{time.time_ns()}@example.org"
    make_user(username=name, password="default-password-1")
    make_user(ACME, username=name, password="acme-password-12")

    # Without the parameter (or a Host name of a tenant) the default tenant is asked: no
    # answer tells which tenants a username exists in.
    assert server.verify(create(base, username=name, password="default-password-1"))["tenant"] == "default"
    expect_error(UnauthorizedException, create, base, username=name, password="acme-password-12")

    tok = create(base, tenant=ACME, username=name, password="acme-password-12")
    assert server.verify(tok, ACME)["username"] == name
    tok = create(base, tenant="default", username=name, password="default-password-1")
    assert server.verify(tok, "default")["username"] == name
    # Each tenant checks its own password.
    expect_error(UnauthorizedException, create, base, tenant=ACME, username=name, password="default-password-1")

    # A user of another tenant only is unknown here without the parameter.
    solo = make_user(ACME)
    e = expect_error(UnauthorizedException, create, base, username=solo.username, password=solo.password)
    assert_problem(e, 401)
    assert server.verify(create(base, tenant=ACME, username=solo.username, password=solo.password), ACME)["tenant"] == ACME


def test_api_key_at_other_tenant(server, base, make_user):
    d = make_user()
    a = make_user(ACME)
    dkey = server.apikey_create("default", d.username)["key"]
    akey = server.apikey_create(ACME, a.username)["key"]

    # The key names its tenant; naming it again is fine, naming another is 401.
    assert server.verify(create(base, api_key={"ApiKeyAuth": akey}), ACME)["username"] == a.username
    assert server.verify(create(base, tenant=ACME, api_key={"ApiKeyAuth": akey}), ACME)["tenant"] == ACME
    e = expect_error(UnauthorizedException, create, base, tenant=ACME, api_key={"ApiKeyAuth": dkey})
    assert_problem(e, 401)
    expect_error(UnauthorizedException, create, base, tenant="default", api_key={"ApiKeyAuth": akey})
    expect_error(UnauthorizedException, create, base, tenant="no-such-tenant", api_key={"ApiKeyAuth": dkey})


# ----- refresh ----------------------------------------------------------------------------


def test_refresh_old_and_new_both_valid(server, base, make_user):
    u = make_user()
    old = create(base, username=u.username, password=u.password)
    old_claims = server.verify(old)
    time.sleep(1.1)  # so that the new token's validity visibly extends past the old one's
    new = refresh(base, old)
    new_claims = server.verify(new)
    assert new != old and new_claims["jti"] != old_claims["jti"]
    assert new_claims["username"] == u.username and new_claims["aud"] == "ica"
    assert new_claims["exp"] > old_claims["exp"], (old_claims, new_claims)
    # The old token stays valid until its own expiry: it refreshes again; so does the new.
    assert server.verify(refresh(base, old))["username"] == u.username
    assert server.verify(refresh(base, new))["username"] == u.username


def test_refresh_in_other_tenant(server, base, make_user):
    a = make_user(ACME)
    tok = create(base, tenant=ACME, username=a.username, password=a.password)
    assert server.verify(refresh(base, tok), ACME)["tenant"] == ACME


def test_refresh_api_key_token_is_forbidden(server, base, make_user):
    u = make_user()
    key = server.apikey_create(u.tenant, u.username)["key"]
    tok = create(base, api_key={"ApiKeyAuth": key})
    e = expect_error(ForbiddenException, refresh, base, tok)
    assert_problem(e, 403)


def test_refresh_needs_an_ica_jwt(server, base, make_user):
    u = make_user()
    # Not a token, or no token at all.
    e = expect_error(UnauthorizedException, refresh, base, "not-a-jwt")
    assert_problem(e, 401)
    with ica.ApiClient(config(base)) as c:
        with pytest.raises(UnauthorizedException):
            TokenApi(c).refresh_jwt_token()
    # A token of this server for another front (SFTPGo user token): refused.
    sftpgo = requests.get(base + "/api/v2/user/token", auth=(u.username, u.password))
    assert sftpgo.status_code == 200, sftpgo.text
    e = expect_error(UnauthorizedException, refresh, base, sftpgo.json()["access_token"])
    assert_problem(e, 401)
    # A tampered ICA token: refused.
    good = create(base, username=u.username, password=u.password)
    head, payload, sig = good.split(".")
    bad = f"{head}.{payload}.{sig[:10]}{'A' if sig[10] != 'A' else 'B'}{sig[11:]}"
    expect_error(UnauthorizedException, refresh, base, bad)



def test_ps_token_bearer(server, base, make_user):
    """PsTokenAuth: a user's access token of this server (here from the standard password
    grant) stands for the IdP token on create_jwt_token; a client token or garbage does not."""
    u = make_user()
    c = server.client_create(u.tenant, f"ica-ps-{time.time_ns()}", "password,client_credentials")
    r = requests.post(
        f"{server.issuer(u.tenant)}/oauth2/token",
        auth=(c["client_id"], c["client_secret"]),
        data={"grant_type": "password", "username": u.username, "password": u.password},
    )
    assert r.status_code == 200, r.text
    token = create(base, access_token=r.json()["access_token"])
    claims = server.verify(token)
    assert claims["username"] == u.username and claims["aud"] == "ica", claims
    refresh(base, token)
    r = requests.post(
        f"{server.issuer(u.tenant)}/oauth2/token",
        auth=(c["client_id"], c["client_secret"]),
        data={"grant_type": "client_credentials"},
    )
    assert r.status_code == 200, r.text
    e = expect_error(UnauthorizedException, create, base, access_token=r.json()["access_token"])
    assert_problem(e, 401)
    e = expect_error(UnauthorizedException, create, base, access_token="not.a.token")
    assert_problem(e, 401)
