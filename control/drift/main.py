"""The drift job behind ``kube-sentiment drift``: read the window, judge each group, write and publish reports.

With live quality on (the default), the window's feedback is joined to its predictions and each group's live
macro-F1 judged (:mod:`control.quality`); a ``degraded`` group makes the run exit 3 like drift. With ``retrain_on``
set, a drift or degraded-quality verdict creates a training Job (:mod:`control.retrain`).

Exit codes (:class:`model.errors.ExitCode`): 0 no drift (warnings included), 3 drift in at least one group or live
quality degraded, 4 insufficient data (no group had enough records), 66 a group's reference could not be loaded
(and no group drifted), 65 unreadable prediction logs, 69 object store unreachable, 78 bad settings, 1 other error.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from control.drift.settings import DriftSettings
from model.errors import ExitCode, KubeSentimentError
from model.process import Outcome, run_process, settings_parser

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftOutcome:
    """What a run produced."""

    exit_code: ExitCode
    verdict: str
    quality_verdict: str | None
    report: dict[str, Any]
    report_dir: Path
    json_path: Path
    html_path: Path


def overall(verdicts: Sequence[str]) -> tuple[str, ExitCode]:
    """The run's verdict and exit code from its groups' verdicts (drift > error > ok/warn > insufficient); a
    group's ``error`` is a reference that could not be loaded (66)."""
    if "drift" in verdicts:
        return "drift", ExitCode.DRIFT
    if "error" in verdicts:
        return "error", ExitCode.NO_INPUT
    if "warn" in verdicts:
        return "warn", ExitCode.OK
    if "ok" in verdicts:
        return "ok", ExitCode.OK
    return "insufficient_data", ExitCode.INSUFFICIENT_DATA


def run(settings: DriftSettings, now: datetime | None = None) -> DriftOutcome:
    """One drift run. An unreadable source or a missing reference configuration raises ``KubeSentimentError``."""
    from control.drift import report as reporting
    from control.drift.publish import log_to_mlflow, metrics_registry, publish_metrics
    from control.drift.reference import ReferenceStore
    from control.drift.signals import ERROR, GroupResult, evaluate_group
    from control.drift.window import group_indices, read

    started = time.perf_counter()
    start, end = settings.window_bounds(now)
    window = read(settings, start, end)
    store = ReferenceStore(settings.reference_dir, settings.tracking_uri, settings.registered_model)
    groups: list[GroupResult] = []
    for (version, track), rows in sorted(group_indices(window.table).items()):
        table = window.table.take(pa.array(rows))
        try:
            reference = store.get(version)
        except KubeSentimentError as e:
            log.error("model version %s: %s", version, e)
            groups.append(GroupResult(version, track, table.num_rows, ERROR, [], {}, error=str(e)))
            continue
        result = evaluate_group(table, reference, settings, version, track)
        log.info("model version %s / %s: %s (%d records)", version, track, result.verdict, result.n,
                 extra={"model_version": version, "track": track, "verdict": result.verdict, "records": result.n})
        groups.append(result)
    verdict, exit_code = overall([g.verdict for g in groups])
    quality = None
    if settings.live_quality.quality:
        from control.quality import report as quality_report

        def known(version: str) -> tuple[tuple[str, ...], float | None] | None:
            try:
                ref = store.get(version)
            except KubeSentimentError:
                return None
            return ref.classes, ref.holdout_macro_f1

        quality = quality_report.evaluate(settings.live_quality, window.table, settings.source, start, end,
                                          environment=settings.environment, reference=known, seed=settings.seed,
                                          endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
        if quality.verdict == "degraded":
            exit_code = ExitCode.DRIFT
    generated = now or datetime.now(UTC)
    run_id = generated.strftime("%Y%m%dT%H%M%SZ")
    report_dir = settings.output_dir / run_id
    report_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "schema": reporting.SCHEMA,
        "run_id": run_id,
        "generated_at": generated.isoformat(),
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "source": settings.source,
        "environment": settings.environment,
        "verdict": verdict,
        "exit_code": int(exit_code),
        "records": window.table.num_rows,
        "duplicates_dropped": window.duplicates,
        "files": window.files,
        "seconds": None,
        "settings": {"min_samples": settings.min_samples, "thresholds": settings.thresholds.model_dump(),
                     "text_sample_size": settings.text_sample_size,
                     "domain_sample_size": settings.domain_sample_size},
        "groups": [reporting.group_dict(g) for g in groups],
        "next_steps": reporting.run_next_steps(verdict, groups),
        "quality": None if quality is None else quality.as_dict(),
        "retrain": None,
    }
    if settings.retrain.retrain_on:
        from control.retrain import trigger

        report["retrain"] = trigger(settings.retrain, verdict, None if quality is None else quality.verdict, run_id,
                                    _why(groups, quality))
    report["seconds"] = round(time.perf_counter() - started, 3)
    json_path = reporting.write_json(report, report_dir / "report.json")
    html_path = report_dir / "report.html"
    sections = [] if quality is None else [quality_report.render_html(quality)]
    html_path.write_text(reporting.render_html(report, groups, sections))
    registry = metrics_registry(groups, exit_code, window.table.num_rows, time.time())
    if quality is not None:
        quality_report.add_metrics(registry, quality)
    publish_metrics(registry, report_dir / "metrics.prom", settings.pushgateway_url, settings.pushgateway_job,
                    {"environment": settings.environment or "all"})
    if settings.log_to_mlflow:
        if settings.tracking_uri and settings.reference_dir is None:
            runs = log_to_mlflow(settings.tracking_uri, settings.registered_model, groups, report_dir, run_id,
                                 int(generated.timestamp() * 1000))
            log.info("logged drift to MLflow run(s) %s", runs)
            if quality is not None:
                from mlflow.tracking import MlflowClient

                client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
                run_ids = {g.model_version: str(g.reference["run_id"]) for g in groups if g.reference.get("run_id")}
                quality_report.log_to_mlflow(client, settings.registered_model, quality, run_ids,
                                             int(generated.timestamp() * 1000))
        else:
            log.warning("log_to_mlflow needs MLflow references (tracking_uri without reference_dir); skipped")
    quality_verdict = None if quality is None else quality.verdict
    log.info("drift %s, live quality %s: report %s", verdict, quality_verdict or "off", html_path,
             extra={"verdict": verdict, "quality_verdict": quality_verdict, "exit_code": exit_code})
    return DriftOutcome(exit_code, verdict, quality_verdict, report, report_dir, json_path, html_path)


