"""Live quality of one model version and track: its labelled predictions scored, compared with the version's
macro-F1 on the frozen holdout, and judged.

Verdicts: ``insufficient_data`` (fewer than ``min_labelled`` labelled predictions: no figure is given),
``degraded`` (the whole confidence interval of live macro-F1 lies more than ``max_f1_drop`` below the holdout
macro-F1), ``warn`` (only the estimate does), ``ok``; without a holdout figure, ``ok`` or ``insufficient_data``.

Other consumers (the rollout analysis, the console) call :func:`live_macro_f1`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from control.quality.join import JoinCounts, read_joined
from control.quality.metrics import Scores, score

INSUFFICIENT, OK, WARN, DEGRADED = "insufficient_data", "ok", "warn", "degraded"
#: Verdict values of the Prometheus gauge.
VERDICT_VALUE = {INSUFFICIENT: -1, OK: 0, WARN: 1, DEGRADED: 2}


@dataclass(frozen=True)
class LiveQuality:
    """Live quality of one group. Figures are ``None`` when the group has too few labels (``insufficient_data``)."""

    model_version: str
    track: str
    predictions: int
    """Predictions of the group in the window."""
    labelled: int
    """Of which have a true label."""
    coverage: float
    """``labelled / predictions``."""
    verdict: str
    macro_f1: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    accuracy: float | None
    holdout_macro_f1: float | None
    """The version's macro-F1 on the frozen holdout (from its model directory), when known."""
    delta: float | None
    """``macro_f1 - holdout_macro_f1``."""
    delta_ci_low: float | None
    delta_ci_high: float | None
    per_class_f1: dict[str, float] | None
    confusion: list[list[int]] | None
    """Rows: true class; columns: predicted class (order of ``classes``)."""
    classes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self) | {"classes": list(self.classes)}


def assess(model_version: str, track: str, predictions: int, labelled: pd.DataFrame, classes: tuple[str, ...],
           holdout_macro_f1: float | None, *, min_labelled: int, max_f1_drop: float, confidence: float = 0.95,
           resamples: int = 2000, seed: int = 0) -> LiveQuality:
    """Score and judge one group (``labelled``: its predictions with ``label``, the predicted class, and
    ``true_label``)."""
    n = len(labelled)
    coverage = n / predictions if predictions else 0.0
    empty = dict(macro_f1=None, ci_low=None, ci_high=None, accuracy=None, delta=None, delta_ci_low=None,
                 delta_ci_high=None, per_class_f1=None, confusion=None)
    if n < min_labelled:
        return LiveQuality(model_version, track, predictions, n, coverage, INSUFFICIENT, confidence=confidence,
                           holdout_macro_f1=holdout_macro_f1, classes=classes, **empty)  # type: ignore[arg-type]
    scores: Scores = score(labelled["true_label"].tolist(), labelled["label"].tolist(), classes,
                           resamples=resamples, confidence=confidence, seed=seed)
    verdict, delta, delta_low, delta_high = OK, None, None, None
    if holdout_macro_f1 is not None:
        delta = scores.macro_f1 - holdout_macro_f1
        delta_low, delta_high = scores.ci_low - holdout_macro_f1, scores.ci_high - holdout_macro_f1
        if delta_high < -max_f1_drop:
            verdict = DEGRADED
        elif delta < -max_f1_drop:
            verdict = WARN
    return LiveQuality(model_version, track, predictions, n, coverage, verdict, scores.macro_f1, scores.ci_low,
                       scores.ci_high, confidence, scores.accuracy, holdout_macro_f1, delta, delta_low, delta_high,
                       scores.per_class_f1, scores.confusion, classes)


def classes_of(labelled: pd.DataFrame) -> tuple[str, ...]:
    """The classes seen as a prediction or a true label, sorted (when the model's own are not known)."""
    return tuple(sorted(set(labelled["label"]) | set(labelled["true_label"])))


def live_macro_f1(
    source: str,
    start: datetime,
    end: datetime,
    *,
    model_version: str,
    track: str | None = None,
    environment: str | None = None,
    lateness: timedelta = timedelta(days=7),
    classes: tuple[str, ...] | None = None,
    holdout_macro_f1: float | None = None,
    min_labelled: int = 200,
    max_f1_drop: float = 0.05,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
) -> tuple[LiveQuality, JoinCounts]:
    """Labelled macro-F1 (with its bootstrap interval) of ``model_version`` (on ``track``, or every track) for the
    predictions of ``[start, end)`` in the sink at ``source``, joined to the feedback received up to ``lateness``
    after ``end``. ``classes``: the model's classes (default: those seen); ``holdout_macro_f1``: the version's
    frozen-holdout figure, for ``delta`` and the verdict. ``DataError`` (65) / ``UnavailableError`` (69) as
    :func:`serving.eventlog.reader.read_window`."""
    where: dict[str, Any] = {"model_version": model_version}
    if track is not None:
        where["track"] = track
    if environment is not None:
        where["environment"] = environment
    joined = read_joined(source, start, end, lateness=lateness, where=where, endpoint_url=endpoint_url,
                         region=region)
    quality = assess(model_version, track or "all", len(joined.predictions), joined.labelled,
                     classes or classes_of(joined.labelled), holdout_macro_f1, min_labelled=min_labelled,
                     max_f1_drop=max_f1_drop, confidence=confidence, resamples=resamples, seed=seed)
    return quality, joined.counts
