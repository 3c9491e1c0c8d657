"""ONLYOFFICE DocSpace front (`GET /api/2.0/security/oauth2/token`) driven by the published
`docspace-api-sdk` 3.7.0 (OAuth2Api.generate_jwt_token), with every auth scheme the SDK
offers, plus the raw forms real clients send (CONTRACTS.md sections 1 and 5)."""

from __future__ import annotations

import json
import time
import uuid

import docspace_api_sdk as ds
import pytest
import requests
from docspace_api_sdk.exceptions import UnauthorizedException

from conftest import ACME, ACME_HOST, avoid_step_edge, wrong_code

PATH = "/api/2.0/security/oauth2/token"
TTL = 5 * 60


def generate(base: str, headers: dict | None = None, **kw) -> ds.StringWrapper:
    cfg = ds.Configuration(host=base, **kw)
    with ds.ApiClient(cfg) as c:
        for k, v in (headers or {}).items():
            c.set_default_header(k, v)
        return ds.OAuth2Api(c).generate_jwt_token()


def unauthorized(base: str, headers: dict | None = None, **kw) -> UnauthorizedException:
    with pytest.raises(UnauthorizedException) as e:
        generate(base, headers, **kw)
    ex = e.value
    assert ex.status == 401
    b = json.loads(ex.body)
    assert b["status"] == 1 and b["statusCode"] == 401 and isinstance(b["error"]["message"], str), b
    return ex


def check(server, r: ds.StringWrapper, user, tenant: str = "default") -> dict:
    """The StringWrapper envelope and the DocSpace claims of its JWT."""
    assert isinstance(r, ds.StringWrapper)
    assert r.status_code == 200 and r.status == 0 and r.count == 1, r
    assert r.links and r.links[0].href == server.base + PATH and r.links[0].action == "GET", r.links
    claims = server.verify(r.response, tenant)
    assert claims["user_email"] == user.email, claims
    assert claims["user_name"] and claims["user_id"], claims
    assert claims["is_admin"] == ("true" if user.admin else "false"), claims
    assert claims["is_guest"] == "false" and claims["is_public"] in ("", "false"), claims
    # DocSpace's tenant_url is the portal's root URL, here the tenant's issuer; its tokens have
    # an audience of their own, so that no other front takes them (no client reads `aud`).
    assert isinstance(claims["tenant_id"], str) and claims["tenant_url"] == server.issuer(tenant), claims
    assert claims["iss"] == server.issuer(tenant) and claims["aud"] == "docspace", claims
    assert abs(claims["exp"] - (time.time() + TTL)) < 30, claims
    return claims


