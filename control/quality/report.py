"""The drift job's ``quality`` section: feedback of the window joined to its predictions, each model version and
track judged (:mod:`control.quality.live`), then written to the JSON and HTML reports, added to the run's
Prometheus metrics and logged to the version's MLflow run.

JSON (``report["quality"]``)::

    verdict, lateness, min_labelled, confidence, max_f1_drop,
    join{feedback, repeats, unmatched, late, superseded, conflicting, labelled},
    groups[]{model_version, track, predictions, labelled, coverage, verdict, macro_f1, ci_low, ci_high,
             confidence, accuracy, holdout_macro_f1, delta, delta_ci_low, delta_ci_high, per_class_f1{},
             confusion[][], classes[]}
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
from prometheus_client import CollectorRegistry, Gauge

from control.quality.join import FEEDBACK_COLUMNS, JoinCounts, join
from control.quality.live import DEGRADED, INSUFFICIENT, OK, VERDICT_VALUE, WARN, LiveQuality, assess, classes_of
from control.quality.settings import QualitySettings
from serving.eventlog.parquet import FEEDBACK
from serving.eventlog.reader import read_window

log = logging.getLogger(__name__)
COLOURS = {OK: "#2e7d32", WARN: "#ef6c00", DEGRADED: "#c62828", INSUFFICIENT: "#757575"}


@dataclass(frozen=True)
class Quality:
    """The quality section of one run."""

    verdict: str
    counts: JoinCounts
    groups: list[LiveQuality]
    settings: QualitySettings

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``report["quality"]``)."""
        s = self.settings
        return {"verdict": self.verdict, "lateness": s.lateness, "min_labelled": s.min_labelled,
                "confidence": s.confidence, "max_f1_drop": s.max_f1_drop, "join": self.counts.as_dict(),
                "groups": [g.as_dict() for g in self.groups]}


def overall(verdicts: list[str]) -> str:
    """The worst verdict: degraded > warn > ok > insufficient data."""
    for verdict in (DEGRADED, WARN, OK):
        if verdict in verdicts:
            return verdict
    return INSUFFICIENT


def evaluate(settings: QualitySettings, predictions: pa.Table, source: str, start: datetime, end: datetime, *,
             environment: str | None, reference: Callable[[str], tuple[tuple[str, ...], float | None] | None],
             seed: int = 0, endpoint_url: str | None = None, region: str = "us-east-1") -> Quality:
    """Join the feedback received in ``[start, end + lateness)`` to the window's ``predictions`` (columns ``id``,
    ``ts``, ``model_version``, ``track``, ``label``) and judge each (model version, track).

    ``reference(version)``: the version's classes and frozen-holdout macro-F1, or ``None`` when unknown.
    """
    lateness = settings.lateness_delta()
    where = {"environment": environment} if environment is not None else None
    window = read_window(source, start, end + lateness, event_log=FEEDBACK, columns=list(FEEDBACK_COLUMNS),
                         where=where, endpoint_url=endpoint_url, region=region)
    frame = predictions.select(["id", "ts", "model_version", "track", "label"]).to_pandas()
    frame["track"] = frame["track"].fillna("unknown")
    labelled, counts = join(frame, window.table.to_pandas(), lateness.total_seconds(), window.duplicates)
    sizes = frame.groupby(["model_version", "track"]).size()
    groups = []
    for (version, track), n in sizes.items():
        rows = labelled[(labelled["model_version"] == version) & (labelled["track"] == track)]
        known = reference(str(version))
        classes, holdout = known if known is not None else (classes_of(rows), None)
        quality = assess(str(version), str(track), int(n), rows, classes, holdout,
                         min_labelled=settings.min_labelled, max_f1_drop=settings.max_f1_drop,
                         confidence=settings.confidence, resamples=settings.resamples, seed=seed)
        log.info("model version %s / %s: live quality %s (%d labelled, macro-F1 %s)", version, track,
                 quality.verdict, quality.labelled,
                 "-" if quality.macro_f1 is None else f"{quality.macro_f1:.4f}",
                 extra={"model_version": str(version), "track": str(track), "quality_verdict": quality.verdict,
                        "labelled": quality.labelled, "macro_f1": quality.macro_f1})
        groups.append(quality)
    return Quality(overall([g.verdict for g in groups]), counts, groups, settings)


