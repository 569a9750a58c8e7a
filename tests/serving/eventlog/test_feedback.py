"""The feedback contract: client items checked against the model's classes with messages that name the bad part,
stable event ids (a retried item is the same event), stored through the shipper's ingest under ``feedback/`` and
read back with the one reader, which the prediction reader never mistakes for predictions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from serving.eventlog.feedback import BadFeedback, feedback_id, parse_items, parse_time, validate_feedback
from serving.eventlog.parquet import FEEDBACK
from serving.eventlog.reader import read_window
from serving.shipper.objects import segment_objects
from serving.shipper.wire import FEEDBACK_PREFIX, parse_ndjson
from tests.support.events import CLASSES, events, ndjson, write_to_sink

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp()


def parse(items: list[Any], max_items: int = 100) -> list[dict[str, Any]]:
    return [dict(e) for e in parse_items(items, CLASSES, default_source="api", received=NOW, environment="test",
                                         max_items=max_items)]


def test_items_become_events_with_defaults_and_stable_ids() -> None:
    one, two = parse([{"id": "abc:0", "label": "positive"},
                      {"id": "r-1:12", "label": "negative", "source": "reviewer/7", "at": "2026-03-01T11:00:00Z"}])
    assert one | {"id": "-"} == {"schema": "kube-sentiment.feedback/v1", "id": "-", "prediction_id": "abc:0",
                                 "label": "positive", "source": "api", "at": NOW, "ts": NOW, "environment": "test"}
    assert two["at"] == NOW - 3600 and two["source"] == "reviewer/7"
    assert one["id"] == feedback_id("abc:0", "api", "positive", None)  # a retry is the same event
    assert parse([{"id": "abc:0", "label": "positive"}])[0]["id"] == one["id"]
    assert len({one["id"], feedback_id("abc:0", "api", "negative", None), feedback_id("abc:0", "x", "positive", None),
                feedback_id("abc:0", "api", "positive", 5.0)}) == 4


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "no feedback items"),
        ([{"id": "a:0", "label": "positive"}] * 101, "101 feedback items in one request; at most 100"),
        (["a:0"], "item 0 is str"),
        ([{"id": "a:0", "label": "sarcastic"}], "label 'sarcastic' is not one of the model's classes"),
        ([{"id": "a:0"}], "label None is not one of"),
        ([{"id": "a:0", "label": "positive", "lable": "x"}], "unknown field(s) ['lable']"),
        ([{"id": "no-index", "label": "positive"}], "is not a prediction id"),
        ([{"id": "", "label": "positive"}], "must be a non-empty string"),
        ([{"id": 7, "label": "positive"}], "must be a non-empty string"),
        ([{"id": "x" * 300 + ":0", "label": "positive"}], "prediction ids have at most 256"),
        ([{"id": "a:0", "label": "positive", "source": "bad source!"}], "source 'bad source!' must be"),
        ([{"id": "a:0", "label": "positive", "at": "yesterday"}], "is not a time"),
        ([{"id": "a:0", "label": "positive", "at": NOW + 86400}], "lies in the future"),
        ([{"id": "a:0", "label": "positive", "at": float("nan")}], "is not a time after 1970"),
        ([{"id": "a:0", "label": "positive"}, {"id": "b:1", "label": "?"}], "item 1: label '?'"),
    ],
)
def test_bad_items_are_refused_naming_the_item_and_the_problem(items: list[Any], message: str) -> None:
    with pytest.raises(BadFeedback) as info:
        parse(items)
    assert message in str(info.value)


def test_times_are_unix_seconds_or_iso_8601_in_utc_by_default() -> None:
    assert parse_time(1.5, "at") == 1.5
    assert parse_time("1970-01-01T00:01:00", "at") == 60.0
    assert parse_time("1970-01-01T01:01:00+01:00", "at") == 60.0
    with pytest.raises(BadFeedback, match="is bool"):
        parse_time(True, "at")


def test_stored_events_are_checked_at_ingest() -> None:
    event = parse([{"id": "a:0", "label": "positive"}])[0]
    assert validate_feedback(event) is event
    with pytest.raises(ValueError, match=r"lacks field\(s\) \['ts'\]"):
        validate_feedback({k: v for k, v in event.items() if k != "ts"})
    with pytest.raises(ValueError, match="'at' must be a number"):
        validate_feedback(event | {"at": "soon"})


def test_feedback_is_stored_under_its_own_directory_and_read_back_deduplicated(tmp_path: Path) -> None:
    labels = parse([{"id": f"req{i}:0", "label": CLASSES[i % 3]} for i in range(5)])
    body = ndjson([{k: e[k] for k in reversed(list(e))} for e in labels])  # any key order is accepted
    lines, bad, n = parse_ndjson(body + ndjson(events(3, ts=NOW)), NOW)
    assert n == 8 and not bad and sum(line.startswith(FEEDBACK_PREFIX) for line in lines) == 5
    objects, duplicates = segment_objects("seg", lines + lines)
    assert duplicates == 8
    assert sorted(o.key for o in objects) == ["environment=test/model_version=1/date=2026-03-01/hour=12/seg.parquet",
                                              "feedback/environment=test/date=2026-03-01/hour=12/seg.parquet"]
    root = tmp_path / "sink"
    write_to_sink(root, events(3, ts=NOW), "s1")
    write_to_sink(root, labels, "s2")
    write_to_sink(root, labels[:2], "s3")  # a client that retried
    start, end = datetime.fromtimestamp(NOW - 60, UTC), datetime.fromtimestamp(NOW + 60, UTC)
    window = read_window(str(root), start, end, event_log=FEEDBACK)
    assert window.table.num_rows == 5 and window.duplicates == 2
    assert sorted(window.table.column("prediction_id").to_pylist()) == [f"req{i}:0" for i in range(5)]
    assert read_window(str(root), start, end).table.num_rows == 3  # the prediction reader skips feedback/
    quarantined = segment_objects("q", [FEEDBACK_PREFIX + b',"id":1}'])[0]
    assert [o.key.split("/")[0] for o in quarantined] == ["quarantine"]
    assert b"does not fit the feedback schema" in quarantined[0].data
    assert orjson.loads(quarantined[0].data)["raw"].startswith('{"schema":"kube-sentiment.feedback/v1"')
