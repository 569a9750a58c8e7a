"""Serving benchmark: our predictor beside the standard predictor (baseline) and a do-nothing model (ceiling).

    .venv/bin/python -m bench.serve_bench [--duration 6] [--slice 0.5] [--model_dir DIR | --train_rows N]
                                          [--loadgen auto|native|python] [--markdown FILE]

All servers are the same ``kserve.ModelServer`` (same flags, same logging), all started in this run and each pinned
to core 0 with ``taskset`` (only the one under load uses CPU), serving the same model: by default the production
model (``model.train.fit`` with the default settings on the whole training split, fitted once and cached). Within a
cell (protocol, concurrency, texts per request) the cell's servers take turns of ``--slice`` seconds until each has
had ``--duration`` seconds, so a neighbour's load on a shared machine falls on all of them alike. The load
generators run pinned to core 1 with the monitoring sidecar: wrk for V1 and V2 REST and ghz for V2 gRPC
(``bench/loadgen.py`` says why these and how their output is read), started once per turn and server; the report
gives their own CPU, so a saturated generator is visible. Where one is missing (``apt-get install wrk``;
``scripts/build-tools.sh ghz``) the cell falls back to the Python client below (an asyncio HTTP/1.1 keep-alive client
and a ``grpc.aio`` client, which saturates its core first), marked ``python (fallback)`` in the tables;
``--loadgen native`` refuses to fall back (exit 69), ``--loadgen python`` uses the Python client throughout.
A full run takes about 10 minutes on a quiet machine (plus the production model's fit on the first run). Servers:

- ``noop``: a ``kserve.Model`` that returns a constant one-text answer without looking at the input (the ceiling).
- ``baseline``: the standard way: a ``kserve.Model`` whose ``predict`` calls the pipeline's ``predict_proba``.
- ``ours``: ``python -m serving`` (fast path + micro-batching), prediction events off.
- ``ours+mirror``: ``ours`` sending a copy of every request to a shadow (kserve mode's mirroring,
  ``serving.mirror``), received on the load core by a stand-in for the shadow's mirror endpoint that reads each POST
  and answers 202 (what the shadow then computes is the shadow's cost, not this predictor's).
- ``ours+events``: the same with prediction events on: appended to its journal, which a real ``kube-sentiment
  ship`` sidecar (on the load core) reads into its spool and ships to a local sink, as in the pod.

Prints req/s, p50, p99 and peak RSS for V1 REST, V2 REST and V2 gRPC at c=8 and c=32 with one text per request,
texts/s with 64 texts per request, and the ratios. Not a test; nothing asserts on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.loadgen import Ghz, Tally, Turn, Wrk, drive, ghz_binary, tool_version, wrk_binary
from model.errors import ExitCode
from tests.support import free_port, stop

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".kube-sentiment" / "bench-serve"
SERVER_CORE, LOAD_CORE = "0", "1"
SETTLE_S = 0.1  # start of each turn that is load but not measured
WARMUP_S = 1.0  # an unmeasured turn of every server before a cell's measured turns
MODEL = "sentiment"
PYTHON_LOADGEN = "python"


# --- the two comparison models (served by ``python -m bench.serve_bench serve``) ----------------------------------


def _comparison_model(kind: str, model_dir: Path) -> Any:
    """The ``noop`` or ``baseline`` kserve.Model."""
    from kserve import Model
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    class NoopModel(Model):
        """Returns a constant one-text answer; never looks at the input."""

        def load(self) -> bool:
            self.ready = True
            return True

        def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            if isinstance(payload, InferRequest):
                return InferResponse(
                    response_id=payload.id or "noop", model_name=self.name,
                    infer_outputs=[InferOutput("label", [1], "BYTES", data=np.array(["neutral"], dtype=object)),
                                   InferOutput("probabilities", [1, 3], "FP32",
                                               data=np.full((1, 3), 1 / 3, dtype=np.float32))],
                )
            return {"predictions": [{"label": "neutral", "probabilities": {"negative": 1 / 3, "neutral": 1 / 3,
                                                                          "positive": 1 / 3}}]}

    class BaselineModel(Model):
        """The standard predictor: ``predict`` calls the sklearn pipeline's ``predict_proba``."""

        def load(self) -> bool:
            from serving.loader import load_local  # the no-op must not pay for our imports

            bundle = load_local(model_dir, None).bundle
            self.pipeline = bundle.pipeline  # unpickled here (scikit-learn imported)
            self.classes = list(bundle.classes)
            self.ready = True
            return True

        def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            if isinstance(payload, InferRequest):
                texts = [t.decode() if isinstance(t, bytes) else t for t in payload.inputs[0].data]
            else:
                texts = payload["instances"]
            probs = self.pipeline.predict_proba(texts)
            labels = [self.classes[i] for i in probs.argmax(axis=1)]
            if isinstance(payload, InferRequest):
                return InferResponse(
                    response_id=payload.id or uuid.uuid4().hex, model_name=self.name,
                    infer_outputs=[InferOutput("label", [len(texts)], "BYTES", data=np.array(labels, dtype=object)),
                                   InferOutput("probabilities", [len(texts), len(self.classes)], "FP32",
                                               data=probs.astype(np.float32))],
                )
            return {"predictions": [{"label": lab, "probabilities": dict(zip(self.classes, row, strict=True))}
                                    for lab, row in zip(labels, probs.tolist(), strict=True)]}

    return NoopModel(MODEL) if kind == "noop" else BaselineModel(MODEL)


def serve(kind: str, model_dir: Path, http_port: int, grpc_port: int) -> None:
    """Run a comparison server with the same ModelServer flags and logging as ``python -m serving``."""
    from kserve import ModelServer

    from model.logs import configure_logging
    from serving.__main__ import _quiet_per_request_logs

    configure_logging("WARNING", json_logs=True)
    _quiet_per_request_logs(request_logs=False)
    model = _comparison_model(kind, model_dir)
    model.load()
    ModelServer(http_port=http_port, grpc_port=grpc_port, workers=1).start([model])


# --- load generator (runs in its own process pinned to the load core) ---------------------------------------------


TEXTS_FILE = CACHE / "holdout-texts.json"