def _why(groups: Sequence[Any], quality: Any) -> str:
    """One line naming what drifted or degraded (the created Job's reason annotation)."""
    parts = [f"drift: version {g.model_version} {g.track}" for g in groups if g.verdict == "drift"]
    if quality is not None:
        parts += [f"quality degraded: version {q.model_version} {q.track} macro-F1 {q.macro_f1:.4f} "
                  f"[{q.ci_low:.4f}, {q.ci_high:.4f}] vs holdout {q.holdout_macro_f1:.4f}"
                  for q in quality.groups if q.verdict == "degraded"]
    return "; ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``kube-sentiment drift``: one per :class:`~control.drift.settings.DriftSettings` field."""
    return settings_parser(
        DriftSettings,
        prog="kube-sentiment drift",
        description="Compare a window of logged predictions with the training reference profile; write the JSON "
        "and HTML reports and print a JSON summary. Exit codes: 0 no drift, 3 drift, 4 insufficient data, 65 "
        "unreadable prediction logs, 66 a reference could not be loaded, 69 object store unreachable, 78 bad "
        "configuration, 1 other error.",
    )


def _drift(settings: DriftSettings, _: argparse.Namespace) -> Outcome:
    outcome = run(settings)
    return Outcome(outcome.exit_code, {"verdict": outcome.verdict, "quality_verdict": outcome.quality_verdict,
                                       "exit_code": outcome.exit_code,
                                       "records": outcome.report["records"],
                                       "report_html": str(outcome.html_path), "report_json": str(outcome.json_path)})


def main(argv: Sequence[str] | None = None) -> int:
    """``kube-sentiment drift [flags]``: returns the exit code."""
    return run_process(DriftSettings, argv, _drift, parser=build_parser())
