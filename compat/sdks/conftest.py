"""A real Tessera server for the SDK compatibility suite, and admin helpers around its CLI.

The server is the real binary (TESSERA_BIN, default <repo>/target/debug/tessera), started
once per session on an ephemeral port with a fresh data dir, and stopped with SIGTERM.
Users, tenants, API keys and TOTP enrolment are made with the `tessera` admin commands on
the same data dir while the server runs, as an operator would.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import pyotp
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TESSERA_BIN") or str(REPO / "target" / "debug" / "tessera")

LISTENING = re.compile(r"tessera listening on (http://127\.0\.0\.1:\d+)")
BOOTSTRAP = re.compile(r"bootstrap admin: username=(\S+) password=(\S+) \(shown once\)")

# A second tenant, selected by Host for the fronts that have no tenant parameter.
ACME = "acme"
ACME_HOST = "acme.test"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass
class User:
    tenant: str
    username: str
    password: str
    email: str
    admin: bool = False
    totp: pyotp.TOTP | None = None
    recovery_codes: list[str] = field(default_factory=list)

    @property
    def basic(self) -> str:
        return basic(self.username, self.password)


class Server:
    def __init__(self, data_dir: Path, log_path: Path):
        self.data_dir = data_dir
        self.log_path = log_path
        self.out_path = data_dir.parent / "stdout.txt"
        self.proc: subprocess.Popen | None = None
        self.base = ""
        self.admin_password = ""
        self._jwks: dict[str, jwt.PyJWKClient] = {}

    # ----- process ------------------------------------------------------------------------

    def start(self) -> None:
        if not os.access(BIN, os.X_OK):
            pytest.exit(f"tessera binary not found at {BIN}: run `cargo build -p tessera` or set TESSERA_BIN", 2)
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        with open(self.out_path, "wb") as out, open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(
                [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = self.out_path.read_text(errors="replace")
            m = LISTENING.search(text)
            if m:
                self.base = m.group(1)
                b = BOOTSTRAP.search(text)
                assert b and b.group(1) == "admin", f"no bootstrap admin line in stdout: {text!r}"
                self.admin_password = b.group(2)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"tessera did not start; stdout: {self.out_path.read_text(errors='replace')!r}\n"
            f"log tail: {self.log_tail()}"
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # ----- admin CLI on the same data dir -------------------------------------------------

    def cli(self, *args: str, stdin: str | None = None) -> str:
        r = subprocess.run(
            [BIN, "--data-dir", str(self.data_dir), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode != 0:
            raise RuntimeError(f"tessera {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def cli_json(self, *args: str) -> dict:
        return json.loads(self.cli(*args, "--json"))

    def user_create(self, tenant: str, username: str, password: str, *, admin: bool = False,
                    email: str | None = None) -> None:
        args = ["user", "create", "--tenant", tenant, "--username", username, "--password-stdin"]
        if admin:
            args += ["--role", "admin"]
        if email:
            args += ["--email", email]
        self.cli(*args, stdin=password + "\n")

    def user_disable(self, tenant: str, username: str) -> None:
        self.cli("user", "disable", "--tenant", tenant, "--username", username)

    def tenant_create(self, name: str, host: str | None = None) -> None:
        args = ["tenant", "create", name]
        if host:
            args += ["--host", host]
        self.cli(*args)
        # The server picks up tenants made by admin commands within sync_interval (250 ms).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if requests.get(f"{self.base}/t/{name}/.well-known/jwks.json", timeout=5).status_code == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the server did not pick up tenant {name}")

    def apikey_create(self, tenant: str, username: str, expires: str | None = None) -> dict:
        args = ["apikey", "create", "--tenant", tenant, "--username", username]
        if expires:
            args += ["--expires", expires]
        k = self.cli_json(*args)
        assert k["key"].startswith("tsk_"), k
        return k

    def apikey_revoke(self, tenant: str, key_id: str) -> None:
        self.cli("apikey", "revoke", "--tenant", tenant, key_id)

    def client_create(self, tenant: str, name: str, grants: str) -> dict:
        return self.cli_json("client", "create", "--tenant", tenant, "--name", name, "--grant", grants)

    def enable_totp(self, user: User) -> None:
        """Enrol and confirm TOTP for `user`, without spending the current step's code.

        Confirmation consumes the step of the code it is given. It is confirmed here with
        the code of the *previous* 30 s step (inside the server's +-1 step window), so the
        current code (`totp.now()`) and the next one (`totp.at(now + 30)`) stay fresh for
        the tests, and nobody has to wait for a new step.
        """
        e = self.cli_json("user", "totp", "enable", "--tenant", user.tenant, "--username", user.username)
        assert e["otpauth_uri"].startswith("otpauth://totp/"), e
        totp = pyotp.TOTP(e["secret"])
        avoid_step_edge()
        code = totp.at(time.time() - 30)
        c = self.cli_json("user", "totp", "confirm", "--tenant", user.tenant, "--username", user.username,
                          "--code", code)
        assert len(c["recovery_codes"]) == 10, c
        user.totp = totp
        user.recovery_codes = list(c["recovery_codes"])

    # ----- tokens -------------------------------------------------------------------------

    def issuer(self, tenant: str) -> str:
        return self.base if tenant == "default" else f"{self.base}/t/{tenant}"

    def verify(self, token: str, tenant: str = "default") -> dict:
        """Check the signature against the tenant's published JWKS and return the claims."""
        if tenant not in self._jwks:
            self._jwks[tenant] = jwt.PyJWKClient(f"{self.issuer(tenant)}/.well-known/jwks.json", cache_keys=False)
        key = self._jwks[tenant].get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["EdDSA", "ES256", "RS256"],
            issuer=self.issuer(tenant),
            options={"verify_aud": False, "require": ["exp", "iss", "sub"]},
            leeway=5,
        )
        assert claims.get("tenant") == tenant, claims
        return claims


