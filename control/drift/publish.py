"""Publishing a drift run: Prometheus metrics (text file always, Pushgateway when configured) and MLflow."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from control.drift.signals import VERDICT_RANK, GroupResult

log = logging.getLogger(__name__)
VERDICT_VALUE = {**VERDICT_RANK, "error": -2}


def metrics_registry(groups: list[GroupResult], exit_code: int, records: int, finished_at: float) -> CollectorRegistry:
    """A registry of its own holding the run's gauges."""
    registry = CollectorRegistry()
    labels = ["model_version", "track"]
    value = Gauge("ks_drift_signal_value", "Effect size of a drift signal.", [*labels, "signal"], registry=registry)
    p_adj = Gauge("ks_drift_signal_p_value_adjusted", "Corrected p-value of a drift signal.", [*labels, "signal"],
                  registry=registry)
    s_verdict = Gauge("ks_drift_signal_verdict", "Verdict of a signal: -1 insufficient data, 0 ok, 1 warn, 2 drift.",
                      [*labels, "signal"], registry=registry)
    g_verdict = Gauge("ks_drift_group_verdict", "Verdict of a group: -2 error, -1 insufficient, 0 ok, 1 warn, "
                      "2 drift.", labels, registry=registry)
    g_records = Gauge("ks_drift_group_records", "Records of the group in the window.", labels, registry=registry)
    Gauge("ks_drift_records", "Records in the window.", registry=registry).set(records)
    Gauge("ks_drift_exit_code", "Exit code of the run (0 ok, 3 drift, 4 insufficient data, 66 a reference "
          "could not be loaded).",
          registry=registry).set(exit_code)
    Gauge("ks_drift_last_run_timestamp_seconds", "Unix time the run finished.", registry=registry).set(finished_at)
    for g in groups:
        g_verdict.labels(g.model_version, g.track).set(VERDICT_VALUE.get(g.verdict, -2))
        g_records.labels(g.model_version, g.track).set(g.n)
        for s in g.signals:
            key = (g.model_version, g.track, s.name)
            if s.value is not None:
                value.labels(*key).set(s.value)
            if s.p_value_adjusted is not None:
                p_adj.labels(*key).set(s.p_value_adjusted)
            s_verdict.labels(*key).set(VERDICT_VALUE.get(s.verdict, -1))
    return registry


def publish_metrics(registry: CollectorRegistry, path: Path, pushgateway_url: str | None, job: str,
                    grouping: dict[str, str]) -> None:
    """Write ``metrics.prom`` and push to the Pushgateway when one is configured."""
    write_to_textfile(str(path), registry)
    if pushgateway_url:
        push_to_gateway(pushgateway_url, job=job, registry=registry, grouping_key=grouping, timeout=10)
        log.info("pushed metrics to %s", pushgateway_url)


def log_to_mlflow(tracking_uri: str, registered_model: str, groups: list[GroupResult], report_dir: Path,
                  run_name: str, timestamp_ms: int) -> list[str]:
    """Log each group's signal values and the reports to the run behind its model version; tag the version.

    Returns the run ids logged to.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    done: list[str] = []
    for g in groups:
        run_id = g.reference.get("run_id")
        if not run_id:
            continue
        metrics: dict[str, Any] = {f"drift.{g.track}.records": g.n}
        for s in g.signals:
            if s.value is not None:
                metrics[f"drift.{g.track}.{s.name}"] = s.value
        for key, val in metrics.items():
            client.log_metric(run_id, key, float(val), timestamp=timestamp_ms)
        if run_id not in done:
            client.log_artifacts(run_id, str(report_dir), f"drift/{run_name}")
            done.append(run_id)
        client.set_model_version_tag(registered_model, g.model_version, f"drift.{g.track}.verdict", g.verdict)
        client.set_model_version_tag(registered_model, g.model_version, f"drift.{g.track}.report",
                                     f"drift/{run_name}/report.html")
    return done
