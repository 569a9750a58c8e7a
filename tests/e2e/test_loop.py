"""The README's first command, end to end: ``kube-sentiment loop`` on the built-in corpus, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_local_loop_trains_gates_serves_ships_and_reports_no_drift(tmp_path: Path) -> None:
    """A fresh state dir: the first model is promoted, served, its held-out traffic logged and judged ok."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kube-sentiment"), "loop", "--state-dir", str(tmp_path),
         "--traffic", "900"],
        capture_output=True, text=True, timeout=900,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KS_LOOP_MLFLOW_PORT": "0"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)  # stdout holds the summary alone: `kube-sentiment loop | jq` works
    assert summary["training"]["decision"] == "promoted"
    assert summary["training"]["candidate_macro_f1"] >= 0.76
    assert sum(summary["traffic"].values()) == 900 and all(summary["traffic"].values())
    assert summary["drift_verdict"] in ("ok", "warn")
    assert summary["console"].startswith("http://127.0.0.1:")  # it answered /healthz while the loop ran
    assert summary["reopen_console"].split()[1] == "console"
    report = json.loads(Path(summary["drift_report_json"]).read_text())
    assert sum(group["n"] for group in report["groups"]) == 900  # every prediction reached the sink once
    html = Path(summary["drift_report_html"]).read_text()
    assert "<img" in html or "<svg" in html