def avoid_step_edge(margin: float = 3.0) -> None:
    """Sleep past the next 30 s TOTP boundary if it is less than `margin` seconds away,
    so that a code computed now is judged in the same step by the server."""
    left = 30 - (time.time() % 30)
    if left < margin:
        time.sleep(left + 0.2)


def wrong_code(totp: pyotp.TOTP) -> str:
    """A six-digit code valid for none of the steps the server would accept now."""
    now = time.time()
    near = {totp.at(now + d) for d in (-60, -30, 0, 30, 60)}
    for c in ("000000", "111111", "123456", "999999", "424242"):
        if c not in near:
            return c
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    root = tmp_path_factory.mktemp("tessera")
    s = Server(root / "data", root / "server.log")
    s.start()
    try:
        s.tenant_create(ACME, host=ACME_HOST)
        yield s
    finally:
        s.stop()
        rc = s.proc.returncode if s.proc else None
        # SIGTERM is a graceful shutdown: the process must exit cleanly.
        assert rc == 0, f"tessera exited with {rc} on SIGTERM; log tail: {s.log_tail()}"


@pytest.fixture(scope="session")
def base(server) -> str:
    return server.base


@pytest.fixture
def make_user(server):
    """make_user(tenant="default", admin=False, username=None, password=None) -> User.
    The username is an e-mail address (DocSpace and ICA sign in by e-mail)."""

    def make(tenant: str = "default", *, admin: bool = False, username: str | None = None,
             password: str | None = None) -> User:
        username = username or f"u-{uuid.uuid4().hex[:10]}@example.org"
        password = password or f"pw-{uuid.uuid4().hex}"
        server.user_create(tenant, username, password, admin=admin, email=username)
        return User(tenant=tenant, username=username, password=password, email=username, admin=admin)

    return make


@pytest.fixture
def totp_user(server, make_user):
    """A default-tenant user with confirmed TOTP 2FA."""
    u = make_user()
    server.enable_totp(u)
    return u
