"""Helpers shared by every test tier, imported one way: ``from tests.support import free_port, wait_until``.

Modules: this one (ports, readiness waits, processes, where scripts/build-tools.sh puts the pinned tools),
``models`` (small real models fitted on the corpus), ``events`` (prediction events and a sink written the shipper's
way), ``servers`` (real ``mlflow server``, ``moto_server``, shipper and predictor processes), ``fixtures`` (the
pytest fixtures built on them, registered for every test by ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
T = TypeVar("T")


def tools_dir() -> Path:
    """Cache directory of scripts/build-tools.sh (KS_TOOLS_DIR, default ~/.cache/kube-sentiment/tools)."""
    return Path(os.environ.get("KS_TOOLS_DIR") or Path.home() / ".cache" / "kube-sentiment" / "tools")


def tools_bin() -> Path:
    """Directory of the built tools: KS_TOOLS_BIN (exported by scripts/test.sh) or <tools dir>/bin."""
    return Path(os.environ.get("KS_TOOLS_BIN") or tools_dir() / "bin")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], T], deadline_s: float, what: str, interval_s: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy (returned); fail the test naming ``what`` after
    ``deadline_s`` seconds. Exceptions of ``check`` mean "not yet" (the last one is reported), except an
    ``AssertionError`` or a test failure, which stop the wait at once (a process that died, for instance)."""
    give_up = time.monotonic() + deadline_s
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as e:  # the thing waited for may not exist yet
            last_error = e
        if time.monotonic() >= give_up:
            pytest.fail(f"timed out after {deadline_s:.0f}s waiting for {what} (last error: {last_error!r})")
        time.sleep(interval_s)  # polling interval of a deadline-bounded wait


def http_ok(url: str) -> bool:
    """True when ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def stop(process: subprocess.Popen[Any], timeout_s: float = 30.0) -> int:
    """Terminate a child process (SIGTERM, then SIGKILL after ``timeout_s``), reap it, return its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)
