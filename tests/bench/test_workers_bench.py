"""bench/workers_bench.py: its CPU budget (a real cgroup when this process may create one) and its report."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench.workers_bench import PERIOD_US, BudgetUnavailable, CpuBudget, render


def _result(rps: float, cores: float, us: float) -> dict[str, float]:
    return {"rps": rps, "p50_ms": 2.0, "p99_ms": 40.0, "client_cpu": 0.1, "errors": 0, "cores": cores,
            "us_per_request": us}


def test_the_report_gives_the_ratio_the_cpu_each_pod_used_and_its_memory() -> None:
    cells = [{"protocol": "v1", "c": 8, "one": _result(1500, 0.6, 400), "two": _result(2850, 1.2, 420)},
             {"protocol": "v2", "c": 32, "one": _result(1200, 0.6, 500), "two": _result(2400, 1.2, 500)}]
    results = {"cells": cells, "memory_ready": {"1w": (239.0, 297.0), "2w": (291.0, 717.0)},
               "memory_after": {"1w": (245.0, 303.0), "2w": (373.0, 727.0)}}
    meta = {"date": "2026-12-02 23:48 UTC", "machine": "test", "model": "the production model", "kernels": "aot",
            "wrk": "wrk 4.1.0", "worker_cpu": "0.6", "duration": "6", "slice": "0.5", "load": "0.1"}
    report = render(results, meta)
    rows = [line for line in report.splitlines() if line.startswith("| V")]
    assert rows[0] == ("| V1 REST, c=8 | 1,500 (2.00 / 40.00) | 2,850 (2.00 / 40.00) | **1.90x** | 0.60 / 1.20 | "
                       "400 / 420 | 0.10 / 0.10 | 0 |")
    assert rows[1].startswith("| V2 REST, c=32 |") and "**2.00x**" in rows[1]
    assert "| ready | 239 (297) | 291 (717) |" in report and "| after the run | 245 (303) | 373 (727) |" in report
    assert "CPU budget (CFS quota): 0.6 cores per worker." in report


def test_a_budget_is_a_cgroup_with_that_quota_holding_the_processes_put_in_it() -> None:
    try:
        budget = CpuBudget(f"ks-test-{uuid.uuid4().hex[:8]}", 0.6)
    except BudgetUnavailable as e:
        pytest.skip(f"no cgroup CPU controller here: {e}")
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        quota = budget.path / "cpu.cfs_quota_us"
        if quota.exists():
            assert int(quota.read_text()) == 0.6 * PERIOD_US
        else:
            assert (budget.path / "cpu.max").read_text().split() == [str(int(0.6 * PERIOD_US)), str(PERIOD_US)]
        budget.add(child.pid)
        assert budget.pids() == [child.pid]
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
        budget.remove()
    assert not Path(budget.path).exists()