def password_grant_token(server, user) -> str:
    c = server.client_create(user.tenant, f"docspace-{uuid.uuid4().hex[:8]}", "password")
    r = requests.post(
        f"{server.issuer(user.tenant)}/oauth2/token",
        auth=(c["client_id"], c["client_secret"]),
        data={"grant_type": "password", "username": user.username, "password": user.password},
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


# ----- each scheme the SDK has ------------------------------------------------------------


def test_basic(server, base, make_user):
    u = make_user()
    check(server, generate(base, username=u.username, password=u.password), u)


def test_basic_admin_claims(server, base, make_user):
    a = make_user(admin=True)
    check(server, generate(base, username=a.username, password=a.password), a)


def test_bearer_password_grant_token(server, base, make_user):
    u = make_user()
    tok = password_grant_token(server, u)
    check(server, generate(base, access_token=tok), u)


def test_bearer_docspace_token_itself(server, base, make_user):
    a = make_user(admin=True)
    first = generate(base, username=a.username, password=a.password).response
    check(server, generate(base, access_token=first), a)


def test_api_key_bearer_header(server, base, make_user):
    """`api_key={"ApiKeyBearer": k}` sends a header literally named ApiKeyBearer."""
    u = make_user()
    key = server.apikey_create(u.tenant, u.username)["key"]
    check(server, generate(base, api_key={"ApiKeyBearer": key}), u)
    # The real server reads API keys from Authorization: Bearer; the SDK's Bearer slot.
    check(server, generate(base, access_token=key), u)


def test_asc_auth_key_bare_cookie(server, base, make_user):
    """`api_key={"asc_auth_key": v}` sends `Cookie: <v>` with no name (the generator's bug)."""
    u = make_user()
    key = server.apikey_create(u.tenant, u.username)["key"]
    check(server, generate(base, api_key={"asc_auth_key": key}), u)


def test_asc_auth_key_with_prefix(server, base, make_user):
    """With api_key_prefix the SDK sends `Cookie: asc_auth_key= <v>` (note the space)."""
    u = make_user()
    key = server.apikey_create(u.tenant, u.username)["key"]
    r = generate(base, api_key={"asc_auth_key": key}, api_key_prefix={"asc_auth_key": "asc_auth_key="})
    check(server, r, u)


def test_raw_cookie_and_authorization_forms(server, base, make_user):
    """What real (non-SDK) clients send: a named cookie among others, Bearer, a raw value."""
    u = make_user()
    key = server.apikey_create(u.tenant, u.username)["key"]
    tok = password_grant_token(server, u)
    for headers in (
        {"Cookie": f"asc_auth_key={key}"},
        {"Cookie": f"theme=dark; asc_auth_key={key}; lang=en"},
        {"Cookie": f"asc_auth_key={tok}"},
        {"Authorization": f"Bearer {key}"},
        {"Authorization": key},
        {"ApiKeyBearer": f"Bearer {key}"},
    ):
        r = requests.get(base + PATH, headers=headers)
        assert r.status_code == 200, (headers, r.text)
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        body = r.json()
        assert isinstance(body["statusCode"], int) and isinstance(body["count"], int), body
        assert server.verify(body["response"])["user_email"] == u.email
    r = requests.get(base + PATH, headers={"Cookie": "asc_auth_key=tsk_not-a-key"})
    assert r.status_code == 401


# ----- failures -------------------------------------------------------------------------


def test_unauthenticated(base):
    unauthorized(base)


def test_wrong_password(base, make_user):
    u = make_user()
    unauthorized(base, username=u.username, password="wrong-" + u.password)


def test_revoked_api_key(server, base, make_user):
    u = make_user()
    k = server.apikey_create(u.tenant, u.username)
    check(server, generate(base, api_key={"ApiKeyBearer": k["key"]}), u)
    server.apikey_revoke(u.tenant, k["id"])
    unauthorized(base, api_key={"ApiKeyBearer": k["key"]})
    unauthorized(base, api_key={"asc_auth_key": k["key"]})
    unauthorized(base, access_token=k["key"])


def test_expired_api_key(server, base, make_user):
    u = make_user()
    k = server.apikey_create(u.tenant, u.username, expires="1")
    time.sleep(max(0.0, k["expires_at"] - time.time()) + 0.3)
    unauthorized(base, api_key={"ApiKeyBearer": k["key"]})
    unauthorized(base, api_key={"asc_auth_key": k["key"]})


def test_garbage_and_tampered_bearer(server, base, make_user):
    unauthorized(base, access_token="not-a-jwt")
    u = make_user()
    tok = generate(base, username=u.username, password=u.password).response
    head, payload, sig = tok.split(".")
    bad = f"{head}.{payload}.{sig[:10]}{'A' if sig[10] != 'A' else 'B'}{sig[11:]}"
    unauthorized(base, access_token=bad)


def test_disabled_user(server, base, make_user):
    u = make_user()
    key = server.apikey_create(u.tenant, u.username)["key"]
    tok = generate(base, username=u.username, password=u.password).response
    server.user_disable(u.tenant, u.username)
    unauthorized(base, username=u.username, password=u.password)
    unauthorized(base, access_token=tok)
    unauthorized(base, api_key={"ApiKeyBearer": key})


def test_revoked_bearer_token(server, base, make_user):
    """A token revoked at the server (RFC 7009, by the client it was issued to) is refused."""
    u = make_user()
    c = server.client_create(u.tenant, f"docspace-rev-{uuid.uuid4().hex[:8]}", "password")
    r = requests.post(
        f"{server.issuer(u.tenant)}/oauth2/token",
        auth=(c["client_id"], c["client_secret"]),
        data={"grant_type": "password", "username": u.username, "password": u.password},
    )
    assert r.status_code == 200, r.text
    tok = r.json()["access_token"]
    derived = generate(base, access_token=tok).response
    check(server, generate(base, access_token=derived), u)
    out = requests.post(
        f"{server.issuer(u.tenant)}/oauth2/revoke", auth=(c["client_id"], c["client_secret"]), data={"token": tok}
    )
    assert out.status_code == 200, out.text
    unauthorized(base, access_token=tok)
    # What DocSpace minted from the revoked token's session ends with it.
    unauthorized(base, access_token=derived)


def test_tokens_of_other_fronts_are_refused(server, base, make_user):
    """Each front takes only tokens meant for it: SFTPGo's and ICA's are not DocSpace's."""
    u = make_user()
    sftpgo = requests.get(base + "/api/v2/user/token", auth=(u.username, u.password)).json()["access_token"]
    unauthorized(base, access_token=sftpgo)
    r = requests.post(base + "/ica/rest/api/tokens", auth=(u.username, u.password))
    assert r.status_code == 200, r.text
    unauthorized(base, access_token=r.json()["token"])


# ----- 2FA --------------------------------------------------------------------------------


def test_basic_totp(server, base, totp_user):
    u = totp_user
    creds = dict(username=u.username, password=u.password)
    unauthorized(base, **creds)
    unauthorized(base, headers={"X-Tessera-OTP": wrong_code(u.totp)}, **creds)
    avoid_step_edge()
    code = u.totp.now()
    check(server, generate(base, headers={"X-Tessera-OTP": code}, **creds), u)
    unauthorized(base, headers={"X-Tessera-OTP": code}, **creds)  # replay
    check(server, generate(base, headers={"X-Tessera-OTP": u.recovery_codes[0]}, **creds), u)
    unauthorized(base, headers={"X-Tessera-OTP": u.recovery_codes[0]}, **creds)
    # A 2FA user's API key is its own credential.
    key = server.apikey_create(u.tenant, u.username)["key"]
    check(server, generate(base, api_key={"asc_auth_key": key}), u)


# ----- tenants (by Host) and admin-vs-user ---------------------------------------------------


def test_tenant_selected_by_host(server, base, make_user):
    name = f"both-{time.time_ns()}@example.org"
    d = make_user(username=name)
    a = make_user(ACME, username=name, admin=True)
    host = {"Host": ACME_HOST}

    claims = check(server, generate(base, headers=host, username=a.username, password=a.password), a, ACME)
    assert claims["tenant_id"] == ACME
    claims = check(server, generate(base, username=d.username, password=d.password), d)
    assert claims["tenant_id"] == "default"
    # Each tenant checks its own password, keys and tokens.
    unauthorized(base, headers=host, username=d.username, password=d.password)
    dkey = server.apikey_create("default", d.username)["key"]
    unauthorized(base, headers=host, api_key={"ApiKeyBearer": dkey})
    akey = server.apikey_create(ACME, a.username)["key"]
    check(server, generate(base, headers=host, api_key={"ApiKeyBearer": akey}), a, ACME)
    unauthorized(base, api_key={"ApiKeyBearer": akey})
    acme_tok = generate(base, headers=host, username=a.username, password=a.password).response
    unauthorized(base, access_token=acme_tok)


def test_user_token_does_not_make_an_admin(server, base, make_user):
    """is_admin follows the account: a user's token (or key) never yields "true", an admin's
    always does, whatever scheme carries it."""
    u = make_user()
    a = make_user(admin=True)
    ukey = server.apikey_create(u.tenant, u.username)["key"]
    akey = server.apikey_create(a.tenant, a.username)["key"]
    for who, kw in (
        (u, dict(api_key={"asc_auth_key": ukey})),
        (u, dict(access_token=password_grant_token(server, u))),
        (a, dict(api_key={"ApiKeyBearer": akey})),
        (a, dict(access_token=password_grant_token(server, a))),
    ):
        check(server, generate(base, **kw), who)
