"""Harness for the Python compatibility suite (used by conftest.py and the tests).

One real `tessera serve` process per test session, on an ephemeral port with a fresh data
directory; admin CLI commands run against the same data directory while it serves.

Environment:
  TESSERA_BIN  path to the tessera binary (default: <repo>/target/debug/tessera)
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTEN_RE = re.compile(r"^tessera listening on (http://\S+)$")
START_TIMEOUT = 60.0
HTTP_TIMEOUT = 15.0


def tessera_bin() -> Path:
    raw = os.environ.get("TESSERA_BIN") or "target/debug/tessera"
    path = Path(raw)
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any TESSERA_* setting that could change behaviour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.setdefault("RUST_LOG", "warn")
    if extra:
        env.update(extra)
    return env


@dataclass(frozen=True)
class Tenant:
    name: str
    alg: str
    prefix: str  # URL under which the tenant's endpoints live (no trailing slash)
    issuer: str  # the issuer the tenant is expected to use

    def url(self, path: str) -> str:
        return self.prefix + path

    @property
    def token_endpoint(self) -> str:
        return self.url("/oauth2/token")

    @property
    def introspection_endpoint(self) -> str:
        return self.url("/oauth2/introspect")

    @property
    def revocation_endpoint(self) -> str:
        return self.url("/oauth2/revoke")

    @property
    def jwks_uri(self) -> str:
        return self.url("/.well-known/jwks.json")


@dataclass(frozen=True)
class Client:
    tenant: Tenant
    client_id: str
    client_secret: str | None
    scope: str

    @property
    def basic(self) -> tuple[str, str]:
        assert self.client_secret is not None, "public client has no secret"
        return (self.client_id, self.client_secret)


class TesseraServer:
    """A running `tessera serve` and the admin CLI on its data directory."""

    def __init__(self, binary: Path, workdir: Path, env: dict[str, str] | None = None, public_url: str | None = None):
        if not binary.is_file() or not os.access(binary, os.X_OK):
            raise RuntimeError(
                f"tessera binary not found at {binary}; build it with `cargo build -p tessera` "
                "or set TESSERA_BIN"
            )
        self.binary = binary
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.env = child_env(env)
        self.public_url = public_url
        self.stderr_path = workdir / "serve.stderr.log"
        self.stdout_lines: list[str] = []
        self.base_url = ""
        self.bootstrap_password: str | None = None
        self.proc: subprocess.Popen[str] | None = None
        self.returncode: int | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    # ----- process lifecycle -------------------------------------------------------------
    def start(self) -> "TesseraServer":
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)]
            + (["--public-url", self.public_url] if self.public_url else []),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=self.env,
        )
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise RuntimeError(f"tessera did not print its listening line in {START_TIMEOUT}s{self._diag()}")
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:  # stdout closed: the process died
                self.proc.wait(timeout=10)
                raise RuntimeError(f"tessera serve exited with {self.proc.returncode} before listening{self._diag()}")
            m = re.match(r"^bootstrap admin: username=admin password=(\S+) \(shown once\)$", line)
            if m:
                self.bootstrap_password = m.group(1)
            m = LISTEN_RE.match(line)
            if m:
                self.base_url = m.group(1).rstrip("/")
                return self

    def _pump_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _diag(self) -> str:
        self._stderr.flush()
        err = self.stderr_path.read_text(errors="replace")[-4000:]
        return f"\n--- stdout ---\n" + "\n".join(self.stdout_lines) + f"\n--- stderr (tail) ---\n{err}"

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait for exit (SIGKILL after `timeout`). Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.returncode = self.proc.returncode
        self._stderr.close()
        return self.returncode

    # ----- admin CLI ---------------------------------------------------------------------
    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args, "--data-dir", str(self.data_dir)],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"`tessera {' '.join(args)}` exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    @property
    def issuer_base(self) -> str:
        """The default tenant's issuer: --public-url, else the bound address."""
        return (self.public_url or self.base_url).rstrip("/")

    def default_tenant(self) -> Tenant:
        return Tenant(name="default", alg="EdDSA", prefix=self.base_url, issuer=self.issuer_base)

    def create_tenant(self, alg: str = "EdDSA", *, name: str | None = None, extra: tuple[str, ...] = ()) -> Tenant:
        name = name or "py" + secrets.token_hex(5)
        self.cli("tenant", "create", name, "--alg", alg, *extra)
        prefix = f"{self.base_url}/t/{name}"
        issuer = f"{self.issuer_base}/t/{name}"
        if "--issuer" in extra:
            issuer = extra[extra.index("--issuer") + 1]
        tenant = Tenant(name=name, alg=alg, prefix=prefix, issuer=issuer)
        self.wait_for_tenant(tenant)
        return tenant

    def wait_for_tenant(self, tenant: Tenant, timeout: float = 10.0) -> None:
        """The server picks up tenants created by the CLI through its change feed (~250 ms)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = requests.get(tenant.jwks_uri, timeout=HTTP_TIMEOUT)
            if last.status_code == 200 and last.json().get("keys"):
                return
            time.sleep(0.1)
        raise AssertionError(
            f"tenant {tenant.name} not served {timeout}s after `tenant create`: "
            f"GET {tenant.jwks_uri} -> {last.status_code if last else None} {last.text if last else ''}"
        )

    def create_client(
        self,
        tenant: Tenant,
        grants: str = "client_credentials",
        scope: str = "read write",
        public: bool = False,
    ) -> Client:
        args = ["client", "create", "--tenant", tenant.name, "--name", "py-" + secrets.token_hex(3),
                "--grant", grants, "--scope", scope, "--json"]
        if public:
            args.append("--public")
        out = json.loads(self.cli(*args).stdout)
        assert set(out) >= {"client_id", "client_secret"}, out
        if public:
            assert out["client_secret"] is None, out
        else:
            assert isinstance(out["client_secret"], str) and out["client_secret"].startswith("tsc_"), out
        return Client(tenant=tenant, client_id=out["client_id"], client_secret=out["client_secret"], scope=scope)

    def create_user(self, tenant: Tenant, username: str | None = None, password: str | None = None) -> tuple[str, str]:
        username = username or "u" + secrets.token_hex(4)
        password = password or "pw-" + secrets.token_urlsafe(18)
        self.cli("user", "create", "--tenant", tenant.name, "--username", username, "--password-stdin",
                 input=password + "\n")
        return username, password

    def rotate_key(self, tenant: Tenant) -> None:
        self.cli("key", "rotate", "--tenant", tenant.name)


def start_server(env: dict[str, str] | None = None, public_url: str | None = None) -> TesseraServer:
    workdir = Path(tempfile.mkdtemp(prefix="tessera-pycompat-"))
    return TesseraServer(tessera_bin(), workdir, env, public_url).start()


def client_credentials_token(client: Client, scope: str | None = None, **extra: str) -> dict:
    """A client_credentials token by a plain form POST with client_secret_basic."""
    form = {"grant_type": "client_credentials", **extra}
    if scope is not None:
        form["scope"] = scope
    resp = requests.post(client.tenant.token_endpoint, data=form, auth=client.basic, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, f"token request failed: {resp.status_code} {resp.text}"
    return resp.json()
