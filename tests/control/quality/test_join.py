"""The join of feedback to predictions: unknown ids, late labels, corrections from one source, conflicts between
sources, and the same rules when both logs are read back from a sink."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from control.quality.join import join, read_joined
from serving.eventlog.feedback import make_feedback
from tests.support.events import events, write_to_sink

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp()
HOUR = 3600.0


def predictions(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}:0" for i in range(n)], "ts": [T0 + i for i in range(n)],
                         "model_version": "1", "track": "stable", "label": "positive"})


def fb(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    """(prediction id, label, source, at) rows; received one second after ``at``."""
    return pd.DataFrame([{"prediction_id": p, "label": lab, "source": s, "at": at, "ts": at + 1}
                         for p, lab, s, at in rows])


def test_matched_unknown_and_late_feedback() -> None:
    labelled, counts = join(predictions(), fb([
        ("r0:0", "negative", "api", T0 + 60),
        ("r1:0", "positive", "api", T0 + 2 * HOUR),   # late: more than an hour after its prediction
        ("nope:0", "positive", "api", T0 + 60),       # no such prediction
    ]), lateness_s=HOUR, repeats=3)
    assert labelled[["id", "label", "true_label", "label_sources"]].to_dict("records") == [
        {"id": "r0:0", "label": "positive", "true_label": "negative", "label_sources": "api"}]
    assert counts.as_dict() == {"feedback": 3, "repeats": 3, "unmatched": 1, "late": 1, "superseded": 0,
                                "conflicting": 0, "labelled": 1}


def test_a_later_label_from_the_same_source_replaces_the_earlier_one() -> None:
    labelled, counts = join(predictions(), fb([
        ("r0:0", "negative", "reviewer", T0 + 100),
        ("r0:0", "neutral", "reviewer", T0 + 200),     # the reviewer corrected it
        ("r0:0", "negative", "reviewer", T0 + 150),    # an older one, delivered late, changes nothing
    ]), lateness_s=HOUR)
    assert labelled.set_index("id")["true_label"].to_dict() == {"r0:0": "neutral"}
    assert counts.superseded == 2 and counts.labelled == 1
    assert labelled["label_at"].iloc[0] == T0 + 200


def test_sources_vote_and_a_tie_leaves_the_prediction_unlabelled() -> None:
    labelled, counts = join(predictions(), fb([
        ("r0:0", "negative", "a", T0 + 10), ("r0:0", "negative", "b", T0 + 10), ("r0:0", "neutral", "c", T0 + 10),
        ("r1:0", "negative", "a", T0 + 10), ("r1:0", "positive", "b", T0 + 10),
        ("r2:0", "neutral", "a", T0 + 10), ("r2:0", "neutral", "b", T0 + 10),
    ]), lateness_s=HOUR)
    assert labelled.set_index("id")["true_label"].to_dict() == {"r0:0": "negative", "r2:0": "neutral"}
    assert labelled.set_index("id")["label_sources"].to_dict() == {"r0:0": "a,b", "r2:0": "a,b"}
    assert counts.conflicting == 1 and counts.labelled == 2 and counts.unmatched == 0


def test_nothing_to_join() -> None:
    labelled, counts = join(predictions(), fb([]).reindex(columns=["prediction_id", "label", "source", "at", "ts"]),
                            lateness_s=HOUR)
    assert labelled.empty and counts.labelled == 0 and counts.feedback == 0
    labelled, counts = join(predictions(0), fb([("r0:0", "negative", "a", T0)]), lateness_s=HOUR)
    assert labelled.empty and counts.unmatched == 1


def test_read_joined_reads_feedback_up_to_the_lateness_past_the_window(tmp_path: Path) -> None:
    root = tmp_path / "sink"
    write_to_sink(root, events(6, ts=T0, prefix="p", environment="prod"), "s1")
    write_to_sink(root, events(2, ts=T0, prefix="q", environment="staging"), "s2")

    def label(pid: str, label: str, received: float, environment: str = "prod") -> dict[str, object]:
        return dict(make_feedback(pid, label, source="api", at=None, received=received, environment=environment))

    write_to_sink(root, [label("p0:0", "negative", T0 + 60), label("p1:0", "neutral", T0 + 2 * HOUR),
                         label("p2:0", "neutral", T0 + 5 * HOUR),       # received after end + lateness
                         label("q0:0", "neutral", T0 + 60, "staging")], "s3")
    write_to_sink(root, [label("p0:0", "negative", T0 + 60)], "s4")  # a repeat
    start, end = datetime.fromtimestamp(T0 - 60, UTC), datetime.fromtimestamp(T0 + HOUR, UTC)
    joined = read_joined(str(root), start, end, lateness=timedelta(hours=3), where={"environment": "prod"})
    assert len(joined.predictions) == 6
    assert joined.labelled.set_index("id")["true_label"].to_dict() == {"p0:0": "negative", "p1:0": "neutral"}
    assert (joined.counts.feedback, joined.counts.repeats) == (2, 1)
