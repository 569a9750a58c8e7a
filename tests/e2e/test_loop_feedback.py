"""The loop closed by ground truth, end to end on real processes (``kube-sentiment loop --scenario feedback``: mlflow
server, predictor, shipper as processes; the drift job, the snapshot and training in the loop process): a topic
the first model never saw is served, labels come back through ``POST /v1/feedback``, live macro-F1 drops and is
reported with its interval, retraining with production data is triggered by that verdict, the gate promotes a
version better on the recent holdout and not worse on the frozen one, ``--rollout`` takes it through shadow and
canary steps to production, and the promoted version serves the topic better."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from serving.eventlog.parquet import FEEDBACK
from serving.eventlog.reader import read_window

pytestmark = pytest.mark.e2e
WIDE = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def test_feedback_scenario_retrains_on_degraded_live_quality_and_promotes_a_better_version(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kube-sentiment"), "loop", "--scenario", "feedback", "--state-dir",
         str(tmp_path), "--traffic", "2000", "--topic", "apple", "--label-share", "0.6", "--rollout"],
        capture_output=True, text=True, timeout=2400,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KS_LOOP_MLFLOW_PORT": "0"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)
    first = summary["first_training"]
    assert first["decision"] == "promoted" and first["version"] == "1"

    # 1. The topic's traffic, labelled back: live macro-F1 of version 1 drops, reported with its interval.
    phase1 = summary["phase1"]
    assert sum(phase1["traffic"].values()) == 2000 and all(phase1["traffic"].values())
    assert 1000 <= phase1["labels"] <= 1400  # about 60 % of 2000
    live = phase1["live_quality"]
    assert live["labelled"] == phase1["labels"] and live["predictions"] == 2000
    assert live["holdout_macro_f1"] == pytest.approx(first["candidate_macro_f1"], abs=1e-4)
    assert live["ci_low"] < live["macro_f1"] < live["ci_high"] and live["ci_high"] - live["ci_low"] < 0.15
    assert live["delta"] < -0.1 and live["delta_ci_high"] < -0.05
    assert live["verdict"] == phase1["quality_verdict"] == "degraded"
    html = Path(phase1["report_html"]).read_text()
    assert "Live quality" in html and "Confusion matrix, version 1" in html

    # 2. That verdict triggers retraining with the production data: every label joined to its logged text.
    retrain = summary["retrain"]
    assert retrain["triggered_by"] == ["quality"]
    assert retrain["snapshot_rows"] == phase1["labels"] and retrain["snapshot_join"]["unmatched"] == 0

    # 3. The gate promotes a version better on the recent holdout and not worse (beyond the tolerance) on the
    # frozen one, scoring candidate and production on both.
    second = retrain["training"]
    assert second["decision"] == "promoted" and second["version"] == "2", second["reason"]
    assert second["candidate_recent_macro_f1"] > second["production_recent_macro_f1"] + 0.02
    assert second["candidate_macro_f1"] >= second["production_macro_f1"] - 0.005
    assert "gains on the recent holdout and holds the frozen one" in second["reason"]
    assert retrain["served_version"] == "2"

    # 4. The promoted version is rolled out the way `rollout run` does it: every step analysed, then promoted.
    rollout = summary["rollout"]
    assert rollout["result"] == "promoted" and rollout["candidate_version"] == "2", rollout["reason"]
    assert rollout["revisions"] == ["install", "shadow 2 at 100 %", "canary 2 at 5 %", "canary 2 at 25 %",
                                    "canary 2 at 50 %", "promote 2"]
    advanced = [d["step"] for d in rollout["decisions"] if d["decision"] == "advance"]
    assert advanced == ["shadow 100%", "canary 5%", "canary 25%", "canary 50%"], rollout["decisions"]

    # 5. Deployed, version 2 serves the rest of the topic better than version 1 did.
    phase2 = summary["phase2"]
    assert phase2["served_version"] == "2" and phase2["live_quality"]["labelled"] >= 400
    assert phase2["live_quality"]["macro_f1"] > live["macro_f1"] + 0.03
    labels = read_window(str(tmp_path / "predictions"), *WIDE, event_log=FEEDBACK)
    assert labels.table.num_rows == phase1["labels"] + phase2["labels"] and labels.duplicates == 0
