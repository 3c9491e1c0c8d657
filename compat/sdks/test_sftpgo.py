"""SFTPGo front (`/api/v2`) driven by the published `sftpgo-client` 0.3.1 (CONTRACTS.md
sections 3 and 5): the `sftpgo_client.Client` wrapper for admin tokens and logout, the
low-level `get_user_token` / `client_logout` functions for user tokens."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import requests
import sftpgo_client
from sftpgo_client.base.api.token import client_logout, get_token, get_user_token, logout
from sftpgo_client.base.client import AuthenticatedClient, Client
from sftpgo_client.base.models import ApiResponse, Token

from conftest import ACME, ACME_HOST, avoid_step_edge, basic, wrong_code

UTC_SECONDS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TOKEN_TTL = timedelta(minutes=20)


@pytest.fixture
def api(base) -> str:
    return base + "/api/v2"


def body(r) -> dict:
    """The JSON body of a sync_detailed() response."""
    return json.loads(r.content)


def user_token(api: str, authorization: str, otp: str | None = None, headers: dict | None = None):
    c = Client(base_url=api, headers={"Authorization": authorization, **(headers or {})})
    if otp is None:
        return get_user_token.sync_detailed(client=c)
    return get_user_token.sync_detailed(client=c, x_sftpgo_otp=otp)


def admin_token(api: str, authorization: str | None, otp: str | None = None):
    c = Client(base_url=api, headers={"Authorization": authorization} if authorization else {})
    if otp is None:
        return get_token.sync_detailed(client=c)
    return get_token.sync_detailed(client=c, x_sftpgo_otp=otp)


def assert_unauthorized(r, error: bool = True, message: str = "Unauthorized") -> dict:
    assert r.status_code == 401, (r.status_code, r.content)
    assert r.parsed is None
    b = body(r)
    assert b["message"] == message, b
    if error:
        assert isinstance(b.get("error"), str) and b["error"], b
    else:
        assert "error" not in b, b
    return b


def assert_basic_challenge(headers) -> None:
    assert headers.get("www-authenticate") == 'Basic realm="SFTPGo"', dict(headers)


def assert_token(server, t: Token, raw_content: bytes, tenant: str = "default") -> dict:
    """A Token the SDK parsed: UTC `expires_at` with `Z`, whole seconds, about 20 min ahead."""
    assert isinstance(t, Token)
    raw = json.loads(raw_content)
    assert UTC_SECONDS_Z.match(raw["expires_at"]), raw
    assert isinstance(t.expires_at, datetime)
    assert t.expires_at.utcoffset() == timedelta(0), t.expires_at
    left = t.expires_at - datetime.now(timezone.utc)
    assert TOKEN_TTL - timedelta(seconds=30) < left <= TOKEN_TTL + timedelta(seconds=2), left
    claims = server.verify(t.access_token, tenant)
    assert claims["exp"] == int(t.expires_at.timestamp()), claims
    return claims


def audiences(claims: dict) -> list:
    aud = claims["aud"]
    return aud if isinstance(aud, list) else [aud]


# ----- admin tokens (the SDK's Client wrapper) ----------------------------------------------


def test_admin_wrapper_token_and_logout(server, api):
    admin = sftpgo_client.Client(base_url=api, user="admin", password=server.admin_password)
    t = admin.get_token()  # GET /api/v2/token, Basic
    r = admin_token(api, basic("admin", server.admin_password))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    claims = assert_token(server, r.parsed, r.content)
    assert claims["username"] == "admin" and "API" in audiences(claims), claims
    assert claims["permissions"] == ["*"], claims
    assert isinstance(t.access_token, str) and t.access_token.count(".") == 2

    # The proxied logout fetches a token first and caches it with `expires_at` read as
    # naive UTC: the cached expiry must be about 20 minutes ahead of utcnow().
    resp = admin.logout()
    assert isinstance(resp, ApiResponse) and resp.message == "Your token has been invalidated", resp
    assert not admin.token_expired
    ahead = admin.token_expires_at - datetime.now(timezone.utc).replace(tzinfo=None)
    assert TOKEN_TTL - timedelta(seconds=30) < ahead <= TOKEN_TTL + timedelta(seconds=2), ahead

    # The token the wrapper logged out is dead: reuse gives 401 "no longer valid".
    again = logout.sync_detailed(client=AuthenticatedClient(base_url=api, token=admin.token))
    assert_unauthorized(again, error=False, message="Your token is no longer valid")
    # The other admin token is untouched by that logout.
    ok = logout.sync_detailed(client=AuthenticatedClient(base_url=api, token=r.parsed.access_token))
    assert ok.status_code == 200 and body(ok) == {"message": "Your token has been invalidated"}


def test_admin_wrapper_wrong_password_raises(api):
    admin = sftpgo_client.Client(base_url=api, user="admin", password="not-the-password")
    with pytest.raises(httpx.HTTPStatusError) as e:
        admin.get_token()
    res = e.value.response
    assert res.status_code == 401
    assert res.json() == {"error": "invalid credentials", "message": "Unauthorized"}
    assert_basic_challenge(res.headers)


def test_admin_token_without_basic(api):
    r = admin_token(api, None)
    assert_unauthorized(r, error=False)
    assert_basic_challenge(r.headers)


def test_user_is_not_an_admin(server, api, make_user):
    u = make_user()
    r = admin_token(api, u.basic)
    b = assert_unauthorized(r)
    assert b == {"error": "invalid credentials", "message": "Unauthorized"}
    with pytest.raises(httpx.HTTPStatusError):
        sftpgo_client.Client(base_url=api, user=u.username, password=u.password).get_token()


# ----- user tokens (low-level functions) -----------------------------------------------------


def test_contract_snippet(server, api, make_user):
    """CONTRACTS.md section 5 verbatim (an OTP sent for a user without 2FA is ignored)."""
    u = make_user()
    admin = sftpgo_client.Client(base_url=api, user="admin", password=server.admin_password)
    t = admin.get_token()
    assert isinstance(t.access_token, str) and isinstance(t.expires_at, datetime)
    assert admin.logout().message == "Your token has been invalidated"
    basic_header = "Basic " + base64.b64encode(f"{u.username}:{u.password}".encode()).decode()
    ut = get_user_token.sync(client=Client(base_url=api, headers={"Authorization": basic_header}),
                             x_sftpgo_otp="123456")
    assert isinstance(ut, Token)
    r = client_logout.sync_detailed(client=AuthenticatedClient(base_url=api, token=ut.access_token))
    assert r.status_code == 200 and r.parsed.message == "Your token has been invalidated"


def test_user_token_logout_then_reuse(server, api, base, make_user):
    u = make_user()
    r = user_token(api, u.basic)
    assert r.status_code == 200, r.content
    claims = assert_token(server, r.parsed, r.content)
    assert claims["username"] == u.username and "APIUser" in audiences(claims), claims
    tok = r.parsed.access_token

    out = client_logout.sync_detailed(client=AuthenticatedClient(base_url=api, token=tok))
    assert out.status_code == 200 and out.parsed.message == "Your token has been invalidated"
    assert body(out) == {"message": "Your token has been invalidated"}

    again = client_logout.sync_detailed(client=AuthenticatedClient(base_url=api, token=tok))
    assert_unauthorized(again, error=False, message="Your token is no longer valid")
    # The revocation is the server's, not the front's: the token is dead everywhere.
    ds = requests.get(base + "/api/2.0/security/oauth2/token", headers={"Authorization": "Bearer " + tok})
    assert ds.status_code == 401, ds.text


def test_user_token_bearer_prefix_any_case(server, api, make_user):
    u = make_user()
    tok = user_token(api, u.basic).parsed.access_token
    c = Client(base_url=api, headers={"Authorization": "bEaReR " + tok})
    r = client_logout.sync_detailed(client=c)
    assert r.status_code == 200 and r.parsed.message == "Your token has been invalidated"


def test_user_token_wrong_password(api, make_user):
    u = make_user()
    r = user_token(api, basic(u.username, "wrong-" + u.password))
    assert body(r) == {"error": "invalid credentials", "message": "Unauthorized"}
    assert_unauthorized(r)
    assert_basic_challenge(r.headers)


def test_user_token_unknown_user(api):
    r = user_token(api, basic("nobody@example.org", "some-password-1"))
    assert body(r) == {"error": "invalid credentials", "message": "Unauthorized"}


def test_user_token_blank_password_or_no_basic(api, make_user):
    u = make_user()
    assert_unauthorized(user_token(api, basic(u.username, "   ")), error=False)
    assert_unauthorized(user_token(api, basic("", u.password)), error=False)
    r = get_user_token.sync_detailed(client=Client(base_url=api))
    assert_unauthorized(r, error=False)
    assert_basic_challenge(r.headers)


def test_user_token_disabled_user(server, api, make_user):
    u = make_user()
    server.user_disable(u.tenant, u.username)
    assert_unauthorized(user_token(api, u.basic))


def test_api_key_is_not_a_password(server, api, make_user):
    u = make_user()
    key = server.apikey_create(u.tenant, u.username)["key"]
    assert_unauthorized(user_token(api, basic(u.username, key)))
    # Nor is it a Bearer token for logout.
    r = client_logout.sync_detailed(client=AuthenticatedClient(base_url=api, token=key))
    assert_unauthorized(r)


# ----- audiences: admin and user tokens are not interchangeable ----------------------------


def test_admin_and_user_tokens_are_not_interchangeable(server, api, make_user):
    u = make_user()
    user_tok = user_token(api, u.basic).parsed.access_token
    admin_tok = admin_token(api, basic("admin", server.admin_password)).parsed.access_token

    r = logout.sync_detailed(client=AuthenticatedClient(base_url=api, token=user_tok))
    assert_unauthorized(r, error=False, message="Your token audience is not valid")
    r = client_logout.sync_detailed(client=AuthenticatedClient(base_url=api, token=admin_tok))
    assert_unauthorized(r, error=False, message="Your token audience is not valid")

    # The refused calls revoked nothing: each token still logs out where it belongs.
    r = client_logout.sync_detailed(client=AuthenticatedClient(base_url=api, token=user_tok))
    assert r.status_code == 200 and r.parsed.message == "Your token has been invalidated"
    r = logout.sync_detailed(client=AuthenticatedClient(base_url=api, token=admin_tok))
    assert r.status_code == 200 and r.parsed.message == "Your token has been invalidated"


def test_admin_account_at_both_endpoints(server, api, make_user):
    """A Tessera admin (role admin) signs in at /token and gets the admin audience; the same
    account at /user/token gets a user token."""
    a = make_user(admin=True)
    r = admin_token(api, a.basic)
    assert r.status_code == 200, r.content
    assert "API" in audiences(server.verify(r.parsed.access_token))
    r = user_token(api, a.basic)
    assert r.status_code == 200, r.content
    assert "APIUser" in audiences(server.verify(r.parsed.access_token))


def test_logout_with_garbage_or_no_token(api):
    r = logout.sync_detailed(client=AuthenticatedClient(base_url=api, token="not.a.jwt"))
    assert_unauthorized(r)
    r = client_logout.sync_detailed(client=AuthenticatedClient(base_url=api, token="eyJhbGciOiJIUzI1NiJ9.e30.x"))
    assert_unauthorized(r)
    r = client_logout.sync_detailed(client=Client(base_url=api))
    assert_unauthorized(r)


# ----- TOTP 2FA via X-SFTPGO-OTP ----------------------------------------------------------


def test_user_totp_missing_invalid_replayed(api, totp_user):
    u = totp_user
    # No code, or a wrong one: 401 in the bad-credentials shape.
    assert_unauthorized(user_token(api, u.basic))
    assert_unauthorized(user_token(api, u.basic, otp=wrong_code(u.totp)))
    # The right password is still required with a good code.
    avoid_step_edge()
    assert_unauthorized(user_token(api, basic(u.username, "wrong-" + u.password), otp=u.totp.now()))

    avoid_step_edge()
    code = u.totp.now()
    r = user_token(api, u.basic, otp=code)
    assert r.status_code == 200, r.content
    assert isinstance(r.parsed, Token)
    # The same code again: replay, refused.
    assert_unauthorized(user_token(api, u.basic, otp=code))
    # The next step's code is fresh (inside the +-1 step window): accepted without waiting.
    r = user_token(api, u.basic, otp=u.totp.at(time.time() + 30))
    assert r.status_code == 200, r.content


def test_user_totp_recovery_code_once(api, totp_user):
    u = totp_user
    code = u.recovery_codes[0]
    r = user_token(api, u.basic, otp=code)
    assert r.status_code == 200, r.content
    assert_unauthorized(user_token(api, u.basic, otp=code))
    r = user_token(api, u.basic, otp=u.recovery_codes[1])
    assert r.status_code == 200, r.content


def test_admin_totp_with_wrapper_and_low_level(server, api, make_user):
    a = make_user(admin=True)
    server.enable_totp(a)
    with pytest.raises(httpx.HTTPStatusError) as e:
        sftpgo_client.Client(base_url=api, user=a.username, password=a.password).get_token()
    assert e.value.response.status_code == 401
    assert e.value.response.json()["message"] == "Unauthorized"

    avoid_step_edge()
    code = a.totp.now()
    # The wrapper sends its `headers` on the token request too.
    w = sftpgo_client.Client(base_url=api, user=a.username, password=a.password, headers={"X-SFTPGO-OTP": code})
    t = w.get_token()
    assert "API" in audiences(server.verify(t.access_token))
    # Replayed through the low-level function: refused.
    assert_unauthorized(admin_token(api, a.basic, otp=code))
    r = admin_token(api, a.basic, otp=a.recovery_codes[0])
    assert r.status_code == 200, r.content


# ----- tenants: selected by Host ---------------------------------------------------------------


def test_tenant_selected_by_host(server, api, make_user):
    name = "shared@example.org"
    d = make_user(username=name)
    a = make_user(ACME, username=name)

    r = user_token(api, a.basic, headers={"Host": ACME_HOST})
    assert r.status_code == 200, r.content
    claims = assert_token(server, r.parsed, r.content, tenant=ACME)
    assert claims["username"] == name

    # Each tenant checks its own user's password.
    assert_unauthorized(user_token(api, a.basic))
    assert_unauthorized(user_token(api, d.basic, headers={"Host": ACME_HOST}))
    r = user_token(api, d.basic)
    assert r.status_code == 200 and server.verify(r.parsed.access_token)["tenant"] == "default"

    # A token of one tenant is not valid at another.
    acme_tok = user_token(api, a.basic, headers={"Host": ACME_HOST}).parsed.access_token
    r = client_logout.sync_detailed(client=AuthenticatedClient(base_url=api, token=acme_tok))
    assert_unauthorized(r)
    r = client_logout.sync_detailed(
        client=AuthenticatedClient(base_url=api, token=acme_tok, headers={"Host": ACME_HOST})
    )
    assert r.status_code == 200 and r.parsed.message == "Your token has been invalidated"


def test_basic_credentials_encoding(server, api, make_user):
    """A password with ':' and non-ASCII characters survives the SDK's Basic header."""
    u = make_user(password="p:ss wörd-1234")
    auth = "Basic " + base64.b64encode(f"{u.username}:{u.password}".encode()).decode()
    r = get_user_token.sync_detailed(client=Client(base_url=api, headers={"Authorization": auth}))
    assert r.status_code == 200, r.content
