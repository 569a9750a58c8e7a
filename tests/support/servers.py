"""Real servers for the tests: ``mlflow server``, ``moto_server`` (S3), the shipper and the predictor as child
processes, and a recorder of the POSTs it gets."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import BIN, REPO, free_port, http_ok, stop, wait_until

#: How long a server process may take to become ready on a loaded machine.
START_DEADLINE_S = 300.0


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
        assert process.poll() is None, (f"mlflow server exited with {process.returncode}: "
                                        f"{(root / 'mlflow-server.log').read_text()}")
        return http_ok(f"{uri}/health")

    wait_until(healthy, START_DEADLINE_S, f"mlflow server on {uri}")
    return MlflowServer(uri=uri, root=root, process=process)


@dataclass
class MotoServer:
    """A real S3-compatible server process (``moto_server``) on loopback."""

    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self.proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: httpx.get(f"{self.url}/moto-api/", timeout=1).status_code < 500, START_DEADLINE_S,
                   "moto_server")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout_s=10)

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")


@dataclass
class ShipperProcess:
    """``python -m serving.shipper`` as a child process on a free port."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def spool_dir(self) -> Path:
        return self.workdir / "spool"

    @property
    def sink_dir(self) -> Path:
        return self.workdir / "sink"

    @property
    def journal_dir(self) -> Path:
        """Where it reads predictors' journal files (its default, under the spool)."""
        return self.spool_dir / "journal"

    def start(self, timeout: float = START_DEADLINE_S) -> ShipperProcess:
        """Start and wait for ``/healthz``."""
        env = {
            **os.environ,
            "KS_SHIP_HOST": "127.0.0.1",
            "KS_SHIP_PORT": str(self.port),
            "KS_SHIP_SPOOL_DIR": str(self.spool_dir),
            "KS_SHIP_SINK_DIR": str(self.sink_dir),
            "KS_SHIP_SHIPPER_ID": "test-shipper",
            "KS_SHIP_JSON_LOGS": "true",
            **self.env,
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "shipper.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "serving.shipper"], cwd=REPO, env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout, f"shipper on {self.url} to be ready (log: {self.workdir / 'shipper.log'})")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, f"shipper exited with {self.proc.returncode}: {self.log_tail()}"
        return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

    def log_tail(self) -> str:
        path = self.workdir / "shipper.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill9(self) -> None:
        """``kill -9``: no flush, no cleanup."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait for the graceful drain; return the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def metric(self, name: str) -> float:
        """Sum of a metric's samples from ``/metrics``."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and (line[len(name)] in " {"))


@dataclass(frozen=True)
class Predictor:
    """A running predictor process."""

    http: str
    grpc: str
    process: subprocess.Popen[bytes]
    log: Path
    events_dir: Path | None = None
    """Where it writes its journal files (``KS_SERVE_EVENTS_DIR``), if anywhere."""

    def log_text(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace")


def start_predictor(tmp: Path, args: list[str], env: dict[str, str] | None = None, wait_ready: bool = True,
                    deadline_s: float = START_DEADLINE_S) -> Predictor:
    """Start ``python -m serving`` on free ports; wait (bounded) until the model is ready unless told not to."""
    http_port, grpc_port = free_port(), free_port()
    log = tmp / f"predictor-{http_port}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KS_SERVE_")}
    full_env |= {"KS_SERVE_EVENTS_DIR": "", "KS_SERVE_JSON_LOGS": "true", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "--http_port", str(http_port), "--grpc_port", str(grpc_port), *args],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=full_env,
    )
    events = full_env["KS_SERVE_EVENTS_DIR"]
    predictor = Predictor(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", process, log,
                          Path(events) if events else None)

    def up(path: str) -> bool:
        if process.poll() is not None:
            pytest.fail(f"predictor exited with {process.returncode}:\n{predictor.log_text()}")
        return httpx.get(predictor.http + path, timeout=2).status_code == 200

    wait_until(lambda: up("/v2/models/sentiment/ready" if wait_ready else "/"), deadline_s, "the predictor")
    return predictor


@dataclass
class Recorder:
    """A real HTTP server keeping every POST it gets (path, headers, body) and answering ``status``."""

    url: str
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    status: int = 202
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[bytes]:
        """The bodies received so far."""
        with self.lock:
            return [body for _, _, body in self.posts]


@contextlib.contextmanager
def recorder() -> Iterator[Recorder]:
    """A :class:`Recorder` on a free loopback port, serving from a thread until the block ends."""
    port = free_port()
    rec = Recorder(f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with rec.lock:
                rec.posts.append((self.path, dict(self.headers), body))
            self.send_response(rec.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
