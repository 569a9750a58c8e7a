"""Which verdicts start a training Job, and what is reported when it cannot be created (the creation itself runs
against the real API server in tests/cluster/test_retrain.py)."""

from __future__ import annotations

import json
from pathlib import Path

from control.retrain import RetrainSettings, reasons, trigger


def test_only_the_verdicts_named_start_a_job() -> None:
    assert reasons(("quality",), "drift", "degraded") == ["quality"]
    assert reasons(("drift",), "drift", "degraded") == ["drift"]
    assert reasons(("drift", "quality"), "warn", "warn") == []
    assert reasons((), "drift", "degraded") == []
    assert reasons(("quality",), "ok", None) == []


def test_nothing_is_created_without_a_verdict_and_failures_are_reported(tmp_path: Path) -> None:
    settings = RetrainSettings(retrain_on=("quality",), retrain_job=tmp_path / "job.json",
                               service_account_dir=tmp_path)
    assert trigger(settings, "drift", "ok", "run", "")["outcome"] == "not_triggered"
    missing = trigger(settings, "ok", "degraded", "run", "why")
    assert missing["outcome"] == "failed" and "cannot prepare the training Job" in missing["message"]
    (tmp_path / "job.json").write_text(json.dumps({"metadata": {"name": "x-retrain"}}))
    (tmp_path / "token").write_text("t")
    (tmp_path / "namespace").write_text("ns")
    outside = trigger(settings.model_copy(update={"kubernetes_service_host": None}), "ok", "degraded", "run", "why")
    assert outside["outcome"] == "failed" and "no Kubernetes API" in outside["message"]
    unreachable = trigger(settings.model_copy(update={"kube_api_url": "https://127.0.0.1:9"}), "ok", "degraded",
                          "run", "why")
    assert unreachable["outcome"] == "failed" and "cannot reach the Kubernetes API" in unreachable["message"]


def test_in_cluster_api_url_from_the_service_variables() -> None:
    assert RetrainSettings(kubernetes_service_host="10.96.0.1").api_url() == "https://10.96.0.1:443"
    assert RetrainSettings(kubernetes_service_host="fd00::1", kubernetes_service_port="6443").api_url() == \
        "https://[fd00::1]:6443"
    assert RetrainSettings(kube_api_url="https://api:6443/").api_url() == "https://api:6443"