def _texts() -> list[str]:
    """Holdout texts of the built-in corpus (cached as JSON so each load process starts fast)."""
    if not TEXTS_FILE.is_file():
        from model.data import split
        from model.settings import DataSettings

        TEXTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        TEXTS_FILE.write_text(json.dumps(split(DataSettings()).holdout["text"].tolist()))
    return list(json.loads(TEXTS_FILE.read_text()))


def _http_path(protocol: str) -> str:
    return f"/v1/models/{MODEL}:predict" if protocol == "v1" else f"/v2/models/{MODEL}/infer"


def _http_bodies(protocol: str, texts: list[str], per_request: int, count: int = 500) -> list[bytes]:
    """``count`` JSON request bodies of ``per_request`` holdout texts each (V1 ``instances`` or V2 ``inputs``)."""
    out = []
    for i in range(count):
        chunk = [texts[(i * per_request + j) % len(texts)] for j in range(per_request)]
        if protocol == "v1":
            out.append(json.dumps({"instances": chunk}).encode())
        else:
            out.append(json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(chunk)],
                                               "data": chunk}]}).encode())
    return out


def _http_requests(protocol: str, texts: list[str], per_request: int, count: int, path: str) -> list[bytes]:
    out = []
    for body in _http_bodies(protocol, texts, per_request, count):
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        out.append(head + body)
    return out


_CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


async def _http_worker(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], requests: list[bytes], offset: int,
                       stop_at: float, spans: list[tuple[float, float]], errors: list[int]) -> int:
    """Send requests one after the other on a kept-alive connection until ``stop_at``; returns the next offset."""
    reader, writer = conn
    i, n = offset, len(requests)
    clock = time.perf_counter
    while clock() < stop_at:
        started = clock()
        writer.write(requests[i % n])
        i += 1
        head = await reader.readuntil(b"\r\n\r\n")
        match = _CONTENT_LENGTH.search(head)
        if match:
            await reader.readexactly(int(match.group(1)))
        spans.append((started, clock()))
        if head[9:12] != b"200":
            errors.append(int(head[9:12]))
    return i


def _grpc_messages(texts: list[str], per_request: int) -> list[Any]:
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    messages = []
    for i in range(500):
        chunk = [texts[(i * per_request + j) % len(texts)].encode() for j in range(per_request)]
        messages.append(pb.ModelInferRequest(model_name=MODEL, inputs=[pb.ModelInferRequest.InferInputTensor(
            name="text", datatype="BYTES", shape=[len(chunk)],
            contents=pb.InferTensorContents(bytes_contents=chunk))]))
    return messages


def _kserve_protoset() -> bytes:
    """A FileDescriptorSet of KServe's V2 gRPC service from the installed ``kserve`` package's own descriptor (the
    one its server registers; the package ships no .proto and its server enables no reflection), for ghz."""
    from google.protobuf import descriptor_pb2
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    files = descriptor_pb2.FileDescriptorSet()
    pb.DESCRIPTOR.CopyToProto(files.file.add())  # grpc_predict_v2.proto imports nothing
    return files.SerializeToString()


async def _grpc_worker(stub: Any, messages: list[Any], offset: int, stop_at: float,
                       spans: list[tuple[float, float]], errors: list[int]) -> int:
    import grpc

    i, clock = offset, time.perf_counter
    while clock() < stop_at:
        started = clock()
        try:
            await stub.ModelInfer(messages[i % len(messages)])
        except grpc.aio.AioRpcError as e:
            errors.append(e.code().value[0])
        spans.append((started, clock()))
        i += 1
    return i


def load(protocol: str, targets: list[tuple[int, int]], concurrency: int, per_request: int, seconds: float,
         warmup: float, slice_s: float) -> list[dict[str, Any]]:
    """Closed-loop load on every ``(http_port, grpc_port)`` target: ``concurrency`` kept-alive connections (or gRPC
    calls in flight) per target, each sending its next request as soon as the answer is in.

    The targets take turns in slices of ``slice_s`` seconds until each has had ``seconds``, so a neighbour's load on
    a shared machine falls on all of them alike; a target's turns are added up by ``bench.loadgen.Tally``, as the
    native generators' are. The first ``SETTLE_S`` of each turn is not measured (a server back from idling starts
    cold). ``client_cpu`` is this process's CPU over its turns.
    """
    import grpc
    import uvloop
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    texts = _texts()
    path = _http_path(protocol)
    http_requests = _http_requests(protocol, texts, per_request, 500, path) if protocol != "grpc" else []
    messages = _grpc_messages(texts, per_request) if protocol == "grpc" else []

    async def run() -> list[dict[str, Any]]:
        channels, workers = [], []
        for http_port, grpc_port in targets:
            if protocol == "grpc":
                channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
                channels.append(channel)
                stub = GRPCInferenceServiceStub(channel)
                workers.append([lambda stop, lat, err, off, stub=stub: _grpc_worker(stub, messages, off, stop, lat,
                                                                                    err)] * concurrency)
            else:
                conns = [await asyncio.open_connection("127.0.0.1", http_port) for _ in range(concurrency)]
                workers.append([lambda stop, lat, err, off, conn=conn: _http_worker(conn, http_requests, off, stop,
                                                                                    lat, err) for conn in conns])
        offsets = [[k * 37 for k in range(concurrency)] for _ in targets]
        tallies = [Tally() for _ in targets]

        async def turn(t: int, length: float, record: bool) -> None:
            spans: list[tuple[float, float]] = []  # (sent, answered) of every request
            errors: list[int] = []
            # A server that sat idle while the others took their turns starts with cold caches and all its
            # connections' requests arriving at once; the first SETTLE_S of a turn is load, not measurement.
            cpu_from, started = time.process_time(), time.perf_counter()
            measured_from = started + SETTLE_S
            stop_at = measured_from + length
            offsets[t] = list(await asyncio.gather(*[w(stop_at, spans, errors, off)
                                                     for w, off in zip(workers[t], offsets[t], strict=True)]))
            latencies = Counter(round((end - sent) * 1e6) for sent, end in spans if sent >= measured_from)
            if record and latencies:
                tallies[t].add(Turn(requests=sum(1 for _, end in spans if end >= measured_from), errors=len(errors),
                                    seconds=max(end for _, end in spans) - measured_from, latencies_us=latencies,
                                    cpu_s=time.process_time() - cpu_from, cpu_wall_s=time.perf_counter() - started))

        for t in range(len(targets)):
            await turn(t, warmup, record=False)
        for _ in range(max(1, round(seconds / slice_s))):
            for t in range(len(targets)):
                await turn(t, slice_s, record=True)
        for channel in channels:
            await channel.close()
        return [tally.result(per_request, PYTHON_LOADGEN) for tally in tallies]

    # The client's own garbage collections would pause every request in flight and count as server latency.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return uvloop.run(run())
    finally:
        gc.enable()


