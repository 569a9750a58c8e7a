"""bench/serve_bench.py's choice of load generator and its report (nothing started, nothing measured)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import serve_bench
from bench.serve_bench import PROTOCOLS, LoadGen, choose_loadgens, render
from model.errors import ExitCode


@pytest.fixture
def no_native_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no wrk, no ghz on PATH
    monkeypatch.setenv("KS_TOOLS_BIN", str(tmp_path))  # and no built ghz


@pytest.mark.usefixtures("no_native_tools")
def test_missing_tools_fall_back_to_the_python_client_and_say_how_to_get_them() -> None:
    loadgens, missing = choose_loadgens("auto")
    assert {p: g.label for p, g in loadgens.items()} == dict.fromkeys(PROTOCOLS, "python (fallback)")
    assert all(g.binary is None for g in loadgens.values())
    assert missing == ["wrk (HTTP): apt-get install wrk", "ghz (gRPC): scripts/build-tools.sh ghz"]


@pytest.mark.usefixtures("no_native_tools")
def test_loadgen_native_refuses_to_fall_back(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_bench.main(["--loadgen", "native"]) == ExitCode.UNAVAILABLE
    assert "apt-get install wrk" in capsys.readouterr().err


def test_loadgen_python_is_not_called_a_fallback() -> None:
    loadgens, missing = choose_loadgens("python")
    assert loadgens == dict.fromkeys(PROTOCOLS, LoadGen("python")) and missing == []


def _cell(server: str, protocol: str, c: int, per: int, rps: float, loadgen: str, cpu: float | None) -> dict[str, Any]:
    return {"server": server, "protocol": protocol, "c": c, "per_request": per, "requests": int(rps * 6),
            "errors": 0, "seconds": 6.0, "rps": rps, "texts_per_s": rps * per, "p50_ms": 2.0, "p99_ms": 3.0,
            "p99_over_p50_typical_turn": 1.4, "loadgen": loadgen, "client_cpu": cpu}


def test_report_names_the_load_generator_and_its_cpu() -> None:
    cells = []
    for protocol, loadgen in (("v1", "wrk 4.1.0-3+b2"), ("v2", "wrk 4.1.0-3+b2"), ("grpc", "python (fallback)")):
        cpu = 0.97 if loadgen.startswith("python") else 0.31
        for c in (8, 32):
            cells += [_cell(s, protocol, c, 1, rps, loadgen, cpu)
                      for s, rps in (("noop", 4000), ("baseline", 400), ("ours", 4200))]
            if c == 32:
                cells += [_cell(s, protocol, c, 1, 4100, loadgen, cpu) for s in ("ours+events", "ours+mirror")]
        cells += [_cell(s, protocol, 8, 64, rps, loadgen, None) for s, rps in
                  (("baseline", 40), ("ours", 400), ("ours+mirror", 390))]
    results = {"cells": cells, "rss": {"noop": 250.0, "ours": 400.0}, "rss_after": {"noop": 240.0, "ours": 310.0},
               "emitter_us_per_event": 7.0, "mirror_us_per_copy": 5.0, "mirror_copies_per_send": 40}
    meta = {"date": "2026-12-02 05:10 UTC", "machine": "test", "duration": "6", "slice": "0.5", "load": "0.1",
            "model": "the production model", "loadgens": "V1 REST: wrk 4.1.0-3+b2; V2 gRPC: python (fallback)"}
    report = render(results, meta)
    rows = [line for line in report.splitlines() if line.startswith("| V")]
    assert rows[0].endswith("| wrk 4.1.0-3+b2 | 31% / 31% / 31% |")
    assert rows[5].endswith("| python (fallback) | 97% / 97% / 97% |")  # V2 gRPC c=32
    assert rows[8].endswith("| python (fallback) | - / - |")  # the 64-text table, CPU not measured
    assert "Load generators: V1 REST: wrk 4.1.0-3+b2; V2 gRPC: python (fallback)." in report
    saturated = next(line for line in report.splitlines() if line.startswith("Load generator at 90%"))
    assert "noop V2 gRPC c=8 x1 (97%)" in saturated and "V1 REST" not in saturated
    assert "after the whole run, MB (in brackets its peak, " in report and ": noop 240 (250), ours 310 (400)." in report


def test_startup_table_gives_median_and_range_and_says_why_a_row_is_missing() -> None:
    startup = {"starts": {"baseline": [(1.5, 270.0), (1.1, 268.0), (1.3, 275.0)],
                          "ours, numba, empty cache": [(6.0, 450.0), (5.0, 455.0), (7.0, 452.0)]},
               "aot_missing": "no ahead-of-time build (No module named 'serving._kernels_aot')",
               "downloads": [0.31, 0.25, 0.4], "model_uri": "models:/sentiment/1"}
    lines = serve_bench.render_startup(startup)
    assert "3 starts of each" in lines[0] and "the `models:/sentiment/1` row, which resolves" in lines[0]
    assert any(line.startswith("Resolving and downloading `models:/sentiment/1` alone") and
               line.endswith(": 0.31 s median (0.25-0.40).") for line in lines)
    assert "| baseline | 1.30 (1.10-1.50) | 270 (268-275) |" in lines
    assert "| ours, numba, empty cache | 6.00 (5.00-7.00) | 452 (450-455) |" in lines
    assert lines[-1] == ("No ahead-of-time row: no ahead-of-time build (No module named 'serving._kernels_aot') "
                         "(python -m serving.aot builds it).")


def test_the_no_op_server_imports_no_scikit_learn(tmp_path: Path) -> None:
    """The no-op is KServe's ceiling, start-up included: it must not pay for importing scikit-learn (and SciPy),
    which only the baseline needs."""
    import subprocess
    import sys

    probe = (
        "import sys; from pathlib import Path; from bench.serve_bench import _comparison_model; "
        f"m = _comparison_model('noop', Path({str(tmp_path)!r})); m.load(); "
        "print(m.ready, sorted(n for n in ('sklearn', 'scipy', 'serving.loader') if n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split("\n")[-2] == "True []", out.stdout + out.stderr
