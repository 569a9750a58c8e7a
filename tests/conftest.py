"""Fixtures shared by every test tier: free ports, readiness waits, a real ``mlflow server`` process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], deadline_s: float, what: str, interval_s: float = 0.1) -> None:
    """Poll ``check`` until it is true; fail the test naming ``what`` after ``deadline_s`` seconds."""
    give_up = time.monotonic() + deadline_s
    while time.monotonic() < give_up:
        if check():
            return
        time.sleep(interval_s)  # polling interval of a deadline-bounded readiness wait
    pytest.fail(f"timed out after {deadline_s:.0f}s waiting for {what}")


def http_ok(url: str) -> bool:
    """True when ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server`` on loopback."""

    uri: str
    root: Path
    process: subprocess.Popen[bytes]


def start_mlflow_server(root: Path) -> MlflowServer:
    """Start a real ``mlflow server`` (sqlite backend, local artefacts, loopback) and wait until healthy."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (root / "mlflow-server.log").open("wb")
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=log, stderr=subprocess.STDOUT, env=os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    uri = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited with {process.returncode}: {(root / 'mlflow-server.log').read_text()}")
        return http_ok(f"{uri}/health")

    wait_until(healthy, 300, f"mlflow server on {uri}")
    return MlflowServer(uri=uri, root=root, process=process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a child process and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real tracking server for the session (tests use distinct registered-model names)."""
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow"))
    yield server
    stop(server.process)
