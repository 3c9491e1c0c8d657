"""Discovery metadata (RFC 8414, and the OpenID-style path), checked per tenant.

RFC 8414 section 3.3: the `issuer` in the document MUST be identical to the issuer identifier
from which the well-known URL was formed; for Tessera that is the URL prefix of the tenant.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import jwt
import pytest
import requests
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata, get_well_known_url

from tessera_harness import HTTP_TIMEOUT, Tenant, TesseraServer, client_credentials_token

DOCS = ["openid-configuration", "oauth-authorization-server"]


@pytest.fixture(scope="module")
def tenants(server: TesseraServer) -> dict[str, Tenant]:
    return {
        "default": server.default_tenant(),
        "EdDSA": server.create_tenant("EdDSA"),
        "ES256": server.create_tenant("ES256"),
        "RS256": server.create_tenant("RS256"),
    }


def fetch(url: str) -> dict:
    resp = requests.get(url, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, f"GET {url} -> {resp.status_code} {resp.text}"
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    return resp.json()


@pytest.mark.parametrize("doc", DOCS)
@pytest.mark.parametrize("which", ["default", "EdDSA", "ES256", "RS256"])
def test_metadata_under_tenant_prefix(tenants, which, doc):
    tenant = tenants[which]
    meta = fetch(tenant.url(f"/.well-known/{doc}"))

    assert meta["issuer"] == tenant.prefix  # issuer == the URL prefix the document was found under
    assert meta["token_endpoint"] == tenant.token_endpoint
    assert meta["introspection_endpoint"] == tenant.introspection_endpoint
    assert meta["revocation_endpoint"] == tenant.revocation_endpoint
    assert meta["jwks_uri"] == tenant.jwks_uri
    assert {"client_credentials", "password", "refresh_token"} <= set(meta["grant_types_supported"])
    assert {"client_secret_basic", "client_secret_post"} <= set(meta["token_endpoint_auth_methods_supported"])
    if "access_token_signing_alg_values_supported" in meta:
        assert tenant.alg in meta["access_token_signing_alg_values_supported"]

    # The endpoints advertised actually work: the JWKS is served where the document says.
    assert fetch(meta["jwks_uri"])["keys"]


@pytest.mark.parametrize("which", ["default", "EdDSA", "ES256", "RS256"])
def test_both_documents_agree(tenants, which):
    tenant = tenants[which]
    a, b = (fetch(tenant.url(f"/.well-known/{doc}")) for doc in DOCS)
    for key in ("issuer", "token_endpoint", "introspection_endpoint", "revocation_endpoint", "jwks_uri"):
        assert a[key] == b[key], key


@pytest.mark.parametrize("which", ["default", "EdDSA", "ES256", "RS256"])
def test_rfc8414_well_known_url_from_issuer(tenants, which):
    """RFC 8414 section 3.1: insert /.well-known/oauth-authorization-server between host and path."""
    tenant = tenants[which]
    url = get_well_known_url(tenant.issuer, external=True)  # authlib's own construction
    if which != "default":
        assert urlsplit(url).path == f"/.well-known/oauth-authorization-server/t/{tenant.name}"
    meta = fetch(url)
    assert meta["issuer"] == tenant.issuer


@pytest.mark.parametrize("which", ["default", "ES256"])
def test_metadata_validates_with_authlib(tenants, which):
    meta = AuthorizationServerMetadata(fetch(tenants[which].url("/.well-known/oauth-authorization-server")))
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    for key in AuthorizationServerMetadata.REGISTRY_KEYS:
        getattr(meta, f"validate_{key}")()


@pytest.mark.parametrize("which", ["default", "EdDSA", "ES256", "RS256"])
def test_discovered_issuer_matches_token_iss(server, tenants, which):
    tenant = tenants[which]
    meta = fetch(tenant.url("/.well-known/oauth-authorization-server"))
    client = server.create_client(tenant)
    # Use the discovered token endpoint, not the one we computed.
    resp = requests.post(
        meta["token_endpoint"], data={"grant_type": "client_credentials"}, auth=client.basic, timeout=HTTP_TIMEOUT
    )
    assert resp.status_code == 200, resp.text
    claims = jwt.decode(resp.json()["access_token"], options={"verify_signature": False})
    assert claims["iss"] == meta["issuer"]


def test_unknown_tenant_is_404(server):
    resp = requests.get(f"{server.base_url}/t/nosuchtenant0/.well-known/oauth-authorization-server",
                        timeout=HTTP_TIMEOUT)
    assert resp.status_code == 404


def test_custom_issuer_in_metadata(server):
    issuer = "https://id.example.test/acme"
    tenant = server.create_tenant("EdDSA", extra=("--issuer", issuer))
    meta = fetch(tenant.url("/.well-known/oauth-authorization-server"))
    assert meta["issuer"] == issuer
    token = client_credentials_token(server.create_client(tenant))["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == issuer
