"""Reading a window of an event log back from a sink written the shipper's way: partition pruning, the time
filter, de-duplication, filters on any column, column selection, and another kind of log beside predictions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from model.errors import DataError
from serving.eventlog.parquet import EVENT_LOGS, PREDICTIONS, EventLog, encode_parquet, partitions
from serving.eventlog.reader import read_window
from serving.shipper.sinks import LocalSink
from tests.support.events import events, write_to_sink

HOUR = 3600.0
BASE = datetime(2026, 3, 1, tzinfo=UTC).timestamp()


def at(hours: float) -> datetime:
    return datetime.fromtimestamp(BASE + hours * HOUR, UTC)


@pytest.fixture
def sink(tmp_path: Path) -> Path:
    root = tmp_path / "sink"
    write_to_sink(root, events(10, ts=BASE + 0.5 * HOUR, prefix="early"), "s1")  # before the window
    write_to_sink(root, events(20, ts=BASE + 2.5 * HOUR, prefix="in"), "s2")
    write_to_sink(root, events(5, ts=BASE + 2.5 * HOUR, prefix="in"), "s3")  # repeats of in0..in4
    write_to_sink(root, events(7, ts=BASE + 2.7 * HOUR, prefix="can", track="canary", model_version="2"), "s4")
    write_to_sink(root, events(9, ts=BASE + 2.6 * HOUR, prefix="other", environment="prod"), "s5")
    write_to_sink(root, events(3, ts=BASE + 3.0 * HOUR, prefix="late"), "s6")  # the end is exclusive
    return root


def test_a_window_is_pruned_filtered_by_time_and_deduplicated(sink: Path) -> None:
    window = read_window(str(sink), at(2), at(3))
    assert window.table.num_rows == 36 and window.duplicates == 5 and window.files == 4
    assert set(window.table.column_names) == {*PREDICTIONS.schema.names, *PREDICTIONS.partition_keys}
    ids = window.table.column("id").to_pylist()
    assert len(ids) == len(set(ids)) and not any(i.startswith(("early", "late")) for i in ids)
    assert read_window(str(sink), at(0), at(3)).table.num_rows == 46


def test_where_columns_and_filter(sink: Path) -> None:
    test_only = read_window(str(sink), at(2), at(3), where={"environment": "test"}, columns=["id", "track"])
    assert test_only.table.column_names == ["id", "track"] and test_only.table.num_rows == 27
    canary = read_window(str(sink), at(2), at(3), where={"track": ["canary"], "model_version": "2"})
    assert canary.table.num_rows == 7 and set(canary.table.column("model_version").to_pylist()) == {"2"}
    confident = read_window(str(sink), at(2), at(3), columns=["confidence"], filter=ds.field("confidence") > 0.8)
    assert confident.table.column_names == ["confidence"]
    assert 0 < confident.table.num_rows < 36 and min(confident.table.column("confidence").to_pylist()) > 0.8


def test_an_empty_window_keeps_the_columns_and_a_missing_sink_is_bad_data(sink: Path, tmp_path: Path) -> None:
    empty = read_window(str(sink), datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC),
                        columns=["id", "ts", "environment"])
    assert empty.table.num_rows == 0 and empty.table.schema.field("ts").type == pa.float64()
    nothing = tmp_path / "nothing-yet"
    nothing.mkdir()
    assert read_window(str(nothing), at(0), at(1)).table.num_rows == 0
    with pytest.raises(DataError, match="cannot open the prediction log"):
        read_window(str(tmp_path / "missing"), at(0), at(1))


def test_another_kind_of_log_is_read_with_the_same_reader_and_kept_apart(sink: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    feedback = EventLog("feedback", "feedback/", pa.schema([("id", pa.string()), ("ts", pa.float64()),
                                                           ("label", pa.string())]),
                        ("environment", "date", "hour"))
    monkeypatch.setitem(EVENT_LOGS, feedback.kind, feedback)
    table = pa.table({"id": ["f1", "f2", "f1"], "ts": [BASE + 2.1 * HOUR] * 3, "label": ["negative"] * 3,
                      "environment": ["test"] * 3})
    for partition, rows in partitions(table, feedback).items():
        LocalSink(sink).put(feedback.object_key(partition, "seg"),
                            encode_parquet(table.take(pa.array(rows)).select(feedback.schema.names)))
    window = read_window(str(sink), at(2), at(3), event_log=feedback)
    assert window.table.column("id").to_pylist() == ["f1", "f2"] and window.duplicates == 1
    assert read_window(str(sink), at(2), at(3)).table.num_rows == 36  # predictions do not see the feedback log


def test_a_column_added_later_reads_as_null_from_older_files(sink: Path) -> None:
    """Objects written before ``mirror_of`` existed lack the column; the reader reads it as null beside new ones."""
    old = pa.table({"id": ["old0:0"], "ts": [BASE + 2.2 * HOUR], "track": ["stable"], "label": ["neutral"]})
    LocalSink(sink).put("environment=test/model_version=1/date=2026-03-01/hour=02/old.parquet", encode_parquet(old))
    shadow = events(2, ts=BASE + 2.2 * HOUR, prefix="sh", track="shadow", model_version="2")
    for i, event in enumerate(shadow):
        event["mirror_of"] = f"in{i}"
    write_to_sink(sink, shadow, "s7")
    table = read_window(str(sink), at(2), at(3), columns=["id", "track", "mirror_of"]).table
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows["old0:0"]["mirror_of"] is None and rows["in0:0"]["mirror_of"] is None
    assert [rows[f"sh{i}:0"]["mirror_of"] for i in range(2)] == ["in0", "in1"]
