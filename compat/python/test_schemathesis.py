"""Schemathesis (a property-based API tester no one here wrote) against /openapi.json: a
bounded pass over every operation of every front, with an administrator's credentials, on a
server of its own (it creates, changes and deletes things). No answer may be a server error,
and every answer must match the document: status, content type and body schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tessera_harness import HTTP_TIMEOUT, start_server

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.fixture()
def own_server():
    # The brute-force limits stay on, but far away: at their defaults most operations would
    # answer only 429 after the first few hundred generated requests, and test nothing else.
    limits = ("LOGIN_FAILURES_PER_USER", "LOGIN_FAILURES_PER_ADDRESS", "DEVICE_LOOKUP_FAILURES_PER_ADDRESS",
              "DEVICE_LOOKUP_FAILURES_PER_TENANT")
    srv = start_server(env={f"TESSERA_{name}": "1000000" for name in limits})
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.workdir, ignore_errors=True)


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(own_server):
    srv = own_server
    tenant = srv.default_tenant()
    password = "schemathesis-admin-password"
    srv.cli("user", "create", "--username", "fuzzadmin", "--password-stdin", "--role", "superadmin",
            input=password + "\n")
    key = json.loads(srv.cli("apikey", "create", "--username", "fuzzadmin", "--json").stdout)
    api_key = key["key"]
    assert api_key, key
    client = srv.create_client(tenant, grants="password,refresh_token")
    token = requests.post(tenant.token_endpoint, auth=client.basic, timeout=HTTP_TIMEOUT, data={
        "grant_type": "password", "username": "fuzzadmin", "password": password,
    }).json()["access_token"]
    exe = Path(sys.executable).with_name("schemathesis")
    cmd = [
        str(exe), "run", f"{srv.base_url}/openapi.json",
        "-H", f"X-API-Key: {api_key}",
        "-H", f"X-Tapis-Token: {token}",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", os.environ.get("SCHEMATHESIS_EXAMPLES", "25"),
        "--seed", os.environ.get("SCHEMATHESIS_SEED", "1"),
        "--request-timeout", "20",
        "--no-color",
    ]
    # In the server's own temporary folder: schemathesis keeps a cache where it runs.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=srv.workdir)
    out = proc.stdout
    tail = out[out.find("FAILURES"):][:8000] if "FAILURES" in out else out[-6000:]
    assert proc.returncode == 0, f"schemathesis exited {proc.returncode}\n{tail}\n{proc.stderr[-2000:]}"
    assert "passed" in proc.stdout and "failures" not in proc.stdout.split("SUMMARY")[-1].lower(), tail
    # What was run (operations, test cases, time), for `pytest -s`.
    print(out[out.find("SUMMARY"):][:2000] if "SUMMARY" in out else out[-2000:])
