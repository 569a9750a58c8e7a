"""Serving fixtures: a tiny real model fitted on the real corpus, a real event sink, the real predictor process.

Chain: corpus split -> fitted pipeline -> model directory in ``tmp_path`` -> ``python -m serving`` on free ports
-> HTTP / gRPC clients. Nothing is mocked; sizes are small so the module stays fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest
from sklearn.pipeline import Pipeline

from model.artifacts import save_model_dir
from model.data import Split, split
from model.settings import DataSettings, ModelSettings
from model.train import build_pipeline
from serving.eventlog.events import REQUEST_SCHEMA, expand_request
from tests.conftest import free_port, stop, wait_until

TRAIN_ROWS = 1200


@pytest.fixture(scope="session")
def corpus_split() -> Split:
    """The real built-in corpus cut into train and the frozen holdout."""
    return split(DataSettings())


def fit_tiny(corpus: Split, rows: int = TRAIN_ROWS, **settings: object) -> Pipeline:
    """The project's pipeline fitted on the first ``rows`` training rows."""
    train = corpus.train.head(rows)
    pipeline = build_pipeline(ModelSettings(**{"max_iter": 100, **settings}))
    pipeline.fit(train["text"].tolist(), train["label"].to_numpy())
    return pipeline


@pytest.fixture(scope="session")
def tiny_pipeline(corpus_split: Split) -> Pipeline:
    """The default pipeline (word + char TF-IDF, multinomial logistic regression), fitted small."""
    return fit_tiny(corpus_split)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline saved as a model directory (the layout KServe's storage initializer leaves)."""
    path = tmp_path_factory.mktemp("models") / "sentiment"
    return save_model_dir(path, tiny_pipeline, {"registered_version": "3", "registered_model": "sentiment"}, None)


@dataclass
class EventSink:
    """A real HTTP server standing in for the ``kube-sentiment ship`` sidecar; keeps every NDJSON line it gets."""

    url: str
    events: list[dict] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[dict]:
        """The events received so far."""
        with self.lock:
            return list(self.events)


@pytest.fixture(scope="session")
def event_sink() -> Iterator[EventSink]:
    """A sidecar-shaped NDJSON receiver on a free loopback port."""
    port = free_port()
    sink = EventSink(url=f"http://127.0.0.1:{port}/v1/events")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with sink.lock:
                sink.content_types.append(self.headers.get("content-type", ""))
                for line in body.splitlines():  # request records expanded as the sidecar does
                    obj = orjson.loads(line) if line.strip() else None
                    if isinstance(obj, dict) and obj.get("schema") == REQUEST_SCHEMA:
                        sink.events.extend(orjson.loads(event) for event in expand_request(obj))
                    elif obj is not None:
                        sink.events.append(obj)
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sink
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class Predictor:
    """A running predictor process."""

    http: str
    grpc: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace")


def start_predictor(
    tmp: Path, args: list[str], env: dict[str, str] | None = None, wait_ready: bool = True, deadline_s: float = 90
) -> Predictor:
    """Start ``python -m serving`` on free ports; wait (bounded) until the model is ready unless told not to."""
    http_port, grpc_port = free_port(), free_port()
    log = tmp / f"predictor-{http_port}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KS_SERVE_")}
    full_env |= {"KS_SERVE_EVENTS_URL": "", "KS_SERVE_JSON_LOGS": "true", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "--http_port", str(http_port), "--grpc_port", str(grpc_port), *args],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=full_env,
    )
    predictor = Predictor(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", process, log)

    def up(path: str) -> bool:
        if process.poll() is not None:
            pytest.fail(f"predictor exited with {process.returncode}:\n{predictor.log_text()}")
        try:
            return httpx.get(predictor.http + path, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(lambda: up("/v2/models/sentiment/ready" if wait_ready else "/"), deadline_s, "the predictor")
    return predictor


@pytest.fixture(scope="module")
def predictor(
    tiny_model_dir: Path, event_sink: EventSink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Predictor]:
    """The predictor serving the tiny model from a local directory, sending events to the sink."""
    tmp = tmp_path_factory.mktemp("predictor")
    running = start_predictor(
        tmp,
        ["--model-dir", str(tiny_model_dir), "--max-texts", "16", "--max-text-chars", "200"],
        env={"KS_SERVE_EVENTS_URL": event_sink.url, "KS_SERVE_EVENTS_FLUSH_INTERVAL_S": "0.05",
             "KS_SERVE_TRACK": "canary", "KS_SERVE_ENVIRONMENT": "test"},
    )
    yield running
    stop(running.process)
