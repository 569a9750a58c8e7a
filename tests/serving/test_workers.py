"""``--workers N``: one model load, N forked server processes on shared ports, one pod-wide ``/metrics``.

The merge and the supervisor's give-up rule run in-process; the rest drives the real predictor with two workers
over REST and gRPC, kills a worker, and stops the pod with SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from model.errors import ExitCode
from serving import workers
from serving.eventlog.journal import DONE, OPEN
from tests.support import stop, wait_until
from tests.support.events import journal_events
from tests.support.servers import Predictor, start_predictor

V1 = "/v1/models/sentiment:predict"


def _registry(requests: int, queued: int, rss: int, latency: list[float]) -> CollectorRegistry:
    reg = CollectorRegistry()
    Counter("demo_requests", "requests", ["protocol"], registry=reg).labels("v1").inc(requests)
    Gauge("kube_sentiment_events_queued", "queued", registry=reg).set(queued)
    Gauge("process_resident_memory_bytes", "rss", registry=reg).set(rss)
    hist = Histogram("demo_latency_seconds", "latency", buckets=(0.01, 0.1), registry=reg)
    for value in latency:
        hist.observe(value)
    return reg


def _samples(metrics: list) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in metrics for s in m.samples}


def test_the_pod_sums_counters_and_histograms_and_keeps_a_dead_workers_counts_only() -> None:
    own = workers.families(_registry(3, 2, 300, [0.005, 0.05]))
    alive = workers.families(_registry(4, 5, 280, [0.5]))
    dead = workers.families(_registry(10, 7, 900, [0.005]))
    got = _samples(workers.merge(own, [(True, alive), (False, dead)]))
    v1 = (("protocol", "v1"),)
    assert got[("demo_requests_total", v1)] == 17
    assert got[("kube_sentiment_events_queued", ())] == 7  # summed over the live workers only
    assert got[("process_resident_memory_bytes", ())] == 300  # the largest live worker (pages are shared)
    assert got[("demo_latency_seconds_count", ())] == 4
    assert got[("demo_latency_seconds_bucket", (("le", "0.01"),))] == 2
    assert got[("demo_latency_seconds_bucket", (("le", "+Inf"),))] == 4
    assert got[("demo_latency_seconds_sum", ())] == pytest.approx(0.56)
    created = [v for (name, _), v in got.items() if name == "demo_requests_created"]
    assert len(created) == 1


def test_a_scrape_merges_the_other_workers_snapshots(tmp_path: Path) -> None:
    workers.write_snapshot(tmp_path, "111", _registry(5, 0, 1, []))
    (tmp_path / "333.json").write_bytes(b"{not json")  # a torn file is skipped, never a failed scrape
    text = workers.pod_exposition(tmp_path, "222", _registry(2, 0, 1, [])).decode()
    assert re.search(r'^demo_requests_total\{protocol="v1"} 7\.0$', text, re.M), text


def test_dead_workers_add_their_counters_into_one_file_and_their_gauges_go(tmp_path: Path) -> None:
    supervisor = workers.Supervisor(2, lambda index: 0, tmp_path)
    for pid, requests in ((101, 3), (102, 4)):
        workers.write_snapshot(tmp_path, str(pid), _registry(requests, 9, 300, [0.05]))
        supervisor._retire(pid)
    supervisor._retire(103)  # died before its first snapshot
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dead.json"]
    workers.write_snapshot(tmp_path, "104", _registry(1, 2, 280, []))
    text = workers.pod_exposition(tmp_path, "105", _registry(0, 1, 200, [])).decode()
    assert re.search(r'^demo_requests_total\{protocol="v1"} 8\.0$', text, re.M), text
    assert re.search(r"^demo_latency_seconds_count 2\.0$", text, re.M)
    assert re.search(r"^kube_sentiment_events_queued 3\.0$", text, re.M)  # the live workers' 2 + 1 only


def test_workers_that_keep_stopping_stop_the_pod_with_exit_code_1(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    def serve(index: int) -> int:  # a worker that stops at once, as if it crashed right after the fork
        return 0

    caplog.set_level(logging.INFO, "serving.workers")

    assert workers.Supervisor(2, serve, tmp_path).run() == ExitCode.ERROR
    messages = [r.getMessage() for r in caplog.records if r.name == "serving.workers"]
    assert sum(m.endswith("starting another") for m in messages) == workers.MAX_RESTARTS
    assert messages[-2].endswith(f"{workers.MAX_RESTARTS + 1} workers stopped within 60s; stopping the server")
    assert messages[-1] == "stopping 1 workers (SIGTERM)"  # the one started last


# --- the real predictor with two workers -------------------------------------------------------------------------


@pytest.fixture
def pod(tiny_model_dir: Path, tmp_path: Path) -> Iterator[Predictor]:
    (tmp_path / "tmp").mkdir()  # the supervisor's metrics snapshots (a killed parent cannot remove them)
    running = start_predictor(
        tmp_path, ["--model-dir", str(tiny_model_dir), "--workers", "2"],
        env={"KS_SERVE_EVENTS_DIR": str(tmp_path / "journal"), "KS_SERVE_EVENTS_FLUSH_INTERVAL_S": "0.05",
             "TMPDIR": str(tmp_path / "tmp")},
    )
    yield running
    stop(running.process)


def _workers(pod: Predictor) -> set[int]:
    return {p.pid for p in psutil.Process(pod.process.pid).children() if p.status() != psutil.STATUS_ZOMBIE}


def _v1_ok(pod: Predictor) -> float:
    text = httpx.get(pod.http + "/metrics", timeout=10).text
    found = re.search(r'kube_sentiment_requests_total\{[^}]*protocol="v1",status="ok"[^}]*} (\S+)', text)
    return float(found[1]) if found else 0.0


async def _grpc(pod: Predictor, n: int) -> list[str]:
    labels = []
    for _ in range(n):  # a channel per call: a new connection, hashed to either worker
        client = InferenceGRPCClient(pod.grpc)
        try:
            request = InferRequest("sentiment", [InferInput("text", [1], "BYTES", [b"what a lovely film"])])
            response = await client.infer(request, timeout=10)
            labels.append(response.outputs[0].name)
        finally:
            await client.close()
    return labels


def _pids_in(journal: Path) -> set[int]:
    return {int(path.name.split("-")[1]) for path in journal.iterdir() if path.name[0].isdigit()}


@pytest.mark.integration
def test_two_workers_share_the_ports_and_every_request_is_answered_and_recorded(pod: Predictor) -> None:
    pids = _workers(pod)
    assert len(pids) == 2
    for i in range(40):  # httpx.post: a new connection each, hashed to either worker
        r = httpx.post(pod.http + V1, json={"instances": [f"text {i}"]}, timeout=10)
        assert r.status_code == 200, r.text
    assert len(asyncio.run(_grpc(pod, 10))) == 10
    assert pod.events_dir is not None
    wait_until(lambda: len(journal_events(pod.events_dir)) == 50, 20, "50 events in the journal")  # type: ignore[arg-type]
    assert _pids_in(pod.events_dir) == pids  # each worker answered and wrote its own journal file
    # whichever worker answers the scrape, it reports the pod's total (the other's part is at most 1 s old)
    wait_until(lambda: _v1_ok(pod) == 40 and _v1_ok(pod) == 40, 10, "the pod-wide count of 40 V1 requests")


@pytest.mark.integration
def test_a_killed_worker_is_replaced_and_sigterm_stops_them_all(pod: Predictor, tmp_path: Path) -> None:
    for i in range(20):
        assert httpx.post(pod.http + V1, json={"instances": [f"before {i}"]}, timeout=10).status_code == 200
    wait_until(lambda: _v1_ok(pod) == 20, 10, "the count of 20 V1 requests")
    first = _workers(pod)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> set[int] | None:
        live = _workers(pod)
        return live if len(live) == 2 and victim not in live else None

    now = wait_until(replaced, 20, "a new worker in place of the killed one")
    assert len(now & first) == 1
    for i in range(20):
        assert httpx.post(pod.http + V1, json={"instances": [f"after {i}"]}, timeout=10).status_code == 200
    # the killed worker's requests stay counted: the pod's counter never goes backwards
    wait_until(lambda: _v1_ok(pod) == 40, 10, "the count of all 40 V1 requests")
    assert f"worker 0 (pid {victim}) stopped (signal SIGKILL); starting another" in pod.log_text() or (
        f"worker 1 (pid {victim}) stopped (signal SIGKILL); starting another" in pod.log_text())

    pod.process.send_signal(signal.SIGTERM)
    assert pod.process.wait(timeout=30) == 0
    assert not [p for p in now if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not list((tmp_path / "tmp").iterdir()), "the metrics snapshots were left behind"
    assert pod.events_dir is not None
    names = [p.name for p in pod.events_dir.iterdir() if p.name[0].isdigit()]
    # the workers that were stopped sealed their files; the killed one could not
    assert {n.split("-")[1] for n in names if n.endswith(DONE)} >= {str(p) for p in now}
    assert {n.split("-")[1] for n in names if n.endswith(OPEN)} <= {str(victim)}


def _run(args: list[str], tmp: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", *args], capture_output=True, text=True, timeout=120, cwd=tmp,
        env={"PATH": "/usr/bin:/bin", "KS_SERVE_EVENTS_DIR": "", "KS_SERVE_JSON_LOGS": "false", **(env or {})},
    )


@pytest.mark.integration
def test_workers_refuse_settings_that_cannot_work(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = ["--model-dir", str(tiny_model_dir)]
    result = _run([*model, "--workers", "0"], tmp_path)
    assert result.returncode == ExitCode.BAD_CONFIG and "--workers must be at least 1, not 0" in result.stderr
    result = _run([*model, "--workers", "2"], tmp_path, {"KS_SERVE_LOAD_IN_BACKGROUND": "true"})
    assert result.returncode == ExitCode.BAD_CONFIG and "cannot load in the background" in result.stderr
    result = _run([*model, "--workers", "2", "--http_port", "0"], tmp_path)
    assert result.returncode == ExitCode.BAD_CONFIG and "not 0" in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run([*model, "--workers", "2", "--http_port", str(port), "--grpc_port", "0"], tmp_path)
    assert result.returncode == ExitCode.BAD_CONFIG, result.stderr
    assert f"port {port} is already in use by another process" in result.stderr


@pytest.mark.integration
def test_no_worker_outlives_a_killed_parent(pod: Predictor) -> None:
    orphans = _workers(pod)
    assert len(orphans) == 2
    pod.process.kill()
    pod.process.wait(timeout=10)

    def gone() -> bool:
        return not [p for p in orphans if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]

    wait_until(gone, 30, "the workers to stop after their parent was killed")
