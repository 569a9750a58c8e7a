"""A spool segment → sink objects: partitioned, de-duplicated, stable names, one conversion path that
quarantines only the lines that do not fit."""

from __future__ import annotations

import io

import orjson
import pyarrow.parquet as pq

from serving.shipper.cloudevents import JoinDefaults, Joiner
from serving.shipper.objects import segment_objects
from serving.shipper.wire import parse_ndjson
from tests.support.events import JOIN_DEFAULTS, cloudevent_half, events, ndjson, shipped_events


def test_segment_objects_partition_dedupe_and_keep_names_stable() -> None:
    batch = events(4, model_version="1", ts=3600.0 * 5) + events(2, start=10, model_version="2", ts=3600.0 * 30)
    lines, bad, _ = parse_ndjson(ndjson(batch) + ndjson(batch[:2]) + b"garbage\n", 1.0)
    objects, duplicates = segment_objects("seg-1", lines + bad)
    keys = [k for k, _, _ in objects]
    assert duplicates == 2 and [n for _, _, n in objects] == [4, 2, 1]
    assert keys == [
        "environment=test/model_version=1/date=1970-01-01/hour=05/seg-1.parquet",
        "environment=test/model_version=2/date=1970-01-02/hour=06/seg-1.parquet",
        "quarantine/date=1970-01-01/seg-1.ndjson",
    ]
    table = pq.read_table(io.BytesIO(objects[0][1]))
    assert table.num_rows == 4
    assert table.column("probabilities")[0].as_py() == [("negative", 0.9), ("neutral", 0.05), ("positive", 0.05)]
    assert objects == segment_objects("seg-1", lines + bad)[0]  # shipping a segment twice writes the same objects


def test_a_segment_converts_in_one_pass_and_quarantines_only_the_misfits() -> None:
    lines, bad, _ = parse_ndjson(ndjson(events(30) + events(5)) + b"junk\n", 7.0)
    objects, duplicates = segment_objects("s", lines + bad)
    assert duplicates == 5 and [(o.key.split("/")[0], o.records) for o in objects] == [
        ("environment=test", 30), ("quarantine", 1)]
    table = pq.read_table(io.BytesIO(objects[0].data))
    assert table.column("id").to_pylist() == [f"req{i}:0" for i in range(30)]
    assert table.column("probabilities")[0].as_py() == [("negative", 0.9), ("neutral", 0.05), ("positive", 0.05)]

    odd = dict(events(1, start=99)[0], ts="yesterday")
    lines, _, n = parse_ndjson(ndjson([*events(3), odd]), 7.0)
    assert n == 4  # the contract does not type-check ts; the writer must not choke on it
    objects, _ = segment_objects("t", [*lines, b"{torn"])
    parquet = [o for o in objects if o.key.endswith(".parquet")]
    quarantine = [o for o in objects if o.key.startswith("quarantine/")]
    assert sum(o.records for o in parquet) == 3 and quarantine[0].records == 2
    reasons = [orjson.loads(line)["_q"] for line in quarantine[0].data.splitlines()]
    assert reasons[0].startswith("field types do not fit") and b"req99:0" in quarantine[0].data
    assert reasons[1] == "unreadable spool line"


def test_label_only_kserve_records_keep_empty_probabilities() -> None:
    joiner = Joiner(JoinDefaults(*JOIN_DEFAULTS), ttl_s=60, max_pending=10)
    joiner.offer(cloudevent_half("request", "k", {"instances": ["fine", "bad"]}))
    lines, _ = joiner.offer(cloudevent_half("response", "k", {"predictions": ["positive", "negative"]}))
    rows = shipped_events(lines)
    assert [(r["label"], r["probabilities"], r["confidence"]) for r in rows] == [
        ("positive", [], None), ("negative", [], None)]
