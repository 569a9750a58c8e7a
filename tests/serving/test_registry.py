"""Loading from a real ``mlflow server``: by version and by alias, and readiness while the alias does not exist yet."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import httpx
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest
from mlflow.tracking import MlflowClient

from serving.errors import ModelLoadError, RegistryUnreachable
from serving.loader import load
from serving.settings import ServeSettings
from tests.support import free_port, stop, wait_until
from tests.support.servers import MlflowServer, start_predictor

pytestmark = pytest.mark.integration
REGISTERED = "sentiment-serving-tests"


def register(server: MlflowServer, model_dir: Path, name: str) -> str:
    """Log ``model_dir`` as the ``model`` artefact of a new run and register it; returns the version."""
    client = MlflowClient(server.uri, registry_uri=server.uri)
    experiment = client.get_experiment_by_name("serving-tests")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("serving-tests")
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(model_dir), "model")
    client.set_terminated(run.info.run_id)
    try:
        client.create_registered_model(name)
    except Exception as e:  # already registered by an earlier test of the session
        if "RESOURCE_ALREADY_EXISTS" not in str(e):
            raise
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    wait_until(lambda: client.get_model_version(name, version.version).status == "READY", 30, "version READY")
    return str(version.version)


def test_load_by_version_and_by_alias(mlflow_server: MlflowServer, tiny_model_dir: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    name = REGISTERED + "-direct"
    version = register(mlflow_server, tiny_model_dir, name)
    client = MlflowClient(mlflow_server.uri, registry_uri=mlflow_server.uri)
    client.set_registered_model_alias(name, "staging", version)

    by_version = load(ServeSettings(model_uri=f"models:/{name}/{version}", tracking_uri=mlflow_server.uri,
                                    download_dir=tmp_path / "a"))
    by_alias = load(ServeSettings(model_uri=f"models:/{name}@staging", tracking_uri=mlflow_server.uri,
                                  download_dir=tmp_path / "b"))
    for loaded in (by_version, by_alias):
        assert loaded.version == version
        assert loaded.source == f"models:/{name}/{version}"
        assert loaded.bundle.classes == ("negative", "neutral", "positive")

    scratch = tmp_path / "scratch"  # no download_dir: a temporary directory of the loader's own, here
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(ModelLoadError, match=rf"models:/{name}@nope not found in the registry") as caught:
        load(ServeSettings(model_uri=f"models:/{name}@nope", tracking_uri=mlflow_server.uri, load_deadline_s=1))
    assert not isinstance(caught.value, RegistryUnreachable) and caught.value.exit_code == 66
    assert not list(scratch.iterdir()), "a failed load left its temporary directory behind"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers (a hung tracking server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


class TokenGate(ThreadingHTTPServer):
    """An authenticating front of a real tracking server, as a reverse proxy with MLflow's token authentication
    would be: a GET with ``Authorization: Bearer <token>`` is forwarded, anything else is a 401."""

    def __init__(self, upstream: str, token: str) -> None:
        self.upstream, self.token, self.seen = upstream, token, []
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate.seen.append((self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != f"Bearer {gate.token}":
                    self.send_response(401)
                    self.end_headers()
                    self.wfile.write(b"You are not authenticated.")
                    return
                try:
                    with urllib.request.urlopen(gate.upstream + self.path, timeout=30) as answer:
                        status, kind, body = answer.status, answer.headers.get("Content-Type"), answer.read()
                except urllib.error.HTTPError as e:
                    status, kind, body = e.code, e.headers.get("Content-Type"), e.read()
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.mark.parametrize("token", ["s3cret", "wrong"])
def test_the_token_is_sent_and_refused_credentials_fail_the_load_at_once(
    token: str, mlflow_server: MlflowServer, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``MLFLOW_TRACKING_TOKEN`` goes with every registry and artefact request; credentials the server refuses end
    the load with one request and a message naming the variables (no retries until the deadline: none would
    help), where an unreachable registry is retried."""
    name = REGISTERED + "-token"
    version = register(mlflow_server, tiny_model_dir, name)
    gate = TokenGate(mlflow_server.uri, "s3cret")
    threading.Thread(target=gate.serve_forever, daemon=True).start()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    settings = ServeSettings(model_uri=f"models:/{name}/{version}", tracking_uri=gate.uri, load_deadline_s=60,
                             download_dir=tmp_path)
    try:
        if token == "s3cret":
            loaded = load(settings)
            assert loaded.version == version and loaded.bundle.classes == ("negative", "neutral", "positive")
            paths = [path for path, _ in gate.seen]
            assert any("/mlflow-artifacts/artifacts/" in p for p in paths) and len(paths) >= 5, paths
        else:
            with pytest.raises(ModelLoadError, match=r"refused the credentials .*\(HTTP 401\).*MLFLOW_TRACKING_TOKEN"
                               ) as caught:
                load(settings)
            assert not isinstance(caught.value, RegistryUnreachable) and caught.value.exit_code == 66
            assert len(gate.seen) == 1, gate.seen
        assert {auth for _, auth in gate.seen} == {f"Bearer {token}"}
    finally:
        gate.shutdown()
        gate.server_close()


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_an_unreachable_registry_fails_at_the_deadline_as_unreachable(kind: str, silent_server: str,
                                                                       tmp_path: Path) -> None:
    uri = silent_server if kind == "silent" else f"http://127.0.0.1:{free_port()}"
    deadline = 4.0
    started = time.monotonic()
    with pytest.raises(RegistryUnreachable, match=rf"the MLflow registry at {uri} is unreachable") as caught:
        load(ServeSettings(model_uri="models:/sentiment@production", tracking_uri=uri, load_deadline_s=deadline,
                           download_dir=tmp_path))
    elapsed = time.monotonic() - started
    assert deadline <= elapsed < deadline + 8, elapsed  # MLflow's own retries would take minutes
    assert caught.value.exit_code == 69 and "not found" not in str(caught.value)
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # the per-attempt override is undone


