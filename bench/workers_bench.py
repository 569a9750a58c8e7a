"""Workers benchmark: the predictor with ``--workers 2`` beside ``--workers 1``, each given the same CPU per worker.

    .venv/bin/python -m bench.workers_bench [--duration 6] [--slice 0.5] [--worker_cpu 0.6] [--markdown FILE]

The question is whether a second worker process doubles what a pod serves when the pod has the CPU for it. This
machine has two cores: a pod with two workers on both would leave the load generator none, and the measurement
would be of the machine, not of the server. So each predictor runs in a cgroup of its own whose CFS quota gives it
``--worker_cpu`` cores per worker (default 0.6: 0.6 cores for one worker, 1.2 for two), the workers free to run on
either core, and wrk (one thread, not pinned) keeps the remaining 0.8 cores; the report gives wrk's CPU, so a
saturated load generator is visible. Both predictors run at once from the start and serve the production model
(``bench.serve_bench``'s, fitted once and cached) with the same flags; they take turns of ``--slice`` seconds in
each cell (V1 and V2 REST at c=8 and c=32, one text per request) until each has had ``--duration`` seconds.

What it shows: how far two workers are from twice one worker when each has the same CPU budget, that is, what the
multi-process mode costs: the kernel's spreading of connections over the workers (``SO_REUSEPORT``), the shared
model pages, the pod-wide metrics. What it cannot show: two workers each saturating a whole core (shared caches and
memory bandwidth, hyper-threaded siblings on a node); on a node, measure with the load generator off the node.
It also reports the memory of each pod: the proportional set size (PSS) of its processes, which counts each shared
page once, and their resident sizes. Needs root (it creates the cgroups). Not a test; nothing asserts on speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.loadgen import Wrk, cpu_seconds, drive, tool_version, wrk_binary
from bench.serve_bench import (
    CACHE,
    REPO,
    SETTLE_S,
    WARMUP_S,
    _cpu_name,
    _http_bodies,
    _http_path,
    _kernels_for_ours,
    _model_dir,
    _texts,
    terminate,
    wait_ready,
)
from model.errors import ExitCode
from tests.support import free_port

CELLS = [(protocol, c) for protocol in ("v1", "v2") for c in (8, 32)]
NAMES = {"v1": "V1 REST", "v2": "V2 REST"}
PERIOD_US = 100_000  # the kernel's default CFS period, as a pod's CPU limit gets
COST_S = 3.0  # the run per pod and cell that measures the pod's CPU per request


class BudgetUnavailable(RuntimeError):
    """No cgroup CPU controller this process may use."""


class CpuBudget:
    """A cgroup whose processes together get at most ``cores`` CPUs (a CFS quota), like a pod's CPU limit."""

    def __init__(self, name: str, cores: float) -> None:
        quota = round(cores * PERIOD_US)
        v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
        try:
            if (v1 / "cpu.cfs_quota_us").exists():
                self.path = v1 / name
                self.path.mkdir(exist_ok=True)
                (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (self.path / "cpu.cfs_quota_us").write_text(str(quota))
            elif "cpu" in (v2 / "cgroup.controllers").read_text().split():
                (v2 / "cgroup.subtree_control").write_text("+cpu")
                self.path = v2 / name
                self.path.mkdir(exist_ok=True)
                (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            else:
                raise BudgetUnavailable("the kernel offers no cgroup cpu controller")
        except OSError as e:
            raise BudgetUnavailable(f"cannot create a cgroup with a CPU quota ({e}); run as root") from e

    def add(self, pid: int) -> None:
        """Move process ``pid`` into the cgroup (the processes it forks later are born in it)."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        """The processes in the cgroup."""
        return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]

    def remove(self) -> None:
        """Delete the cgroup (once its processes have exited)."""
        deadline = time.monotonic() + 10
        while True:
            try:
                self.path.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # the last process is still being reaped; bounded by the deadline


@dataclass
class Pod:
    """One predictor (its parent process and workers) in its CPU budget."""

    name: str
    workers: int
    process: subprocess.Popen[bytes]
    budget: CpuBudget
    http_port: int

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the pod's processes alive now."""
        return sum(cpu_seconds(pid) or 0.0 for pid in self.budget.pids())

    def memory_mb(self) -> tuple[float, float]:
        """(PSS, RSS) of all the pod's processes, MB: PSS counts a page shared by n processes as 1/n of it."""
        pss = rss = 0
        for pid in self.budget.pids():
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            except OSError:
                continue
            fields = {line.split(":")[0]: int(line.split()[1]) for line in rollup[1:] if line.endswith("kB")}
            pss += fields.get("Pss", 0)
            rss += fields.get("Rss", 0)
        return pss / 1024, rss / 1024


def _start(name: str, workers: int, cores: float, model_dir: Path, log_dir: Path) -> Pod:
    budget = CpuBudget(f"ks-workers-bench-{name}", cores)
    http_port, grpc_port = free_port(), free_port()
    log = (log_dir / f"workers-{name}.log").open("wb")
    env = os.environ | {"KS_SERVE_EVENTS_DIR": "", "KS_SERVE_LOG_LEVEL": "WARNING", "KS_SERVE_JSON_LOGS": "true"}
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "--model-dir", str(model_dir), "--workers", str(workers),
         "--http_port", str(http_port), "--grpc_port", str(grpc_port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
    )
    budget.add(process.pid)  # before the model is loaded: the workers are forked after it
    wait_ready(name, process, http_port, log_dir / f"workers-{name}.log")
    return Pod(name, workers, process, budget, http_port)


def _stop(pod: Pod) -> None:
    terminate(pod.process)
    pod.budget.remove()


def benchmark(model_dir: Path, seconds: float, slice_s: float, worker_cpu: float, log_dir: Path,
              wrk: Path) -> dict[str, Any]:
    """Start both pods, run every cell with them taking turns; the results and the memory of each pod."""
    import tempfile

    pods: list[Pod] = []
    cells: list[dict[str, Any]] = []
    try:
        for workers in (1, 2):
            pods.append(_start(f"{workers}w", workers, worker_cpu * workers, model_dir, log_dir))
        memory_ready = {pod.name: pod.memory_mb() for pod in pods}
        texts = _texts()
        label = tool_version(wrk)
        with tempfile.TemporaryDirectory(prefix="ks-workers-bench-") as tmp:
            for protocol, c in CELLS:
                generator = Wrk(wrk, label, "0,1", _http_path(protocol), _http_bodies(protocol, texts, 1), c,
                                Path(tmp))
                tallies = drive(generator, [pod.http_port for pod in pods], seconds, slice_s, WARMUP_S, SETTLE_S)
                one, two = (tally.result(1, label) for tally in tallies)
                for pod, result in zip(pods, (one, two), strict=True):
                    result |= _cost(pod, generator)
                cells.append({"protocol": protocol, "c": c, "one": one, "two": two})
                print(f"{NAMES[protocol]} c={c:<3d} 1 worker {one['rps']:7.0f} req/s, 2 workers {two['rps']:7.0f} "
                      f"req/s: {two['rps'] / one['rps']:.2f}x (wrk CPU {one['client_cpu']:.2f} / "
                      f"{two['client_cpu']:.2f}; pod CPU {one['cores']:.2f} / {two['cores']:.2f} cores, "
                      f"{one['us_per_request']:.0f} / {two['us_per_request']:.0f} us per request; errors "
                      f"{one['errors']} / {two['errors']})", file=sys.stderr)
        memory_after = {pod.name: pod.memory_mb() for pod in pods}
    finally:
        for pod in pods:
            _stop(pod)
    return {"cells": cells, "memory_ready": memory_ready, "memory_after": memory_after}


def _cost(pod: Pod, generator: Wrk) -> dict[str, float]:
    """One more run of ``COST_S`` against ``pod`` alone: the CPU its processes used (cores) and per request (µs)."""
    before, started = pod.cpu_seconds(), time.perf_counter()
    turn = generator.turn(pod.http_port, COST_S, 0.0)
    used, wall = pod.cpu_seconds() - before, time.perf_counter() - started
    return {"cores": used / wall, "us_per_request": used / max(1, turn.requests) * 1e6}


def render(results: dict[str, Any], meta: dict[str, str]) -> str:
    """The markdown report."""
    lines = [
        f"Run {meta['date']} on {meta['machine']}; model: {meta['model']}; kernels: {meta['kernels']}; load "
        f"generator: {meta['wrk']} (one thread, not pinned). CPU budget (CFS quota): {meta['worker_cpu']} cores per "
        f"worker. {meta['duration']} s measured per pod and cell in turns of {meta['slice']} s. Load average when the "
        f"run started: {meta['load']}.",
        "",
        "| Cell | 1 worker, req/s (p50 / p99 ms) | 2 workers, req/s (p50 / p99 ms) | 2 workers / 1 | Pod CPU used, "
        "cores (1 / 2 workers) | Pod CPU per request, µs (1 / 2 workers) | wrk CPU (1 / 2 workers) | Errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in results["cells"]:
        one, two = cell["one"], cell["two"]
        lines.append(
            f"| {NAMES[cell['protocol']]}, c={cell['c']} | {one['rps']:,.0f} ({one['p50_ms']:.2f} / "
            f"{one['p99_ms']:.2f}) | {two['rps']:,.0f} ({two['p50_ms']:.2f} / {two['p99_ms']:.2f}) | "
            f"**{two['rps'] / one['rps']:.2f}x** | {one['cores']:.2f} / {two['cores']:.2f} | "
            f"{one['us_per_request']:.0f} / {two['us_per_request']:.0f} | {one['client_cpu']:.2f} / "
            f"{two['client_cpu']:.2f} | {one['errors'] + two['errors']} |")
    lines += ["", "| Memory of the pod, MB | 1 worker: PSS (RSS) | 2 workers: PSS (RSS) |", "|---|---:|---:|"]
    for when, key in (("ready", "memory_ready"), ("after the run", "memory_after")):
        one, two = results[key]["1w"], results[key]["2w"]
        lines.append(f"| {when} | {one[0]:.0f} ({one[1]:.0f}) | {two[0]:.0f} ({two[1]:.0f}) |")
    lines.append("")
    lines.append("Pod CPU: one more run of each pod alone per cell, the CPU seconds of its processes over the run's "
                 "wall time, and over the requests the run answered.")
    lines.append("")
    lines.append("PSS counts a page shared by n processes as 1/n of it (the pod's real footprint); RSS counts it "
                 "in every process, so the 2-worker RSS counts the model's shared pages three times (parent and "
                 "two workers).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 69 without wrk or a cgroup CPU controller."""
    parser = argparse.ArgumentParser(prog="python -m bench.workers_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds measured per pod and cell")
    parser.add_argument("--slice", type=float, default=0.5, help="seconds per turn of a pod within a cell")
    parser.add_argument("--worker_cpu", type=float, default=0.6, help="CPU cores of budget per worker")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    wrk = wrk_binary()
    if wrk is None:
        print("no wrk: apt-get install wrk", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    model_dir, model_name = _model_dir(None)
    log_dir = CACHE / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {_cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "model": model_name, "kernels": _kernels_for_ours(True), "wrk": tool_version(wrk),
        "worker_cpu": f"{args.worker_cpu:g}", "duration": f"{args.duration:g}", "slice": f"{args.slice:g}",
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    started = time.monotonic()
    try:
        results = benchmark(model_dir, args.duration, args.slice, args.worker_cpu, log_dir, wrk)
    except BudgetUnavailable as e:
        print(str(e), file=sys.stderr)
        return ExitCode.UNAVAILABLE
    report = render(results, meta)
    print(report)
    print(f"(benchmark took {time.monotonic() - started:.0f} s)", file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
