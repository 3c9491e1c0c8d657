"""The browser flow (authorization code + PKCE S256, OpenID Connect) completed by authlib's
OAuth2Session, with the login and consent forms posted by requests as a browser would, and
the ID token validated by authlib's own OpenID Connect rules (CodeIDToken: iss, aud, exp,
iat, nonce, at_hash)."""

from __future__ import annotations

import json
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

from tessera_harness import HTTP_TIMEOUT, Tenant, TesseraServer

REDIRECT_URI = "https://rp.example/callback"


def code_client(server: TesseraServer, tenant: Tenant) -> str:
    out = server.cli("client", "create", "--tenant", tenant.name, "--name", "py-browser-" + secrets.token_hex(3),
                     "--grant", "authorization_code,refresh_token", "--redirect-uri", REDIRECT_URI, "--public",
                     "--json").stdout
    return json.loads(out)["client_id"]


def field(html: str, name: str) -> str:
    m = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), html)
    assert m, f"no field {name} in {html}"
    return m.group(1)


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
def test_authlib_completes_the_code_flow_and_validates_the_id_token(server: TesseraServer, alg: str):
    tenant = server.create_tenant(alg)
    username, password = server.create_user(tenant)
    client_id = code_client(server, tenant)
    meta = requests.get(tenant.url("/.well-known/openid-configuration"), timeout=HTTP_TIMEOUT).json()

    rp = OAuth2Session(client_id, redirect_uri=REDIRECT_URI, scope="openid profile",
                       code_challenge_method="S256", token_endpoint_auth_method="none")
    verifier = generate_token(48)
    nonce = generate_token(20)
    url, state = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)

    browser = requests.Session()
    login = browser.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert login.status_code == 200, login.text
    consent = browser.post(url, data={"csrf": field(login.text, "csrf"), "step": "password", "username": username,
                                      "password": password}, allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert consent.status_code == 200, consent.text
    back = browser.post(url, data={"csrf": field(consent.text, "csrf"), "step": "consent", "decision": "allow"},
                        allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert back.status_code == 303, back.text
    location = back.headers["Location"]
    params = parse_qs(urlsplit(location).query)
    assert params["iss"] == [meta["issuer"]]  # RFC 9207
    assert params["state"] == [state]

    token = rp.fetch_token(meta["token_endpoint"], authorization_response=location, state=state,
                           code_verifier=verifier, timeout=HTTP_TIMEOUT)
    assert token["token_type"] == "Bearer" and token["refresh_token"].startswith("tsr_")

    jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=HTTP_TIMEOUT).json())
    claims = jwt.decode(
        token["id_token"], jwks, claims_cls=CodeIDToken,
        claims_options={"iss": {"values": [meta["issuer"]]}},
        claims_params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate()
    assert claims["sub"] == username
    assert claims["amr"] == ["pwd"]
    assert claims.header["typ"] == "JWT"

    # A wrong nonce is caught by authlib's own check.
    wrong = jwt.decode(token["id_token"], jwks, claims_cls=CodeIDToken,
                       claims_options={"iss": {"values": [meta["issuer"]]}},
                       claims_params={"nonce": "other", "client_id": client_id})
    with pytest.raises(Exception):
        wrong.validate()

    info = rp.get(meta["userinfo_endpoint"], timeout=HTTP_TIMEOUT)
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == username and info.json()["preferred_username"] == username