def add_metrics(registry: CollectorRegistry, quality: Quality) -> None:
    """The quality gauges (``ks_quality_*``), in the run's registry beside the drift gauges."""
    labels = ["model_version", "track"]
    gauges = {
        "predictions": Gauge("ks_quality_predictions", "Predictions of the group in the window.", labels,
                             registry=registry),
        "labelled": Gauge("ks_quality_labelled", "Predictions of the group with a true label (feedback).", labels,
                          registry=registry),
        "coverage": Gauge("ks_quality_coverage", "Share of the group's predictions with a true label.", labels,
                          registry=registry),
        "macro_f1": Gauge("ks_quality_macro_f1", "Live macro-F1 on the labelled predictions (absent below "
                          "min_labelled).", labels, registry=registry),
        "ci_low": Gauge("ks_quality_macro_f1_ci_low", "Lower bound of the bootstrap interval of live macro-F1.",
                        labels, registry=registry),
        "ci_high": Gauge("ks_quality_macro_f1_ci_high", "Upper bound of the bootstrap interval of live macro-F1.",
                         labels, registry=registry),
        "accuracy": Gauge("ks_quality_accuracy", "Live accuracy on the labelled predictions.", labels,
                          registry=registry),
        "delta": Gauge("ks_quality_macro_f1_delta", "Live macro-F1 minus the version's frozen-holdout macro-F1.",
                       labels, registry=registry),
    }
    verdict = Gauge("ks_quality_verdict", "Live quality: -1 insufficient data, 0 ok, 1 warn, 2 degraded.", labels,
                    registry=registry)
    for g in quality.groups:
        key = (g.model_version, g.track)
        verdict.labels(*key).set(VERDICT_VALUE[g.verdict])
        for name, value in (("predictions", g.predictions), ("labelled", g.labelled), ("coverage", g.coverage),
                            ("macro_f1", g.macro_f1), ("ci_low", g.ci_low), ("ci_high", g.ci_high),
                            ("accuracy", g.accuracy), ("delta", g.delta)):
            if value is not None:
                gauges[name].labels(*key).set(value)
    feedback = Gauge("ks_quality_feedback", "Feedback of the window by what the join made of it.", ["outcome"],
                     registry=registry)
    for outcome, value in quality.counts.as_dict().items():
        feedback.labels(outcome).set(value)


def log_to_mlflow(client: Any, registered_model: str, quality: Quality, run_ids: dict[str, str],
                  timestamp_ms: int) -> None:
    """Each group's figures as metrics ``quality.<track>.*`` of its version's run, its verdict as a version tag."""
    for g in quality.groups:
        run_id = run_ids.get(g.model_version)
        if run_id:
            for name in ("labelled", "coverage", "macro_f1", "ci_low", "ci_high", "accuracy", "delta"):
                value = getattr(g, name)
                if value is not None:
                    client.log_metric(run_id, f"quality.{g.track}.{name}", float(value), timestamp=timestamp_ms)
        client.set_model_version_tag(registered_model, g.model_version, f"quality.{g.track}.verdict", g.verdict)


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_html(quality: Quality) -> str:
    """The quality section of the HTML report."""
    e = html.escape
    s = quality.settings
    c = quality.counts
    colour = COLOURS.get(quality.verdict, "#000")
    parts = [
        f"<h2>Live quality <span class='badge' style='background:{colour}'>{e(quality.verdict.replace('_', ' '))}"
        "</span></h2>",
        f"<p>Feedback joined to the window's predictions by id, labels up to {e(s.lateness)} after their prediction: "
        f"{c.feedback} feedback events, {c.labelled} predictions labelled; {c.unmatched} for no prediction of the "
        f"window, {c.late} late, {c.superseded} superseded by a later label of the same source, {c.conflicting} "
        f"predictions with conflicting labels, {c.repeats} repeated deliveries dropped. Macro-F1 with its "
        f"{s.confidence:.0%} bootstrap interval; below {s.min_labelled} labelled predictions no figure is given. "
        f"<em>Degraded</em>: the whole interval lies more than {s.max_f1_drop} below the version's macro-F1 on the "
        "frozen holdout.</p>",
        "<table><tr><th>model version</th><th>track</th><th>predictions</th><th>labelled</th><th>coverage</th>"
        "<th>macro-F1</th><th>interval</th><th>holdout macro-F1</th><th>change</th><th>accuracy</th>"
        "<th>verdict</th></tr>",
    ]
    for g in quality.groups:
        interval = "-" if g.ci_low is None else f"{g.ci_low:.4f} to {g.ci_high:.4f}"
        change = "-" if g.delta is None else f"{g.delta:+.4f}"
        badge = (f"<span class='badge' style='background:{COLOURS.get(g.verdict, '#000')}'>"
                 f"{e(g.verdict.replace('_', ' '))}</span>")
        parts.append(f"<tr><td>{e(g.model_version)}</td><td>{e(g.track)}</td><td>{g.predictions}</td>"
                     f"<td>{g.labelled}</td><td>{g.coverage:.1%}</td><td>{_num(g.macro_f1)}</td><td>{interval}</td>"
                     f"<td>{_num(g.holdout_macro_f1)}</td><td>{change}</td><td>{_num(g.accuracy)}</td>"
                     f"<td>{badge}</td></tr>")
    parts.append("</table>")
    for g in quality.groups:
        if g.confusion is None:
            continue
        header = "".join(f"<th>{e(c)}</th>" for c in g.classes)
        rows = "".join(f"<tr><th>{e(cls)}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
                       for cls, row in zip(g.classes, g.confusion, strict=True))
        parts.append(f"<h3>Confusion matrix, version {e(g.model_version)} · {e(g.track)}</h3>"
                     f"<table><tr><th>true \\ predicted</th>{header}</tr>{rows}</table>")
    return "".join(parts)

