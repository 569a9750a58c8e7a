"""``kube-sentiment rollout analyze``: one decision for one environment and window, from data.

Reads the window's predictions of the stable track and of the candidate (``canary`` or ``shadow``), the serving
metrics (Prometheus when ``--prometheus-url`` is given; else only the logs) and live labels where the sink has
them, runs the checks of :mod:`control.rollout.checks` with the thresholds of the policy, and prints the result as
JSON on stdout, a table on stderr (a log record in JSON-log mode). Exit codes: 0 advance, 3 roll back, 4 not enough
data yet (hold), 65 unreadable logs, 69 a source unreachable, 78 bad settings or policy, 1 other error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from control.rollout.checks import Decision, decide
from control.rollout.policy import Analysis, RolloutPolicy, load_policy
from control.rollout.sources import Gathered, Inputs, LogSource, Prometheus, Selection, gather
from control.window import Duration, WindowSettings
from model.logs import json_wanted
from model.process import Outcome, SettingsGroup, run_process, settings_parser

log = logging.getLogger(__name__)

#: Largest summary written to ``--summary-file`` (a Kubernetes termination message holds 4096 bytes).
SUMMARY_LIMIT = 4096


class AnalysisSources(SettingsGroup):
    """Where an analysis reads from (shared by ``rollout analyze`` and ``rollout run``)."""

    model_config = SettingsConfigDict(env_prefix="KS_ROLLOUT_")

    source: str = ".kube-sentiment/predictions"
    """The shipper's sink: a local directory, or ``s3://bucket/prefix``."""
    s3_endpoint_url: str | None = None
    """S3-compatible endpoint for an ``s3://`` source (credentials from the standard AWS variables)."""
    s3_region: str = "us-east-1"
    """Region of the ``s3://`` source."""
    prometheus_url: str | None = None
    """Prometheus server (HTTP query API) with the predictors' metrics; without it the error-rate check is not
    available and latency comes from the logs."""
    prometheus_selector: str = ""
    """Extra label matchers for every Prometheus query, e.g. ``namespace="production"``."""
    model_name: str = "sentiment"
    """Name the model is served under (the ``model_name`` of events and metrics)."""

    def inputs(self) -> Inputs:
        """The sources as objects."""
        prometheus = Prometheus(self.prometheus_url, self.prometheus_selector) if self.prometheus_url else None
        return Inputs(LogSource(self.source, self.s3_endpoint_url, self.s3_region), prometheus)


class AnalyzeSettings(WindowSettings):
    """Everything ``kube-sentiment rollout analyze`` needs (env ``KS_ROLLOUT_*``)."""

    model_config = SettingsConfigDict(env_prefix="KS_ROLLOUT_")

    environment: str | None = None
    """Only predictions of this environment (default: all in the source)."""
    track: Literal["canary", "shadow"] = "canary"
    """How the candidate runs: ``canary`` (answers a share of the requests) or ``shadow`` (gets copies)."""
    stable_version: str | None = None
    """Model version of the stable track (default: the one the window shows on it)."""
    candidate_version: str | None = None
    """Model version of the candidate (default: the one the window shows on its track)."""
    window: Duration = "10m"
    """Length of the window ending at ``end`` (``30s``, ``10m``, ``1h``); ignored when ``start`` is given."""
    policy_file: Path | None = None
    """YAML/JSON with the thresholds: the chart's values (its ``rollout`` key) or that block alone (default: the
    chart's defaults)."""
    sources: AnalysisSources = Field(default_factory=AnalysisSources)
    """Where the analysis reads from."""
    summary_file: Path | None = None
    """Also write a compact JSON summary here (at most 4096 bytes: a Job's ``/dev/termination-log``)."""


def analyze(inputs: Inputs, selection: Selection, policy: Analysis) -> tuple[Decision, dict[str, Any]]:
    """Gather and decide; return the decision and the JSON result."""
    gathered = gather(inputs, selection)
    decision = decide(gathered.data, policy)
    return decision, result_json(decision, gathered, selection, policy)


