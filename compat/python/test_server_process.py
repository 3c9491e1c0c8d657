"""The server process itself: first start, graceful SIGTERM, and a restart on the same data dir
(keys, clients and revocations survive; old tokens still verify with PyJWT)."""

from __future__ import annotations

import shutil
import stat
import time

import jwt
import pytest
import requests

from tessera_harness import HTTP_TIMEOUT, Client, Tenant, TesseraServer, client_credentials_token, start_server, tessera_bin


@pytest.fixture
def own_server():
    srv = start_server()
    yield srv
    srv.stop()
    shutil.rmtree(srv.workdir, ignore_errors=True)


def test_first_start_creates_data_dir(own_server: TesseraServer):
    key = own_server.data_dir / "master.key"
    assert key.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (own_server.data_dir / "tessera.db").is_file()
    assert own_server.bootstrap_password, own_server.stdout_lines
    # The bootstrap line comes before the listening line.
    kinds = [line.split(":")[0] for line in own_server.stdout_lines]
    assert kinds.index("bootstrap admin") < kinds.index("tessera listening on http")
    for path in ("/healthz", "/readyz"):
        assert requests.get(own_server.base_url + path, timeout=HTTP_TIMEOUT).status_code == 200


def test_sigterm_is_graceful(own_server: TesseraServer):
    # Sent right after the listening line: a supervisor may stop the server as soon as it is
    # ready, so the SIGTERM handler must be in place by then (exit 0, not death by signal, -15).
    started = time.monotonic()
    assert own_server.stop(timeout=10) == 0
    assert time.monotonic() - started < 10
    with pytest.raises(requests.ConnectionError):
        requests.get(own_server.base_url + "/healthz", timeout=2)


PUBLIC_URL = "https://tessera.example.test"


def test_restart_keeps_keys_clients_and_revocations():
    # A fixed --public-url keeps issuers stable although the port changes on restart.
    srv = start_server(public_url=PUBLIC_URL)
    try:
        tenant = srv.create_tenant("RS256")
        client = srv.create_client(tenant)
        kept = client_credentials_token(client)["access_token"]
        revoked = client_credentials_token(client)["access_token"]
        assert jwt.decode(kept, options={"verify_signature": False})["iss"] == f"{PUBLIC_URL}/t/{tenant.name}"
        assert requests.post(tenant.revocation_endpoint, data={"token": revoked}, auth=client.basic,
                             timeout=HTTP_TIMEOUT).status_code == 200
        kids_before = {k["kid"] for k in requests.get(tenant.jwks_uri, timeout=HTTP_TIMEOUT).json()["keys"]}
    finally:
        assert srv.stop() == 0

    again = TesseraServer(tessera_bin(), srv.workdir, public_url=PUBLIC_URL).start()
    try:
        assert again.bootstrap_password is None, "bootstrap admin must be created only once"
        moved = Tenant(tenant.name, tenant.alg, f"{again.base_url}/t/{tenant.name}", tenant.issuer)
        kids_after = {k["kid"] for k in requests.get(moved.jwks_uri, timeout=HTTP_TIMEOUT).json()["keys"]}
        assert kids_before <= kids_after

        # A token minted before the restart still verifies with the published key.
        key = jwt.PyJWKClient(moved.jwks_uri, cache_keys=False).get_signing_key_from_jwt(kept)
        jwt.decode(kept, key.key, algorithms=["RS256"], audience=moved.issuer, issuer=moved.issuer)

        def active(token: str) -> bool:
            resp = requests.post(moved.introspection_endpoint, data={"token": token}, auth=client.basic,
                                 timeout=HTTP_TIMEOUT)
            assert resp.status_code == 200, resp.text
            return resp.json()["active"]

        assert active(kept) is True
        assert active(revoked) is False, "revocation did not survive a restart"
        moved_client = Client(moved, client.client_id, client.client_secret, client.scope)
        assert active(client_credentials_token(moved_client)["access_token"]) is True
    finally:
        again.stop()
        shutil.rmtree(srv.workdir, ignore_errors=True)
