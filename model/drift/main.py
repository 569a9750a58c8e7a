"""The drift job behind ``kube-sentiment drift``: read the window, judge each group, write and publish reports.

Exit codes: 0 no drift (warnings included), 3 drift in at least one group, 4 insufficient data (no group had
enough records), 1 error (bad settings, unreadable source, missing reference).
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

from model.drift.settings import DriftSettings
from model.errors import KubeSentimentError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_DRIFT, EXIT_INSUFFICIENT = 0, 1, 3, 4


@dataclass(frozen=True)
class DriftOutcome:
    """What a run produced."""

    exit_code: int
    verdict: str
    report: dict[str, Any]
    report_dir: Path
    json_path: Path
    html_path: Path


def overall(verdicts: Sequence[str]) -> tuple[str, int]:
    """The run's verdict and exit code from its groups' verdicts (drift > error > ok/warn > insufficient)."""
    if "drift" in verdicts:
        return "drift", EXIT_DRIFT
    if "error" in verdicts:
        return "error", EXIT_ERROR
    if "warn" in verdicts:
        return "warn", EXIT_OK
    if "ok" in verdicts:
        return "ok", EXIT_OK
    return "insufficient_data", EXIT_INSUFFICIENT


def run(settings: DriftSettings, now: datetime | None = None) -> DriftOutcome:
    """One drift run. Errors reading the source or a reference raise ``KubeSentimentError`` (exit 1)."""
    from model.drift import report as reporting
    from model.drift.publish import log_to_mlflow, metrics_registry, publish_metrics
    from model.drift.reference import ReferenceStore
    from model.drift.signals import ERROR, GroupResult, evaluate_group
    from model.drift.window import group_indices, read_window

    started = time.perf_counter()
    start, end = settings.window_bounds(now)
    window = read_window(settings.source, start, end, settings.environment, settings.s3_endpoint_url,
                         settings.s3_region)
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
        "exit_code": exit_code,
        "records": window.table.num_rows,
        "duplicates_dropped": window.duplicates,
        "files": window.files,
        "seconds": None,
        "settings": {"min_samples": settings.min_samples, "thresholds": settings.thresholds.model_dump(),
                     "text_sample_size": settings.text_sample_size,
                     "domain_sample_size": settings.domain_sample_size},
        "groups": [reporting.group_dict(g) for g in groups],
    }
    report["seconds"] = round(time.perf_counter() - started, 3)
    json_path = reporting.write_json(report, report_dir / "report.json")
    html_path = report_dir / "report.html"
    html_path.write_text(reporting.render_html(report, groups))
    registry = metrics_registry(groups, exit_code, window.table.num_rows, time.time())
    publish_metrics(registry, report_dir / "metrics.prom", settings.pushgateway_url, settings.pushgateway_job,
                    {"environment": settings.environment or "all"})
    if settings.log_to_mlflow:
        if settings.tracking_uri and settings.reference_dir is None:
            runs = log_to_mlflow(settings.tracking_uri, settings.registered_model, groups, report_dir, run_id,
                                 int(generated.timestamp() * 1000))
            log.info("logged drift to MLflow run(s) %s", runs)
        else:
            log.warning("log_to_mlflow needs MLflow references (tracking_uri without reference_dir); skipped")
    log.info("drift %s: report %s", verdict, html_path, extra={"verdict": verdict, "exit_code": exit_code})
    return DriftOutcome(exit_code, verdict, report, report_dir, json_path, html_path)


def build_parser() -> argparse.ArgumentParser:
    """Flags for the most-used settings; every setting is also read from ``KS_DRIFT_<NAME>``."""
    parser = argparse.ArgumentParser(prog="kube-sentiment drift", description="Compare a window of logged "
                                     "predictions with the training reference profile.")
    parser.add_argument("--source", help="sink directory or s3://bucket/prefix (KS_DRIFT_SOURCE)")
    parser.add_argument("--s3-endpoint-url", help="S3-compatible endpoint (KS_DRIFT_S3_ENDPOINT_URL)")
    parser.add_argument("--window", help="window length ending now, e.g. 24h (KS_DRIFT_WINDOW)")
    parser.add_argument("--start", help="explicit window start, ISO 8601 (KS_DRIFT_START)")
    parser.add_argument("--end", help="window end, ISO 8601 (KS_DRIFT_END)")
    parser.add_argument("--environment", help="only this environment (KS_DRIFT_ENVIRONMENT)")
    parser.add_argument("--reference-dir", type=Path, help="local model directory (KS_DRIFT_REFERENCE_DIR)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (KS_DRIFT_TRACKING_URI / MLFLOW_TRACKING_URI)")
    parser.add_argument("--registered-model", help="registered model name (KS_DRIFT_REGISTERED_MODEL)")
    parser.add_argument("--min-samples", type=int, help="fewest records per group (KS_DRIFT_MIN_SAMPLES)")
    parser.add_argument("--output-dir", type=Path, help="report directory (KS_DRIFT_OUTPUT_DIR)")
    parser.add_argument("--pushgateway-url", help="Prometheus Pushgateway (KS_DRIFT_PUSHGATEWAY_URL)")
    parser.add_argument("--log-to-mlflow", action="store_true", default=None,
                        help="log to the model version's run (KS_DRIFT_LOG_TO_MLFLOW)")
    parser.add_argument("--log-level", help="root log level (KS_DRIFT_LOG_LEVEL)")
    return parser


def settings_from_args(argv: Sequence[str] | None = None) -> DriftSettings:
    """``DriftSettings`` from env vars, overridden by the flags given in ``argv``."""
    args = build_parser().parse_args(argv)
    return DriftSettings(**{k: v for k, v in vars(args).items() if v is not None})


def execute(settings: DriftSettings) -> int:
    """Configure logging, run, print where the report is; return the exit code (1 on a project error)."""
    from model.logs import configure_logging

    configure_logging(settings.log_level, settings.json_logs)
    try:
        outcome = run(settings)
    except (KubeSentimentError, ValueError) as e:
        log.error("drift job failed: %s", e)
        return EXIT_ERROR
    print(f"drift verdict: {outcome.verdict} (exit {outcome.exit_code}); report: {outcome.html_path}")
    return outcome.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """``kube-sentiment drift [flags]``: returns the exit code (0 ok, 3 drift, 4 insufficient data, 1 error)."""
    try:
        settings = settings_from_args(argv)
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        logging.getLogger(__name__).error("invalid drift settings: %s", e)
        print(f"invalid drift settings: {e}")
        return EXIT_ERROR
    return execute(settings)
