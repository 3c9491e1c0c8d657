"""Fixtures for the Python compatibility suite: one real `tessera serve` per session.

Environment:
  TESSERA_BIN  path to the tessera binary (default: <repo>/target/debug/tessera)
"""

from __future__ import annotations

import shutil
import pytest

from tessera_harness import start_server


@pytest.fixture(scope="session")
def server():
    srv = start_server({"TESSERA_REFRESH_GRACE": "0", "TESSERA_KEY_PREPUBLISH": "0"})
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.workdir, ignore_errors=True)
