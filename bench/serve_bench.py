"""Serving benchmark: our predictor beside the standard predictor (baseline) and a do-nothing model (ceiling).

    .venv/bin/python -m bench.serve_bench [--duration 2] [--rounds 2] [--model_dir DIR] [--markdown FILE]

All servers are the same ``kserve.ModelServer`` (same flags, same logging), all started in this run and each pinned
to core 0 with ``taskset`` (only the one under load uses CPU); every cell runs the servers back to back, in
``--rounds`` rounds keeping each cell's best, so background load on a shared machine hits them alike. The load
generator (an asyncio HTTP/1.1 keep-alive client and a ``grpc.aio`` client, below) and the event sink run pinned
to core 1. A full run takes about 4 minutes. Servers:

- ``noop``: a ``kserve.Model`` that returns a constant one-text answer without looking at the input (the ceiling).
- ``baseline``: the standard way: a ``kserve.Model`` whose ``predict`` calls the pipeline's ``predict_proba``.
- ``ours``: ``python -m serving`` (fast path + micro-batching), prediction events off.
- ``ours+events``: the same with prediction events sent to a sink standing in for the sidecar.

Prints req/s, p50, p99 and peak RSS for V1 REST, V2 REST and V2 gRPC at c=8 and c=32 with one text per request,
texts/s with 64 texts per request, and the ratios. Not a test; nothing asserts on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".kube-sentiment" / "bench-serve"
SERVER_CORE, LOAD_CORE = "0", "1"
MODEL = "sentiment"


# --- the two comparison models (served by ``python -m bench.serve_bench serve``) ----------------------------------


def _comparison_model(kind: str, model_dir: Path) -> Any:
    """The ``noop`` or ``baseline`` kserve.Model."""
    from kserve import Model
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    from serving.loader import load_local

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
            bundle = load_local(model_dir, None).bundle
            self.pipeline = bundle.pipeline
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


def _http_requests(protocol: str, texts: list[str], per_request: int, count: int) -> list[bytes]:
    path = f"/v1/models/{MODEL}:predict" if protocol == "v1" else f"/v2/models/{MODEL}/infer"
    out = []
    for i in range(count):
        chunk = [texts[(i * per_request + j) % len(texts)] for j in range(per_request)]
        if protocol == "v1":
            body = json.dumps({"instances": chunk}).encode()
        else:
            body = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(chunk)],
                                           "data": chunk}]}).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        out.append(head + body)
    return out


_CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


async def _http_worker(port: int, requests: list[bytes], offset: int, stop_at: float,
                       latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
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
        latencies.append(clock() - started)
        if head[9:12] != b"200":
            errors.append(int(head[9:12]))
    writer.close()


async def _grpc_run(port: int, texts: list[str], per_request: int, concurrency: int, seconds: float,
                    latencies: list[float], errors: list[int]) -> None:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    messages = []
    for i in range(500):
        chunk = [texts[(i * per_request + j) % len(texts)].encode() for j in range(per_request)]
        messages.append(pb.ModelInferRequest(model_name=MODEL, inputs=[pb.ModelInferRequest.InferInputTensor(
            name="text", datatype="BYTES", shape=[len(chunk)],
            contents=pb.InferTensorContents(bytes_contents=chunk))]))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        await stub.ModelInfer(messages[0])
        stop_at = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            i, clock = offset, time.perf_counter
            while clock() < stop_at:
                started = clock()
                try:
                    await stub.ModelInfer(messages[i % len(messages)])
                except grpc.aio.AioRpcError as e:
                    errors.append(e.code().value[0])
                latencies.append(clock() - started)
                i += 1

        await asyncio.gather(*[worker(k * 37) for k in range(concurrency)])


def load(protocol: str, http_port: int, grpc_port: int, concurrency: int, per_request: int, seconds: float,
         warmup: float) -> dict[str, Any]:
    """Closed-loop load: ``concurrency`` connections (or gRPC streams) each sending the next request at once."""
    import uvloop

    texts = _texts()
    result: dict[str, Any] = {}

    async def run() -> None:
        for phase, length in (("warmup", warmup), ("measure", seconds)):
            latencies: list[float] = []
            errors: list[int] = []
            started = time.perf_counter()
            if protocol == "grpc":
                await _grpc_run(grpc_port, texts, per_request, concurrency, length, latencies, errors)
            else:
                requests = _http_requests(protocol, texts, per_request, 500)
                stop_at = time.perf_counter() + length
                await asyncio.gather(*[_http_worker(http_port, requests, k * 37, stop_at, latencies, errors)
                                       for k in range(concurrency)])
            elapsed = time.perf_counter() - started
            if phase == "measure":
                lat = np.array(latencies) * 1000.0
                result.update(requests=len(latencies), errors=len(errors), seconds=elapsed,
                              rps=len(latencies) / elapsed, texts_per_s=len(latencies) * per_request / elapsed,
                              p50_ms=float(np.percentile(lat, 50)), p99_ms=float(np.percentile(lat, 99)))

    uvloop.run(run())
    return result


# --- orchestration ------------------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A benchmarked server process."""

    name: str
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int

    def peak_rss_mb(self) -> float:
        """Peak resident set size (VmHWM) of the server process."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def _start(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> Server:
    import httpx

    http_port, grpc_port = _free_port(), _free_port()
    log = (log_dir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, *command, "--http_port", str(http_port), "--grpc_port", str(grpc_port)],
        stdout=log, stderr=subprocess.STDOUT, env=os.environ | env,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} server exited with {process.returncode}; see {log_dir / (name + '.log')}")
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/v2/models/{MODEL}/ready", timeout=2).status_code == 200:
                return Server(name, process, http_port, grpc_port)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # readiness poll interval, bounded by the deadline above
    process.kill()
    raise SystemExit(f"{name} server not ready within 180 s")


def _stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def _run_load(server: Server, protocol: str, concurrency: int, per_request: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, sys.executable, "-m", "bench.serve_bench", "load", "--api", protocol,
         "--http_port", str(server.http_port), "--grpc_port", str(server.grpc_port), "-c", str(concurrency),
         "--per_request", str(per_request), "--duration", str(seconds)],
        capture_output=True, text=True, cwd=REPO, timeout=seconds * 4 + 120, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sink_command(port: int) -> list[str]:
    return ["taskset", "-c", LOAD_CORE, sys.executable, "-m", "bench.serve_bench", "sink", "--port", str(port)]


def sink(port: int) -> None:
    """A minimal NDJSON receiver standing in for the sidecar: reads each POST, answers 202, stores nothing."""
    import uvloop

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                match = _CONTENT_LENGTH.search(head)
                if match:
                    await reader.readexactly(int(match.group(1)))
                writer.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def run() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(run())


def _model_dir(rows: int) -> Path:
    """A model directory fitted with the default training settings on ``rows`` training rows (cached)."""
    path = CACHE / f"model-{rows}"
    if (path / "MLmodel").is_file():
        return path
    from model.artifacts import save_model_dir
    from model.data import split
    from model.settings import DataSettings, ModelSettings
    from model.train import build_pipeline

    train = split(DataSettings()).train.head(rows)
    pipeline = build_pipeline(ModelSettings())
    pipeline.fit(train["text"].tolist(), train["label"].to_numpy())
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_model_dir(path, pipeline, {"registered_version": f"bench-{rows}"}, None)


PROTOCOLS = ("v1", "v2", "grpc")
PROTOCOL_NAMES = {"v1": "V1 REST", "v2": "V2 REST", "grpc": "V2 gRPC"}


def benchmark(model_dir: Path, seconds: float, rounds: int, log_dir: Path) -> dict[str, Any]:
    """Start the four servers (idle ones use no CPU), then run every cell for each server back to back, ``rounds``
    times, keeping each cell's best round: a neighbour's passing load then hurts all servers of a cell alike."""
    sink_port = _free_port()
    sink_proc = subprocess.Popen(_sink_command(sink_port), cwd=REPO)
    python = sys.executable
    quiet = {"KS_SERVE_LOG_LEVEL": "WARNING", "KS_SERVE_JSON_LOGS": "true"}
    commands = {
        "noop": ([python, "-m", "bench.serve_bench", "serve", "--kind", "noop", "--model_dir", str(model_dir)], {}),
        "baseline": ([python, "-m", "bench.serve_bench", "serve", "--kind", "baseline", "--model_dir",
                      str(model_dir)], {}),
        "ours": ([python, "-m", "serving", "--model_dir", str(model_dir)], {"KS_SERVE_EVENTS_URL": "", **quiet}),
        "ours+events": ([python, "-m", "serving", "--model_dir", str(model_dir)],
                        {"KS_SERVE_EVENTS_URL": f"http://127.0.0.1:{sink_port}/v1/events", **quiet}),
    }
    cells = [(p, c, 1, ["noop", "baseline", "ours"] + (["ours+events"] if c == 32 else []))
             for p in PROTOCOLS for c in (8, 32)]
    cells += [(p, 8, 64, ["baseline", "ours"]) for p in PROTOCOLS]
    servers: dict[str, Server] = {}
    best: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    try:
        for name, (command, env) in commands.items():
            servers[name] = _start(name, command, env, log_dir)
        for _ in range(rounds):
            for protocol, concurrency, per_request, names in cells:
                for name in names:
                    result = _run_load(servers[name], protocol, concurrency, per_request, seconds)
                    key = (name, protocol, concurrency, per_request)
                    if key not in best or result["rps"] > best[key]["rps"]:
                        best[key] = result
                    print(f"{name:12s} {PROTOCOL_NAMES[protocol]:8s} c={concurrency:<3d} x{per_request:<3d} "
                          f"{result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.2f} ms  "
                          f"p99 {result['p99_ms']:6.2f} ms  errors {result['errors']}", file=sys.stderr)
        rss = {name: server.peak_rss_mb() for name, server in servers.items()}
    finally:
        for server in servers.values():
            _stop(server)
        sink_proc.terminate()
        sink_proc.wait()
    return {
        "cells": [{"server": k[0], "protocol": k[1], "c": k[2], "per_request": k[3], **v} for k, v in best.items()],
        "rss": rss,
    }


def _cell(results: dict[str, Any], server: str, protocol: str, c: int, per: int) -> dict[str, Any] | None:
    for cell in results["cells"]:
        if (cell["server"], cell["protocol"], cell["c"], cell["per_request"]) == (server, protocol, c, per):
            return cell
    return None


def render(results: dict[str, Any], meta: dict[str, str]) -> str:
    """The markdown report: machine, the single-text table, the 64-text table, event cost, RSS."""
    lines = [
        f"Run {meta['date']} on {meta['machine']}; server pinned to core {SERVER_CORE}, load generator and event "
        f"sink on core {LOAD_CORE}; {meta['duration']} s per cell after a 1 s warm-up, best of {meta['rounds']} "
        f"rounds; model: {meta['model']}.",
        f"Load average when the run started: {meta['load']}.",
        "",
        "Single-text requests (closed loop, client-side latency):",
        "",
        "| protocol | c | no-op req/s | baseline req/s | ours req/s | ours / no-op | ours / baseline "
        "| ours p50 ms | ours p99 ms | p99/p50 | baseline p50 / p99 ms | no-op p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for protocol in PROTOCOLS:
        for c in (8, 32):
            noop, base, ours = (_cell(results, s, protocol, c, 1) for s in ("noop", "baseline", "ours"))
            if not (noop and base and ours):
                continue
            lines.append(
                f"| {PROTOCOL_NAMES[protocol]} | {c} | {noop['rps']:.0f} | {base['rps']:.0f} | {ours['rps']:.0f} "
                f"| {ours['rps'] / noop['rps']:.0%} | {ours['rps'] / base['rps']:.2f}x | {ours['p50_ms']:.2f} "
                f"| {ours['p99_ms']:.2f} | {ours['p99_ms'] / ours['p50_ms']:.2f} "
                f"| {base['p50_ms']:.2f} / {base['p99_ms']:.2f} | {noop['p50_ms']:.2f} / {noop['p99_ms']:.2f} |"
            )
    lines += ["", "64 texts per request, c=8:", "",
              "| protocol | baseline texts/s | ours texts/s | ours / baseline | ours p50 / p99 ms |",
              "|---|---|---|---|---|"]
    for protocol in PROTOCOLS:
        base, ours = _cell(results, "baseline", protocol, 8, 64), _cell(results, "ours", protocol, 8, 64)
        if base and ours:
            lines.append(f"| {PROTOCOL_NAMES[protocol]} | {base['texts_per_s']:.0f} | {ours['texts_per_s']:.0f} "
                         f"| {ours['texts_per_s'] / base['texts_per_s']:.2f}x "
                         f"| {ours['p50_ms']:.2f} / {ours['p99_ms']:.2f} |")
    lines += ["", "Prediction events on (sent to a sink on the load core), single text, c=32:", "",
              "| protocol | ours req/s | ours+events req/s | cost |", "|---|---|---|---|"]
    for protocol in PROTOCOLS:
        ours, events = _cell(results, "ours", protocol, 32, 1), _cell(results, "ours+events", protocol, 32, 1)
        if ours and events:
            lines.append(f"| {PROTOCOL_NAMES[protocol]} | {ours['rps']:.0f} | {events['rps']:.0f} "
                         f"| {1 - events['rps'] / ours['rps']:.1%} |")
    lines += ["", "Peak RSS of each server process (MB): "
              + ", ".join(f"{k} {v:.0f}" for k, v in results["rss"].items()) + ".", ""]
    errors = sum(c["errors"] for c in results["cells"])
    lines.append(f"Non-200 answers during the run: {errors}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``run`` (default), or the internal ``serve`` / ``load`` / ``sink`` roles."""
    parser = argparse.ArgumentParser(prog="python -m bench.serve_bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="role")
    run_p = sub.add_parser("run", help="run the whole benchmark (default)")
    for p in (parser, run_p):
        p.add_argument("--duration", type=float, default=2.0, help="seconds measured per cell and round")
        p.add_argument("--rounds", type=int, default=2, help="rounds over all cells; each cell keeps its best")
        p.add_argument("--model_dir", type=Path, default=None, help="model directory (default: fit one, cached)")
        p.add_argument("--train_rows", type=int, default=8000, help="training rows of the fitted model")
        p.add_argument("--markdown", type=Path, default=None, help="also write the report to this file")
    serve_p = sub.add_parser("serve")
    serve_p.add_argument("--kind", choices=("noop", "baseline"), required=True)
    serve_p.add_argument("--model_dir", type=Path, required=True)
    serve_p.add_argument("--http_port", type=int, required=True)
    serve_p.add_argument("--grpc_port", type=int, required=True)
    load_p = sub.add_parser("load")
    load_p.add_argument("--api", choices=PROTOCOLS, required=True)
    load_p.add_argument("--http_port", type=int, required=True)
    load_p.add_argument("--grpc_port", type=int, required=True)
    load_p.add_argument("-c", type=int, required=True)
    load_p.add_argument("--per_request", type=int, default=1)
    load_p.add_argument("--duration", type=float, required=True)
    sink_p = sub.add_parser("sink")
    sink_p.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    if args.role == "serve":
        serve(args.kind, args.model_dir, args.http_port, args.grpc_port)
        return 0
    if args.role == "load":
        print(json.dumps(load(args.api, args.http_port, args.grpc_port, args.c, args.per_request,
                              args.duration, warmup=1.0)))
        return 0
    if args.role == "sink":
        sink(args.port)
        return 0
    started = time.monotonic()
    model_dir = args.model_dir or _model_dir(args.train_rows)
    _texts()
    log_dir = CACHE / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {_cpu_name()}, {os.cpu_count()} cores, "
                   f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
                   f"Python {platform.python_version()}",
        "duration": f"{args.duration:g}",
        "rounds": str(args.rounds),
        "model": "default training settings" + (f" fitted on {args.train_rows} rows" if not args.model_dir else
                                                f" ({args.model_dir})"),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    results = benchmark(model_dir, args.duration, args.rounds, log_dir)
    report = render(results, meta)
    print(report)
    print(f"(benchmark took {time.monotonic() - started:.0f} s)", file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(report)
    return 0


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