# --- orchestration ------------------------------------------------------------------------------------------------


@dataclass
class Server:
    """A benchmarked server process."""

    name: str
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int

    def peak_rss_mb(self) -> float:
        """Peak resident set size (VmHWM) of the server process over its life, model loading included."""
        return _status_mb(self.process.pid, "VmHWM")

    def rss_mb(self) -> float:
        """Resident set size (VmRSS) of the server process now."""
        return _status_mb(self.process.pid, "VmRSS")


def _start(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> Server:
    http_port, grpc_port = free_port(), free_port()
    log = (log_dir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, *command, "--http_port", str(http_port), "--grpc_port", str(grpc_port)],
        stdout=log, stderr=subprocess.STDOUT, env=os.environ | env,
    )
    wait_ready(name, process, http_port, log_dir / f"{name}.log")
    return Server(name, process, http_port, grpc_port)


def wait_ready(name: str, process: subprocess.Popen[bytes], http_port: int, log: Path) -> None:
    """Wait (180 s at most) until the server on ``http_port`` has its model ready; exit the benchmark naming the
    log when it stops or does not get there."""
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} server exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/v2/models/{MODEL}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # readiness poll interval, bounded by the deadline above
    process.kill()
    raise SystemExit(f"{name} server not ready within 180 s")


STARTUP_ROUNDS = 3  # starts of each server in the start-up table, interleaved