def test_the_predictor_exits_69_when_the_registry_is_unreachable(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "serving", "--model-uri", "models:/sentiment@production", "--tracking-uri", uri,
         "--load-deadline-s", "2", "--http_port", "0", "--grpc_port", "0"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "KS_SERVE_JSON_LOGS": "false", "KS_SERVE_DOWNLOAD_DIR": str(tmp_path)},
    )
    assert result.returncode == 69, result.stderr[-2000:]
    assert f"the MLflow registry at {uri} is unreachable" in result.stderr and "not found" not in result.stderr


def test_predictor_waits_unready_for_the_alias_then_serves_that_version(
    mlflow_server: MlflowServer, tiny_model_dir: Path, tmp_path: Path
) -> None:
    name = REGISTERED + "-alias"
    version = register(mlflow_server, tiny_model_dir, name)
    scratch = tmp_path / "scratch"  # no --download-dir: the predictor downloads into a temporary directory here
    scratch.mkdir()
    predictor = start_predictor(
        tmp_path,
        ["--model-uri", f"models:/{name}@production", "--load-in-background"],
        env={"MLFLOW_TRACKING_URI": mlflow_server.uri, "KS_SERVE_LOAD_DEADLINE_S": "120", "TMPDIR": str(scratch)},
        wait_ready=False,
    )
    try:
        # live, but neither the model nor the server is ready: 503 / UNAVAILABLE, never a 500
        assert httpx.get(predictor.http + "/", timeout=5).json() == {"status": "alive"}
        assert httpx.get(predictor.http + "/v2/models/sentiment/ready", timeout=5).status_code == 503
        assert httpx.get(predictor.http + "/v2/health/ready", timeout=5).status_code == 503
        r = httpx.post(predictor.http + "/v1/models/sentiment:predict", json={"instances": ["hi"]}, timeout=5)
        assert r.status_code == 503 and "not ready" in r.json()["error"]
        r = httpx.post(predictor.http + "/v2/models/sentiment/infer", timeout=5,
                       json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]})
        assert r.status_code == 503

        async def grpc_call() -> object:
            client = InferenceGRPCClient(predictor.grpc, retries=0, timeout=10)
            try:
                tensor = InferInput("text", [1], "BYTES", [b"hi"])
                return await client.infer(InferRequest(model_name="sentiment", infer_inputs=[tensor]))
            finally:
                await client.close()

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            asyncio.run(grpc_call())
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

        MlflowClient(mlflow_server.uri, registry_uri=mlflow_server.uri).set_registered_model_alias(
            name, "production", version)

        def ready() -> bool:
            assert predictor.process.poll() is None, predictor.log_text()
            return httpx.get(predictor.http + "/v2/models/sentiment/ready", timeout=5).status_code == 200

        wait_until(ready, 90, "the predictor to load the aliased version")
        assert httpx.get(predictor.http + "/v2/health/ready", timeout=5).status_code == 200
        r = httpx.post(predictor.http + "/v1/models/sentiment:predict", json={"instances": ["hi"]}, timeout=5)
        assert r.status_code == 200 and r.json()["model_version"] == version
        assert httpx.get(predictor.http + "/v2/models/sentiment", timeout=5).json()["versions"] == [version]
        response = asyncio.run(grpc_call())
        assert response.model_version == version  # type: ignore[attr-defined]
        assert [p.name for p in scratch.glob("ks-serve-*/*/kube_sentiment.json")], list(scratch.rglob("*"))
    finally:
        assert stop(predictor.process) == 0, predictor.log_text()
    assert not list(scratch.iterdir()), "the downloaded model was left behind"


LOAD_AND_SAY = """
import json, sys
from serving.loader import load
from serving.settings import ServeSettings
loaded = load(ServeSettings(model_uri=sys.argv[1], tracking_uri=sys.argv[2], download_dir=sys.argv[3]))
said = {"version": loaded.version, "classes": list(loaded.bundle.classes), "mlflow": "mlflow" in sys.modules}
print(json.dumps(said))
"""


@pytest.mark.parametrize("client", ["rest", "mlflow"])
def test_a_registry_load_imports_mlflow_only_where_the_rest_client_cannot_serve_it(
    client: str, mlflow_server: MlflowServer, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The predictor reads the registry and the artefact proxy over REST without importing MLflow (start-up time
    and memory, docs/benchmarks.md); with a setting that client does not implement (a client certificate) the
    MLflow client loads the same version."""
    name = REGISTERED + "-rest"
    version = register(mlflow_server, tiny_model_dir, name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    if client == "mlflow":  # requests checks that the file exists; over plain HTTP it is never read
        (tmp_path / "unused-over-http.pem").write_text("")
        env["MLFLOW_TRACKING_CLIENT_CERT_PATH"] = str(tmp_path / "unused-over-http.pem")
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_SAY, f"models:/{name}/{version}", mlflow_server.uri, str(tmp_path / "dl")],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    said = json.loads(result.stdout.strip().splitlines()[-1])
    assert said == {"version": version, "classes": ["negative", "neutral", "positive"], "mlflow": client == "mlflow"}
    assert len(list((tmp_path / "dl" / f"{name}-v{version}").rglob("MLmodel"))) == 1
