"""Feedback joined to the predictions it labels: one home for the rules every consumer shares (live quality in the
drift job, the rollout analysis, the production-data snapshot for training).

:func:`join` takes the predictions of a window and the feedback received for them and returns the predictions that
end up with one true label:

1. **Unknown or out-of-window ids.** Feedback whose ``prediction_id`` is not among the window's predictions is
   counted as ``unmatched`` (an id nobody issued, or a prediction older than the window).
2. **Late labels.** A label given (``at``) more than ``lateness`` after its prediction is counted as ``late`` and
   left out, so a window's figures settle once ``end + lateness`` has passed.
3. **Corrections.** Per prediction and source, the latest label (by ``at``, then by receive time) wins; earlier ones
   are counted as ``superseded``. (Exact repeats never get here: the reader drops repeated event ids.)
4. **Conflicts.** Across sources, the majority label wins; a tie leaves the prediction unlabelled, counted as
   ``conflicting`` (like a text with a tied label in the training corpus).

:func:`read_joined` reads both logs from a sink with :func:`serving.eventlog.reader.read_window`: predictions of
``[start, end)``, feedback received in ``[start, end + lateness)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from serving.eventlog.parquet import FEEDBACK
from serving.eventlog.reader import read_window

#: Prediction columns the join needs.
PREDICTION_COLUMNS = ("id", "ts", "model_version", "track", "label")
FEEDBACK_COLUMNS = ("prediction_id", "label", "source", "at", "ts")


@dataclass(frozen=True)
class JoinCounts:
    """What happened to the feedback of a window."""

    feedback: int
    """Feedback events read (repeated deliveries already dropped)."""
    repeats: int
    """Repeated deliveries of the same feedback event dropped by the reader."""
    unmatched: int
    """Feedback for no prediction of the window (an unknown id, or a prediction before the window)."""
    late: int
    """Given more than the lateness allowance after the prediction."""
    superseded: int
    """Replaced by a later label from the same source."""
    conflicting: int
    """Predictions whose sources disagree without a majority (left unlabelled)."""
    labelled: int
    """Predictions with one true label."""

    def as_dict(self) -> dict[str, int]:
        """JSON-ready."""
        return asdict(self)


def join(predictions: pd.DataFrame, feedback: pd.DataFrame, lateness_s: float,
         repeats: int = 0) -> tuple[pd.DataFrame, JoinCounts]:
    """The predictions that have a true label, with columns ``true_label``, ``label_at`` and ``label_sources``
    added (one row per prediction, in the predictions' order), and the counts of the module docstring.

    ``predictions``: at least ``id`` and ``ts`` (unique ids); ``feedback``: ``prediction_id``, ``label``,
    ``source``, ``at`` and ``ts`` (receive time).
    """
    fb = feedback.loc[:, list(FEEDBACK_COLUMNS)].rename(columns={"label": "true_label", "ts": "received"})
    when = predictions.loc[:, ["id", "ts"]].rename(columns={"id": "prediction_id", "ts": "predicted_at"})
    matched = fb.merge(when, on="prediction_id", how="inner")
    unmatched = len(fb) - len(matched)
    in_time = matched["at"] - matched["predicted_at"] <= lateness_s
    late = int((~in_time).sum())
    matched = matched[in_time]
    latest = matched.sort_values(["prediction_id", "source", "at", "received", "true_label"]).drop_duplicates(
        ["prediction_id", "source"], keep="last")
    superseded = len(matched) - len(latest)
    if latest.empty:
        labelled = predictions.iloc[:0].assign(true_label=pd.Series(dtype=object), label_at=pd.Series(dtype=float),
                                               label_sources=pd.Series(dtype=object))
        return labelled, JoinCounts(len(fb), repeats, unmatched, late, superseded, 0, 0)
    votes = latest.groupby(["prediction_id", "true_label"]).agg(
        votes=("source", "size"), label_at=("at", "max"), label_sources=("source", lambda s: ",".join(sorted(s))))
    votes = votes.reset_index().sort_values(["prediction_id", "votes"], ascending=[True, False])
    top_two = votes.groupby("prediction_id").head(2)
    tied = top_two.groupby("prediction_id")["votes"].transform(lambda v: len(v) > 1 and v.iloc[0] == v.iloc[1])
    tied_ids = set(top_two.loc[tied.astype(bool), "prediction_id"])
    winners = votes.drop_duplicates("prediction_id")
    winners = winners[~winners["prediction_id"].isin(tied_ids)]
    labelled = predictions.merge(winners.drop(columns="votes").rename(columns={"prediction_id": "id"}), on="id",
                                 how="inner")
    counts = JoinCounts(feedback=len(fb), repeats=repeats, unmatched=unmatched, late=late, superseded=superseded,
                        conflicting=len(tied_ids), labelled=len(labelled))
    return labelled.reset_index(drop=True), counts


@dataclass(frozen=True)
class Joined:
    """A window's predictions (``predictions``, the requested columns) and those with a true label (``labelled``)."""

    predictions: pd.DataFrame
    labelled: pd.DataFrame
    counts: JoinCounts
    start: datetime
    end: datetime


def read_joined(source: str, start: datetime, end: datetime, *, lateness: timedelta,
                columns: Sequence[str] = PREDICTION_COLUMNS, where: dict[str, Any] | None = None,
                endpoint_url: str | None = None, region: str = "us-east-1") -> Joined:
    """Predictions of ``[start, end)`` in the sink at ``source`` (``where``: as for ``read_window``, e.g.
    ``{"environment": "production", "model_version": "7"}``) joined to the feedback received in
    ``[start, end + lateness)`` of the same environment."""
    wanted = list(dict.fromkeys([*PREDICTION_COLUMNS[:2], *columns]))
    predictions = read_window(source, start, end, columns=wanted, where=where, endpoint_url=endpoint_url,
                              region=region).table.to_pandas()
    feedback_where = {"environment": where["environment"]} if where and "environment" in where else None
    window = read_window(source, start, end + lateness, event_log=FEEDBACK, columns=list(FEEDBACK_COLUMNS),
                         where=feedback_where, endpoint_url=endpoint_url, region=region)
    labelled, counts = join(predictions, window.table.to_pandas(), lateness.total_seconds(), window.duplicates)
    return Joined(predictions, labelled, counts, start, end)