def _ready_after(command: list[str], env: dict[str, str], log_path: Path,
                 deadline_s: float = 180) -> tuple[float, float]:
    """Start a server pinned to the server core: seconds from its process start to ``/v2/health/ready`` 200 (polled
    every 10 ms), and its resident memory (VmRSS, MB) at that moment; then stop it."""
    import http.client

    http_port = free_port()
    with log_path.open("ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *command, "--http_port", str(http_port), "--grpc_port", str(free_port())],
            stdout=log, stderr=subprocess.STDOUT, env=os.environ | env)
    try:
        while time.perf_counter() - started < deadline_s:
            if process.poll() is not None:
                raise SystemExit(f"{command} exited with {process.returncode} while starting; see {log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=2)
                conn.request("GET", "/v2/health/ready")
                ready = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ready = False
            if ready:
                return time.perf_counter() - started, _status_mb(process.pid, "VmRSS")
            time.sleep(0.01)  # readiness poll interval, bounded by the deadline above
        raise SystemExit(f"{command} not ready within {deadline_s:.0f} s; see {log_path}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _status_mb(pid: int, field: str) -> float:
    """A memory field of ``/proc/<pid>/status`` (VmRSS, VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def startup(model_dir: Path, log_dir: Path, rounds: int = STARTUP_ROUNDS) -> dict[str, Any]:
    """Start-up of every server, ``rounds`` starts each in turn: seconds to ready and resident MB at ready.

    Ours three ways: numba compiling the kernels with an empty cache (a new pod whose cache volume is empty),
    numba loading them from its disk cache (a restarted container that kept its volume), and the ahead-of-time
    build the image carries (``serving._kernels_aot``; that row says so when it is not built). Every server loads
    the same model directory, ours from its ``fastpath.npz``; one row starts ours from a copy of the directory
    without it (the pipeline unpickled, the tables built from it), one from ``models:/`` (the directory
    registered in a real ``mlflow server`` on loopback), and the resolve-and-download alone is timed beside it."""
    import tempfile

    from serving.fastpath import TABLES_FILE

    python = sys.executable
    ours = [python, "-m", "serving", "--model-dir", str(model_dir)]
    quiet = {"KS_SERVE_LOG_LEVEL": "WARNING", "KS_SERVE_JSON_LOGS": "true", "KS_SERVE_EVENTS_DIR": ""}
    scratch = Path(tempfile.mkdtemp(prefix="ks-serve-bench-numba-"))
    cached = {"NUMBA_CACHE_DIR": str(scratch / "cached"), "KS_SERVE_KERNELS": "jit"}
    variants: dict[str, tuple[list[str], Any]] = {
        "no-op": ([python, "-m", "bench.serve_bench", "serve", "--kind", "noop", "--model_dir", str(model_dir)],
                  dict),
        "baseline": ([python, "-m", "bench.serve_bench", "serve", "--kind", "baseline", "--model_dir",
                      str(model_dir)], dict),
        "ours, numba, empty cache": (
            ours, lambda: quiet | {"KS_SERVE_KERNELS": "jit", "NUMBA_CACHE_DIR": tempfile.mkdtemp(dir=scratch)}),
        "ours, numba, disk cache": (ours, lambda: quiet | cached),
    }
    why_not = _aot_missing()
    kernels = {"KS_SERVE_KERNELS": "aot"} if not why_not else cached
    if not why_not:
        variants["ours, ahead of time"] = (ours, lambda: quiet | kernels)
    pickled = Path(shutil.copytree(model_dir, scratch / "pickled", ignore=shutil.ignore_patterns(TABLES_FILE)))
    variants[f"ours, {'ahead of time' if not why_not else 'numba, disk cache'}, without `{TABLES_FILE}`"] = (
        [python, "-m", "serving", "--model-dir", str(pickled)], lambda: quiet | kernels)
    log_path = log_dir / "startup.log"
    _ready_after(ours, quiet | cached, log_path)  # fills the disk cache (not measured)
    registry, model_uri = _registry(model_dir, scratch / "mlflow")  # stopped below, whatever happens from here on
    kind = "ahead of time" if not why_not else "numba, disk cache"
    variants[f"ours, {kind}, from `{model_uri}`"] = (
        [python, "-m", "serving", "--model-uri", model_uri, "--tracking-uri", registry.uri], lambda: quiet | kernels)
    starts: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    downloads: list[float] = []
    try:
        for _ in range(rounds):
            for name, (command, env) in variants.items():
                starts[name].append(_ready_after(command, env(), log_path))
                seconds, mb = starts[name][-1]
                print(f"start-up {name:26s} ready after {seconds:5.2f} s, {mb:4.0f} MB resident", file=sys.stderr)
            downloads.append(_download_s(registry.uri, model_uri, scratch))
    finally:
        stop(registry.process)
        shutil.rmtree(scratch, ignore_errors=True)
    return {"starts": starts, "aot_missing": why_not, "downloads": downloads, "model_uri": model_uri}


def _registry(model_dir: Path, root: Path) -> tuple[Any, str]:
    """A real ``mlflow server`` on loopback (sqlite, local artefacts) with ``model_dir`` registered as a version of
    the model, as the training Job registers it; the server and the version's ``models:/`` URI."""
    import mlflow

    from model.registry import MODEL_ARTIFACT_PATH, register
    from tests.support.servers import start_mlflow_server

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # the report's stderr stays readable
    server = start_mlflow_server(root)
    client = mlflow.MlflowClient(server.uri)
    experiment = client.create_experiment("serve-bench")
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(model_dir), MODEL_ARTIFACT_PATH)
    client.set_terminated(run.info.run_id)
    version = register(client, run.info.run_id, MODEL, {})
    return server, f"models:/{MODEL}/{version.version}"


def _download_s(tracking_uri: str, model_uri: str, scratch: Path) -> float:
    """Seconds to resolve ``model_uri`` and download the version alone (what a start from the registry adds)."""
    import tempfile

    import mlflow

    from model.registry import download_version

    name, _, number = model_uri.removeprefix("models:/").partition("/")
    started = time.perf_counter()
    version = mlflow.MlflowClient(tracking_uri).get_model_version(name, number)
    with tempfile.TemporaryDirectory(dir=scratch) as dest:
        download_version(tracking_uri, version, Path(dest))
    return time.perf_counter() - started


def _stop(server: Server) -> None:
    terminate(server.process, 20)


def terminate(process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; returns once the process is gone."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class LoadGen:
    """The load generator of a protocol: a native tool, or (``binary`` None) the Python client."""

    label: str  # as the tables show it: "wrk 4.1.0-3+b2", "ghz 0.121.0", "python (fallback)"
    binary: Path | None = None


def choose_loadgens(choice: str) -> tuple[dict[str, LoadGen], list[str]]:
    """The load generator of each protocol for ``--loadgen`` (auto, native, python), and what is missing."""
    if choice == "python":
        return dict.fromkeys(PROTOCOLS, LoadGen(PYTHON_LOADGEN)), []
    wrk, ghz = wrk_binary(), ghz_binary()
    missing = ([] if wrk else ["wrk (HTTP): apt-get install wrk"]) + (
        [] if ghz else ["ghz (gRPC): scripts/build-tools.sh ghz"])
    fallback = LoadGen(f"{PYTHON_LOADGEN} (fallback)")
    http = LoadGen(tool_version(wrk), wrk) if wrk else fallback
    grpc = LoadGen(tool_version(ghz), ghz) if ghz else fallback
    return {"v1": http, "v2": http, "grpc": grpc}, missing


def _run_load(servers: list[Server], protocol: str, concurrency: int, per_request: int, seconds: float,
              slice_s: float, loadgen: LoadGen) -> list[dict[str, Any]]:
    """One cell: the servers take turns under ``loadgen`` (a native tool driven from here, each run pinned to the
    load core; or the Python client's own process pinned there)."""
    if loadgen.binary is None:
        return _run_python_load(servers, protocol, concurrency, per_request, seconds, slice_s, loadgen.label)
    import tempfile

    texts = _texts()
    with tempfile.TemporaryDirectory(prefix="ks-serve-bench-load-") as tmp:
        generator: Wrk | Ghz
        if protocol == "grpc":
            messages = [m.SerializeToString() for m in _grpc_messages(texts, per_request)]
            generator = Ghz(loadgen.binary, loadgen.label, LOAD_CORE, _kserve_protoset(), messages, concurrency,
                            Path(tmp))
            ports = [server.grpc_port for server in servers]
        else:
            generator = Wrk(loadgen.binary, loadgen.label, LOAD_CORE, _http_path(protocol),
                            _http_bodies(protocol, texts, per_request), concurrency, Path(tmp))
            ports = [server.http_port for server in servers]
        tallies = drive(generator, ports, seconds, slice_s, WARMUP_S, SETTLE_S,
                        [server.process.pid for server in servers])
    return [tally.result(per_request, loadgen.label) for tally in tallies]


def _run_python_load(servers: list[Server], protocol: str, concurrency: int, per_request: int, seconds: float,
                     slice_s: float, label: str) -> list[dict[str, Any]]:
    targets = ",".join(f"{server.http_port}:{server.grpc_port}" for server in servers)
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, sys.executable, "-m", "bench.serve_bench", "load", "--api", protocol,
         "--targets", targets, "-c", str(concurrency), "--per_request", str(per_request), "--duration", str(seconds),
         "--slice", str(slice_s)],
        capture_output=True, text=True, cwd=REPO, timeout=len(servers) * (seconds + 1) * 4 + 120, check=True,
    )
    return [result | {"loadgen": label} for result in json.loads(out.stdout.strip().splitlines()[-1])]