def result_json(decision: Decision, gathered: Gathered, selection: Selection, policy: Analysis) -> dict[str, Any]:
    """The JSON result of one analysis (docs/deploy.md describes it)."""
    return {
        "decision": decision.decision,
        "exit_code": int(decision.exit_code),
        "reason": decision.reason,
        "environment": selection.environment,
        "model_name": selection.model_name,
        "track": selection.track,
        "stable_version": gathered.stable_version,
        "candidate_version": gathered.candidate_version,
        "window": {"start": selection.start.isoformat(), "end": selection.end.isoformat()},
        "sources": gathered.sources,
        "checks": [c.as_dict() for c in decision.checks],
        "policy": policy.model_dump(by_alias=True),
    }


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def render_table(result: dict[str, Any]) -> str:
    """The human-readable table of one analysis."""
    head = (f"rollout analysis: {result['track']} {result['candidate_version']} vs stable {result['stable_version']}"
            f" ({result['environment'] or 'all environments'}, {result['window']['start']} .. "
            f"{result['window']['end']})")
    rows = [("check", "status", "value", "threshold", "p (adj.)", "samples")]
    for c in result["checks"]:
        rule = f"{'<=' if c['direction'] == 'max' else '>='} {c['threshold']:g}"
        p = _number(c["p_value_adjusted"] if c["p_value_adjusted"] is not None else c["p_value"], 2)
        samples = " / ".join(f"{k} {v}" for k, v in c["n"].items()) or "-"
        rows.append((c["name"], c["status"], _number(c["value"]), rule, p, samples))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [head, *("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)]
    lines.append(f"decision: {result['decision'].upper()} (exit {result['exit_code']}): {result['reason']}")
    return "\n".join(lines)


def summary(result: dict[str, Any]) -> str:
    """A compact JSON of the result within :data:`SUMMARY_LIMIT` bytes (details dropped first)."""
    keep = ("name", "status", "value", "threshold", "p_value_adjusted", "n")
    short = {k: result[k] for k in ("decision", "exit_code", "reason", "stable_version", "candidate_version",
                                    "track")}
    short["checks"] = [{k: c[k] for k in keep} for c in result["checks"]]
    text = json.dumps(short, separators=(",", ":"), default=str)
    if len(text.encode()) > SUMMARY_LIMIT:
        short["reason"] = short["reason"][:300]
        short["checks"] = [{k: c[k] for k in ("name", "status", "value")} for c in short["checks"]]
        text = json.dumps(short, separators=(",", ":"), default=str)
    return text


def show(result: dict[str, Any], json_logs: bool | None) -> None:
    """The table on stderr, or one log record carrying it in JSON-log mode (nothing else on that stream)."""
    table = render_table(result)
    if json_wanted(json_logs):
        log.info("rollout analysis: %s", result["decision"], extra={"decision": result["decision"],
                                                                    "reason": result["reason"], "table": table})
    else:
        sys.stderr.write(table + "\n")


def selection_of(settings: AnalyzeSettings) -> Selection:
    """The predictions ``settings`` select."""
    start, end = settings.window_bounds()
    return Selection(settings.track, start, end, settings.environment, settings.stable_version,
                     settings.candidate_version, settings.sources.model_name)


def _analyze(settings: AnalyzeSettings, _: argparse.Namespace) -> Outcome:
    policy: RolloutPolicy = load_policy(settings.policy_file)
    decision, result = analyze(settings.sources.inputs(), selection_of(settings), policy.analysis)
    show(result, settings.json_logs)
    if settings.summary_file is not None:
        settings.summary_file.write_text(summary(result))
    return Outcome(decision.exit_code, result)


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``kube-sentiment rollout analyze``: one per :class:`AnalyzeSettings` field."""
    return settings_parser(
        AnalyzeSettings,
        prog="kube-sentiment rollout analyze",
        description="Judge a candidate model version (canary or shadow) against the stable one over one window of "
        "logged predictions (and serving metrics, and live labels where they exist). Prints the result as JSON "
        "on stdout, a table on stderr. Exit codes: 0 advance, 3 roll back, 4 not enough data yet, 65 unreadable "
        "logs, 69 a source unreachable, 78 bad settings or policy, 1 other error.",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``kube-sentiment rollout analyze [flags]``: returns the exit code."""
    return run_process(AnalyzeSettings, argv, _analyze, parser=build_parser())


def local_analyzer(inputs: Inputs, policy: Analysis, environment: str | None, model_name: str = "sentiment",
                   json_logs: bool | None = None) -> Any:
    """An analyzer for the step driver (:data:`control.rollout.driver.Analyzer`) reading ``inputs`` from here."""

    def run(track: str, stable: str, candidate: str, start: datetime, end: datetime) -> tuple[str, str, dict[str, Any]]:
        selection = Selection(track, start, end, environment, stable, candidate, model_name)  # type: ignore[arg-type]
        decision, result = analyze(inputs, selection, policy)
        show(result, json_logs)
        return decision.decision, decision.reason, result

    return run