def _shipper_command(port: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
    """The real sidecar on the load core, reading the journal under ``workdir`` (what ``ours+events`` writes)."""
    env = {"KS_SHIP_HOST": "127.0.0.1", "KS_SHIP_PORT": str(port), "KS_SHIP_SPOOL_DIR": str(workdir / "spool"),
           "KS_SHIP_SINK_DIR": str(workdir / "sink"), "KS_SHIP_LOG_LEVEL": "WARNING", "KS_SHIP_JSON_LOGS": "true"}
    return ["taskset", "-c", LOAD_CORE, sys.executable, "-m", "serving.shipper"], env


def _mirror_sink_command(port: int) -> list[str]:
    return ["taskset", "-c", LOAD_CORE, sys.executable, "-m", "bench.serve_bench", "mirror-sink", "--port", str(port)]


def mirror_sink(port: int) -> None:
    """Stands in for the shadow's ``POST /v1/models/<name>/mirror``: reads each POST, answers 202, keeps nothing."""
    import re

    import uvloop

    content_length = re.compile(rb"(?i)content-length:\s*(\d+)")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                match = content_length.search(head)
                if match:
                    await reader.readexactly(int(match.group(1)))
                writer.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def run() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(run())


def mirror_cost(sink_port: int, per_send: int, count: int = 20_000, rounds: int = 5) -> float:
    """CPU µs per copied request of the whole mirror path (submit, encode, POST to the stand-in shadow), measured in
    this process with the predictor's defaults, sending every ``per_send`` copies (the copies one flush interval
    gathers at the server's fastest rate); the median of ``rounds``."""

    from prometheus_client import CollectorRegistry

    from serving.mirror import Mirror
    from serving.settings import ServeSettings

    corpus = _texts()
    texts = (corpus * (count // len(corpus) + 1))[:count]
    defaults = ServeSettings()

    async def one() -> float:
        mirror = Mirror(f"http://127.0.0.1:{sink_port}", MODEL, 100, CollectorRegistry(),
                        queue_size=count + 1, concurrency=defaults.mirror_concurrency)
        mirror.submit("bench-warm-up", "v1", ["warm up"])
        await mirror.flush(deadline_s=60)  # the HTTP client and its connection exist before the clock starts
        started = time.process_time()
        for i, text in enumerate(texts):
            mirror.submit(f"bench-{i}", "v1", [text])
            if i % per_send == per_send - 1:
                await mirror.flush(deadline_s=60)  # what the sender does every flush interval
        await mirror.flush(deadline_s=60)
        used = time.process_time() - started
        await mirror.aclose()
        if mirror.counts["sent"] != count + 1:
            raise SystemExit(f"mirror cost: {mirror.counts} for {count + 1} copies")
        return used / count * 1e6

    return statistics.median(asyncio.run(one()) for _ in range(rounds))


def emitter_cost(count: int = 20_000, rounds: int = 5) -> float:
    """CPU µs per event of the whole emitter path (submit, encode, append to the journal), measured in this process
    with the predictor's default batch size and text logging; the median of ``rounds``.

    Steadier than comparing two servers' req/s on a shared machine: it is the time the predictor's core spends per
    event, to be set against its time per request.
    """
    import tempfile

    from prometheus_client import CollectorRegistry

    from serving.emitter import EventContext, EventEmitter
    from serving.eventlog.journal import JournalWriter
    from serving.metrics import ServingMetrics
    from serving.settings import ServeSettings

    corpus = _texts()
    texts = (corpus * (count // len(corpus) + 1))[:count]
    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=count)
    defaults = ServeSettings()  # the predictor's own batching and text logging
    context = EventContext(MODEL, "bench", "stable", "bench", ("negative", "neutral", "positive"), defaults.log_text)

    def one(directory: Path) -> float:
        metrics = ServingMetrics(MODEL, "bench", "stable", CollectorRegistry())
        journal = JournalWriter(directory, 1 << 34, defaults.events_file_bytes)
        emitter = EventEmitter(journal, context, metrics, queue_size=count + 1,
                               batch_size=defaults.events_batch_size)
        emitter.submit("bench-warm-up", "v1", ["warm up"], probs[:1], 1.0)
        emitter.flush()  # the journal file exists before the clock starts
        started = time.process_time()
        for i, text in enumerate(texts):
            emitter.submit(f"bench-{i}", "v1", [text], probs[i : i + 1], 1.0)
            if i % 1000 == 999:
                emitter.flush()  # what the background task does every flush interval
        emitter.flush()
        used = time.process_time() - started
        emitter.close()
        if emitter.written != count + 1:
            raise SystemExit(f"emitter cost: {emitter.written} of {count + 1} events written "
                             f"({emitter.dropped} dropped, {emitter.queued} left)")
        return used / count * 1e6

    with tempfile.TemporaryDirectory(prefix="ks-emitter-cost-") as tmp:
        return statistics.median(one(Path(tmp) / str(r)) for r in range(rounds))


def _model_dir(rows: int | None) -> tuple[Path, str]:
    """The production model as a model directory, and how the report names it: ``model.train.fit`` (what ``train``
    fits: negation counterfactuals, sample weights) with the default settings on the whole training split, or on
    its first ``rows`` rows. Fitted once and cached, keyed by the settings."""
    import hashlib

    from model.settings import DataSettings, ModelSettings

    settings, data_settings = ModelSettings(), DataSettings()
    key = hashlib.sha256(repr((settings, data_settings)).encode()).hexdigest()[:12]
    path = CACHE / f"model-{'full' if rows is None else rows}-{key}"
    about = path.with_name(path.name + ".json")
    if not ((path / "MLmodel").is_file() and about.is_file()):
        from model.artifacts import save_model_dir
        from model.data import split
        from model.train import fit

        train = split(data_settings).train
        if rows is not None:
            train = train.head(rows)
        print(f"fitting the benchmark model on {len(train)} training rows (cached in {path})", file=sys.stderr)
        pipeline = fit(settings, train)
        shutil.rmtree(path, ignore_errors=True)  # an interrupted earlier save
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model_dir(path, pipeline, {"registered_version": f"bench-{path.name}"}, None)
        about.write_text(json.dumps({"train_rows": len(train)}))
    from serving.fastpath import TABLES_FILE, export_tables

    if not (path / TABLES_FILE).is_file():  # as `kube-sentiment train` saves it (also: a cache from before them)
        from model.artifacts import load_model_dir

        why_not = export_tables(load_model_dir(path).pipeline, path)
        if why_not:
            raise SystemExit(f"cannot write the fast path's tables into {path}: {why_not}")
    n = json.loads(about.read_text())["train_rows"]
    what = "the whole training split" if rows is None else "its first rows"
    return path, f"the production model (model.train.fit, default settings) on {what} ({n} rows)"


PROTOCOLS = ("v1", "v2", "grpc")
PROTOCOL_NAMES = {"v1": "V1 REST", "v2": "V2 REST", "grpc": "V2 gRPC"}


def benchmark(model_dir: Path, seconds: float, slice_s: float, log_dir: Path,
              loadgens: dict[str, LoadGen]) -> dict[str, Any]:
    """Start the four servers (idle ones use no CPU), then run every cell with its servers taking turns in slices
    of ``slice_s`` seconds until each has had ``seconds``: a neighbour's passing load hurts them alike."""
    import tempfile

    events_dir = Path(tempfile.mkdtemp(prefix="ks-serve-bench-events-"))
    command, env = _shipper_command(free_port(), events_dir)
    shipper = subprocess.Popen(command, cwd=REPO, env=os.environ | env)
    mirror_port = free_port()
    shadow = subprocess.Popen(_mirror_sink_command(mirror_port), cwd=REPO)
    python = sys.executable
    quiet = {"KS_SERVE_LOG_LEVEL": "WARNING", "KS_SERVE_JSON_LOGS": "true"}
    commands = {
        "noop": ([python, "-m", "bench.serve_bench", "serve", "--kind", "noop", "--model_dir", str(model_dir)], {}),
        "baseline": ([python, "-m", "bench.serve_bench", "serve", "--kind", "baseline", "--model_dir",
                      str(model_dir)], {}),
        "ours": ([python, "-m", "serving", "--model-dir", str(model_dir)], {"KS_SERVE_EVENTS_DIR": "", **quiet}),
        "ours+events": ([python, "-m", "serving", "--model-dir", str(model_dir)],
                        {"KS_SERVE_EVENTS_DIR": str(events_dir / "spool" / "journal"), **quiet}),
        "ours+mirror": ([python, "-m", "serving", "--model-dir", str(model_dir)],
                        {"KS_SERVE_EVENTS_DIR": "", "KS_SERVE_MIRROR_URL": f"http://127.0.0.1:{mirror_port}",
                         "KS_SERVE_MIRROR_PERCENT": "100", **quiet}),
    }
    cells = [(p, c, 1, ["noop", "baseline", "ours"] + (["ours+events", "ours+mirror"] if c == 32 else []))
             for p in PROTOCOLS for c in (8, 32)]
    cells += [(p, 8, 64, ["baseline", "ours", "ours+mirror"]) for p in PROTOCOLS]
    servers: dict[str, Server] = {}
    results: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    try:
        for name, (command, env) in commands.items():
            servers[name] = _start(name, command, env, log_dir)
        for protocol, concurrency, per_request, names in cells:
            measured = _run_load([servers[n] for n in names], protocol, concurrency, per_request, seconds, slice_s,
                                 loadgens[protocol])
            for name, result in zip(names, measured, strict=True):
                results[(name, protocol, concurrency, per_request)] = result
                print(f"{name:12s} {PROTOCOL_NAMES[protocol]:8s} c={concurrency:<3d} x{per_request:<3d} "
                      f"{result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.2f} ms  "
                      f"p99 {result['p99_ms']:6.2f} ms  errors {result['errors']}  "
                      f"{result['loadgen']} CPU {_cpu(result)}", file=sys.stderr)
        rss = {name: server.peak_rss_mb() for name, server in servers.items()}
        rss_after = {name: server.rss_mb() for name, server in servers.items()}
        event_us = emitter_cost()
        from serving.settings import ServeSettings

        fastest = max(v["rps"] for k, v in results.items() if k[0] == "ours" and k[3] == 1)
        per_send = max(1, round(fastest * ServeSettings().mirror_flush_interval_s))
        mirror_us = mirror_cost(mirror_port, per_send)
    finally:
        for server in servers.values():
            _stop(server)
        shipper.terminate()
        shipper.wait()
        shadow.terminate()
        shadow.wait()
        shutil.rmtree(events_dir, ignore_errors=True)
    return {
        "cells": [{"server": k[0], "protocol": k[1], "c": k[2], "per_request": k[3], **v} for k, v in results.items()],
        "rss": rss,
        "rss_after": rss_after,
        "emitter_us_per_event": event_us,
        "mirror_us_per_copy": mirror_us,
        "mirror_copies_per_send": per_send,
    }


def _cell(results: dict[str, Any], server: str, protocol: str, c: int, per: int) -> dict[str, Any] | None:
    for cell in results["cells"]:
        if (cell["server"], cell["protocol"], cell["c"], cell["per_request"]) == (server, protocol, c, per):
            return cell
    return None


def _latency(cell: dict[str, Any]) -> str:
    return f"{cell['p50_ms']:.2f} / {cell['p99_ms']:.2f}"


def _tail(cell: dict[str, Any]) -> str:
    return f"{cell['p99_ms'] / cell['p50_ms']:.2f} ({cell['p99_over_p50_typical_turn']:.2f})"


def _cpu(cell: dict[str, Any]) -> str:
    """The load generator's CPU over its measured time, as a share of its one core."""
    cpu = cell.get("client_cpu")
    return "-" if cpu is None else f"{cpu:.0%}"


SATURATED = 0.9  # a load generator above this share of its core may be what a cell measures


def render_startup(startup: dict[str, Any]) -> list[str]:
    """The start-up table: seconds from process start to ``/v2/health/ready`` 200 and resident MB at that moment."""
    starts: dict[str, list[tuple[float, float]]] = startup["starts"]
    rounds = min(len(v) for v in starts.values())
    lines = [f"Start-up (process start to `/v2/health/ready` 200; {rounds} starts of each, in turns, server pinned "
             "to its core, the machine otherwise idle). Every server loads the same local model directory (ours "
             "from its `fastpath.npz`, as `kube-sentiment train` saves it), except the row without it (a copy of "
             f"the directory without that file) and the `{startup['model_uri']}` row, which resolves and downloads "
             "it from a real MLflow server on loopback first:", "",
             "| server | ready after, s: median (min-max) | resident at ready, MB: median (min-max) |",
             "|---|---|---|"]
    for name, runs in starts.items():
        seconds, mb = sorted(r[0] for r in runs), sorted(r[1] for r in runs)
        lines.append(f"| {name} | {statistics.median(seconds):.2f} ({seconds[0]:.2f}-{seconds[-1]:.2f}) "
                     f"| {statistics.median(mb):.0f} ({mb[0]:.0f}-{mb[-1]:.0f}) |")
    downloads = sorted(startup["downloads"])
    lines += ["", f"Resolving and downloading `{startup['model_uri']}` alone (the MLflow client in the benchmark's "
              f"process): {statistics.median(downloads):.2f} s median ({downloads[0]:.2f}-{downloads[-1]:.2f})."]
    if startup["aot_missing"]:
        lines += ["", f"No ahead-of-time row: {startup['aot_missing']} (python -m serving.aot builds it)."]
    return lines


def render(results: dict[str, Any], meta: dict[str, str]) -> str:
    """The markdown report: machine, the single-text table, the 64-text table, event cost, RSS."""
    lines = [
        f"Run {meta['date']} on {meta['machine']}; server pinned to core {SERVER_CORE}, load generators and "
        f"monitoring sidecar on core {LOAD_CORE}; each cell's servers take turns in {meta['slice']} s slices until "
        f"each has had {meta['duration']} s (after a {WARMUP_S:g} s warm-up each; the first {SETTLE_S:g} s of "
        f"every turn is load but not measured); model: {meta['model']}.",
        f"Load generators: {meta['loadgens']}. Kernels of ours: {meta.get('kernels', 'auto')}.",
        f"Load average when the run started: {meta['load']}.",
        "",
        "Single-text requests (closed loop, client-side latency):",
        "",
        "| protocol | c | no-op req/s | baseline req/s | ours req/s | ours / no-op | ours / baseline "
        "| ours p50 / p99 ms | ours p99/p50 (typical turn) | no-op p50 / p99 ms | no-op p99/p50 (typical turn) "
        "| baseline p50 / p99 ms | load generator | its CPU: no-op / baseline / ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for protocol in PROTOCOLS:
        for c in (8, 32):
            noop, base, ours = (_cell(results, s, protocol, c, 1) for s in ("noop", "baseline", "ours"))
            if not (noop and base and ours):
                continue
            lines.append(
                f"| {PROTOCOL_NAMES[protocol]} | {c} | {noop['rps']:.0f} | {base['rps']:.0f} | {ours['rps']:.0f} "
                f"| {ours['rps'] / noop['rps']:.0%} | {ours['rps'] / base['rps']:.2f}x | {_latency(ours)} "
                f"| {_tail(ours)} | {_latency(noop)} | {_tail(noop)} | {_latency(base)} | {ours['loadgen']} "
                f"| {_cpu(noop)} / {_cpu(base)} / {_cpu(ours)} |"
            )
    lines += ["", f"p50 and p99 over every measured request of the server in the cell (all its turns' latencies "
              f"merged); p99/p50 over the whole run, and (in brackets) in a typical turn: the median over the "
              f"server's {meta['slice']} s turns of each turn's p99/p50 (the machine's speed shifts between turns). "
              f"The load generator's CPU is its user + system time over its measured time (100 % = its core "
              f"saturated, when the cell measures the generator rather than the server; in the +events and +mirror "
              f"cells the sidecar and the stand-in shadow share that core)."]
    lines += ["", "64 texts per request, c=8:", "",
              "| protocol | baseline texts/s | ours texts/s | ours / baseline | ours p50 / p99 ms | load generator "
              "| its CPU: baseline / ours |",
              "|---|---|---|---|---|---|---|"]
    for protocol in PROTOCOLS:
        base, ours = _cell(results, "baseline", protocol, 8, 64), _cell(results, "ours", protocol, 8, 64)
        if base and ours:
            lines.append(f"| {PROTOCOL_NAMES[protocol]} | {base['texts_per_s']:.0f} | {ours['texts_per_s']:.0f} "
                         f"| {ours['texts_per_s'] / base['texts_per_s']:.2f}x "
                         f"| {_latency(ours)} | {ours['loadgen']} | {_cpu(base)} / {_cpu(ours)} |")
    lines += ["", "Prediction events on (journal read by the sidecar on the load core), single text, c=32:", "",
              "| protocol | ours req/s | ours+events req/s | cost |", "|---|---|---|---|"]
    for protocol in PROTOCOLS:
        ours, events = _cell(results, "ours", protocol, 32, 1), _cell(results, "ours+events", protocol, 32, 1)
        if ours and events:
            lines.append(f"| {PROTOCOL_NAMES[protocol]} | {ours['rps']:.0f} | {events['rps']:.0f} "
                         f"| {1 - events['rps'] / ours['rps']:.1%} |")
    ours32 = [_cell(results, "ours", p, 32, 1) for p in PROTOCOLS]
    fastest = max(c["rps"] for c in ours32 if c)
    lines += ["", f"Emitter CPU per event, measured in-process (submit, encode, append to the journal): "
              f"{results['emitter_us_per_event']:.1f} µs, i.e. {results['emitter_us_per_event'] * fastest / 1e6:.1%} "
              f"of ours' time per single-text request at its fastest ({fastest:.0f} req/s)."]
    lines += ["", "Shadow mirroring (kserve mode: the predictor sends a copy of every request), single text, c=32, "
              "and 64 texts per request, c=8:", "",
              "| protocol | ours req/s | ours+mirror req/s | cost | ours texts/s (x64) | ours+mirror texts/s (x64) "
              "| cost (x64) |", "|---|---|---|---|---|---|---|"]
    for protocol in PROTOCOLS:
        ours, mirror = _cell(results, "ours", protocol, 32, 1), _cell(results, "ours+mirror", protocol, 32, 1)
        ours64, mirror64 = _cell(results, "ours", protocol, 8, 64), _cell(results, "ours+mirror", protocol, 8, 64)
        if ours and mirror and ours64 and mirror64:
            lines.append(f"| {PROTOCOL_NAMES[protocol]} | {ours['rps']:.0f} | {mirror['rps']:.0f} "
                         f"| {1 - mirror['rps'] / ours['rps']:.1%} | {ours64['texts_per_s']:.0f} "
                         f"| {mirror64['texts_per_s']:.0f} "
                         f"| {1 - mirror64['texts_per_s'] / ours64['texts_per_s']:.1%} |")
    mirror_us = results["mirror_us_per_copy"]
    lines += ["", f"Mirror CPU per copied request, measured in-process (submit, encode, POST to the stand-in shadow, "
              f"{results['mirror_copies_per_send']} copies per POST: one flush interval at the fastest rate): "
              f"{mirror_us:.1f} µs, i.e. {mirror_us * fastest / 1e6:.1%} of ours' time per single-text request at "
              f"its fastest ({fastest:.0f} req/s)."]
    if "startup" in results:
        lines += ["", *render_startup(results["startup"])]
    if "rss_after" in results:
        lines += ["", "Resident memory of each server process after the whole run, MB (in brackets its peak, which "
                  "for ours is reached while the model loads, before ready): "
                  + ", ".join(f"{k} {results['rss_after'][k]:.0f} ({v:.0f})" for k, v in results["rss"].items())
                  + ".", ""]
    else:
        lines += ["", "Peak RSS of each server process (MB): "
                  + ", ".join(f"{k} {v:.0f}" for k, v in results["rss"].items()) + ".", ""]
    errors = sum(c["errors"] for c in results["cells"])
    lines.append(f"Non-200 answers during the run: {errors}.")
    saturated = [f"{c['server']} {PROTOCOL_NAMES[c['protocol']]} c={c['c']} x{c['per_request']} ({_cpu(c)})"
                 for c in results["cells"] if (c.get("client_cpu") or 0.0) >= SATURATED]
    lines.append(f"Load generator at {SATURATED:.0%} of its core or more (the cell measures it, not the server): "
                 + (", ".join(saturated) if saturated else "none") + ".")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``run`` (default), or the internal ``serve`` / ``load`` roles."""
    parser = argparse.ArgumentParser(prog="python -m bench.serve_bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="role")
    run_p = sub.add_parser("run", help="run the whole benchmark (default)")
    for p in (parser, run_p):
        p.add_argument("--duration", type=float, default=6.0, help="seconds measured per server and cell")
        p.add_argument("--slice", type=float, default=0.5, help="seconds per turn of a server within a cell")
        p.add_argument("--model_dir", type=Path, default=None,
                       help="model directory (default: the production model, fitted once and cached)")
        p.add_argument("--train_rows", type=int, default=None,
                       help="fit the model on only this many training rows (default: the whole training split)")
        p.add_argument("--loadgen", choices=("auto", "native", "python"), default="auto",
                       help="auto: wrk and ghz, the Python client where one is missing; native: refuse to fall back; "
                            "python: the Python client throughout")
        p.add_argument("--no_aot_build", dest="aot_build", action="store_false",
                       help="do not build the ahead-of-time kernels (python -m serving.aot) when they are missing: "
                            "ours then compiles them with numba, and the start-up table has no ahead-of-time row")
        p.add_argument("--markdown", type=Path, default=None, help="also write the report to this file")
        p.add_argument("--startup_only", action="store_true",
                       help="measure start-up and resident memory only (a few minutes, no load generator)")
    serve_p = sub.add_parser("serve")
    serve_p.add_argument("--kind", choices=("noop", "baseline"), required=True)
    serve_p.add_argument("--model_dir", type=Path, required=True)
    serve_p.add_argument("--http_port", type=int, required=True)
    serve_p.add_argument("--grpc_port", type=int, required=True)
    sink_p = sub.add_parser("mirror-sink")
    sink_p.add_argument("--port", type=int, required=True)
    load_p = sub.add_parser("load")
    load_p.add_argument("--api", choices=PROTOCOLS, required=True)
    load_p.add_argument("--targets", required=True, help="http_port:grpc_port[,http_port:grpc_port...]")
    load_p.add_argument("-c", type=int, required=True)
    load_p.add_argument("--per_request", type=int, default=1)
    load_p.add_argument("--duration", type=float, required=True)
    load_p.add_argument("--slice", type=float, default=0.5)
    args = parser.parse_args(argv)

    if args.role == "serve":
        serve(args.kind, args.model_dir, args.http_port, args.grpc_port)
        return 0
    if args.role == "mirror-sink":
        mirror_sink(args.port)
        return 0
    if args.role == "load":
        targets = [(int(h), int(g)) for h, g in (t.split(":") for t in args.targets.split(","))]
        print(json.dumps(load(args.api, targets, args.c, args.per_request, args.duration, warmup=1.0,
                              slice_s=args.slice)))
        return 0
    started = time.monotonic()
    loadgens, missing = choose_loadgens("python" if args.startup_only else args.loadgen)
    if missing and args.loadgen == "native":
        print(f"--loadgen native: missing {'; '.join(missing)}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    for what in missing:
        print(f"WARNING: no {what}; its cells fall back to the Python client, which saturates its core before "
              "the servers do", file=sys.stderr)
    if args.model_dir:
        model_dir, model_name = args.model_dir, f"the model directory {args.model_dir}"
    else:
        model_dir, model_name = _model_dir(args.train_rows)
    _texts()
    log_dir = CACHE / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {_cpu_name()}, {os.cpu_count()} cores, "
                   f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
                   f"Python {platform.python_version()}",
        "duration": f"{args.duration:g}",
        "slice": f"{args.slice:g}",
        "model": model_name,
        "loadgens": "; ".join(f"{PROTOCOL_NAMES[p]}: {loadgens[p].label}" for p in PROTOCOLS),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    kernels = _kernels_for_ours(args.aot_build)
    meta["kernels"] = kernels
    start_ups = startup(model_dir, log_dir)
    if args.startup_only:
        report = "\n".join([f"Run {meta['date']} on {meta['machine']}; model: {meta['model']}; kernels of ours: "
                            f"{kernels}. Load average when the run started: {meta['load']}.", "",
                            *render_startup(start_ups), ""])
    else:
        results = benchmark(model_dir, args.duration, args.slice, log_dir, loadgens) | {"startup": start_ups}
        report = render(results, meta)
    print(report)
    print(f"(benchmark took {time.monotonic() - started:.0f} s)", file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(report)
    return 0


def _kernels_for_ours(build: bool) -> str:
    """Which kernels ``ours`` runs in the throughput cells (``auto``: the ahead-of-time build the image carries when
    it matches the source); with ``build``, ``python -m serving.aot`` first builds it when missing or stale (into
    the installed ``serving`` package, as the image does; ~30 s)."""
    why_not = _aot_missing()
    if why_not and build:
        print(f"building the kernels ahead of time ({why_not}): python -m serving.aot", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "serving.aot"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        why_not = _aot_missing()
    return f"numba ({why_not})" if why_not else "ahead of time (serving._kernels_aot)"


def _aot_missing() -> str:
    """Why a new predictor process would not use the ahead-of-time kernels ("" when it would). Asked in a new
    process: this one may hold an earlier build in memory."""
    probe = "from serving.kernels import ahead_of_time; print(ahead_of_time()[1])"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
