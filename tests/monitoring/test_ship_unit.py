"""Unit tests of the shipper: parsing and quarantine, partitioning, CloudEvent join, spool recovery, HTTP codes."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from eventgen import events, ndjson
from starlette.testclient import TestClient

from serving.eventlog.events import RequestEncoder
from serving.eventlog.parquet import partitions, safe_partition_value
from serving.shipper.app import create_app
from serving.shipper.cloudevents import REQUEST_TYPE, RESPONSE_TYPE, JoinDefaults, Joiner, make_half
from serving.shipper.objects import segment_objects
from serving.shipper.settings import ShipSettings
from serving.shipper.spool import Spool, SpoolFull
from serving.shipper.wire import MalformedInput, parse_ndjson

DEFAULTS = JoinDefaults("test", "sentiment", "9", "canary", ("negative", "neutral", "positive"))


def shipped(lines: list[bytes]) -> list[dict]:
    """The events the sink gets from a segment of ``lines`` (rows of its Parquet objects, in key order)."""
    objects, _ = segment_objects("seg", lines)
    tables = [pq.read_table(io.BytesIO(o.data)) for o in objects if o.key.endswith(".parquet")]
    return pa.concat_tables(tables).to_pylist() if tables else []


def joined_events(lines: list[bytes]) -> list[dict]:
    """The events in spool lines made by the joiner (after their batch marker)."""
    assert orjson.loads(lines[0])["_s"] == "kserve-logger"
    return [orjson.loads(line) for line in lines[1:]]


def test_parse_ndjson_keeps_valid_events_and_quarantines_the_rest() -> None:
    good = events(3)
    body = ndjson(good) + b"{not json\n" + b'{"schema": "kube-sentiment.prediction/v1"}\n' + b"[1, 2]\n\n"
    lines, bad, n = parse_ndjson(body, 123.0)
    assert n == 3 and len(lines) == 4 and len(bad) == 3
    assert orjson.loads(lines[0]) == {"_t": 123.0, "_s": "predictor"}
    assert lines[1] == ndjson(good[:1]).strip()  # stored byte for byte
    first = shipped(lines)[0]
    assert first["received_at"] == 123.0 and first["source"] == "predictor" and first["id"] == "req0:0"
    reasons = [orjson.loads(b)["_q"] for b in bad]
    assert reasons[0].startswith("invalid JSON")
    assert "lacks field" in reasons[1]
    assert "JSON object" in reasons[2]


def test_parse_ndjson_expands_the_predictors_request_records() -> None:
    encoder = RequestEncoder("sentiment", "9", "canary", "test", ("negative", "neutral", "positive"), False)
    record = encoder.line("req", 5.0, "v1", ["nice", "awful"], np.array([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1]]), 2.0)
    broken = record.replace(b'"text_length":[4,5]', b'"text_length":[4]')
    lines, bad, n = parse_ndjson(record + b"\n" + broken + b"\n", 7.0)
    assert n == 2 and len(lines) == 3 and len(bad) == 1
    stored = shipped(lines)
    assert [(e["id"], e["label"], e["text"], e["text_length"]) for e in stored] == [
        ("req:0", "positive", None, 4), ("req:1", "negative", None, 5)]
    assert "'text_length' must be an array of 2 integers" in orjson.loads(bad[0])["_q"]


def test_partition_values_are_path_safe_and_time_is_utc() -> None:
    assert safe_partition_value("v1/../x y") == "v1_.._x_y"
    assert safe_partition_value("..") == "_"
    table = pa.table({"environment": ["prod", "a/b", "prod", None], "model_version": ["7", "7", "7", "7"],
                      "ts": [0.0, 25 * 3600.0, 1.0, 0.0]})
    assert {k: v.tolist() for k, v in partitions(table).items()} == {
        ("prod", "7", "1970-01-01", "00"): [0, 2], ("a_b", "7", "1970-01-02", "01"): [1],
        ("unknown", "7", "1970-01-01", "00"): [3]}


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


def _half(kind: str, ce_id: str, body: object, when: float = 10.0) -> dict:
    headers = {"ce-id": ce_id, "ce-type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
               "ce-source": "http://sentiment-predictor", "ce-inferenceservicename": "sentiment",
               "ce-specversion": "1.0", "content-type": "application/json"}
    return make_half(headers, orjson.dumps(body), when)


def test_cloudevents_v1_join_request_with_response_in_either_order() -> None:
    joiner = Joiner(DEFAULTS, ttl_s=60, max_pending=10)
    lines, _ = joiner.offer(_half("response", "a", {"predictions": [
        {"label": "positive", "probabilities": {"negative": 0.1, "neutral": 0.1, "positive": 0.8}},
        [0.7, 0.2, 0.1]]}))
    assert orjson.loads(lines[0])["_h"] == "response" and len(joiner) == 1
    lines, _ = joiner.offer(_half("request", "a", {"instances": ["great flight", {"text": "lost my bag"}]}))
    records = joined_events(lines)
    assert [(r["id"], r["text"], r["label"]) for r in records] == [
        ("a:0", "great flight", "positive"), ("a:1", "lost my bag", "negative")]
    assert records[1]["confidence"] == 0.7 and records[0]["model_version"] == "9"
    assert records[0]["track"] == "canary" and len(joiner) == 0
    assert [r["source"] for r in shipped(lines)] == ["kserve-logger"] * 2


def test_cloudevents_v2_join_reads_tensors_and_model_version() -> None:
    joiner = Joiner(DEFAULTS, ttl_s=60, max_pending=10)
    joiner.offer(_half("request", "b", {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2],
                                                     "data": ["ok", "bad"]}]}))
    lines, _ = joiner.offer(_half("response", "b", {"model_version": "4", "outputs": [
        {"name": "probabilities", "datatype": "FP32", "shape": [2, 3], "data": [0.1, 0.2, 0.7, 0.6, 0.3, 0.1]}]}))
    records = joined_events(lines)
    assert [r["label"] for r in records] == ["positive", "negative"]
    assert {r["model_version"] for r in records} == {"4"} and records[0]["protocol"] == "v2-rest"


def test_cloudevents_that_cannot_join_are_quarantined_or_expire() -> None:
    joiner = Joiner(DEFAULTS, ttl_s=5, max_pending=2)
    joiner.offer(_half("request", "c", {"instances": ["one", "two"]}))
    lines, _ = joiner.offer(_half("response", "c", {"predictions": ["positive"]}))
    assert "1 predictions for 2 texts" in orjson.loads(lines[0])["_q"]
    joiner.offer(_half("request", "d", {"instances": ["x"]}, when=0.0))
    assert [orjson.loads(x)["_q"] for x in joiner.expire(now=100.0)] == ["unjoined CloudEvent request after 5s"]
    _, evicted = joiner.offer(_half("request", "e", {"instances": ["x"]}))
    _, evicted = joiner.offer(_half("request", "f", {"instances": ["x"]}))
    _, evicted = joiner.offer(_half("request", "g", {"instances": ["x"]}))
    assert len(evicted) == 1 and len(joiner) == 2
    with pytest.raises(MalformedInput, match="neither"):
        make_half({"ce-id": "h", "ce-type": "dev.knative.other"}, b"{}", 0.0)
    with pytest.raises(MalformedInput, match="ce-id"):
        make_half({"ce-type": REQUEST_TYPE}, b"{}", 0.0)


def test_spool_recovery_cuts_a_torn_line_and_enforces_its_budget(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "t", segment_max_bytes=1 << 20, segment_max_age_s=60, max_bytes=4096)
    spool.append([b'{"a":1}', b'{"a":2}'])
    open_file = next(tmp_path.glob("*.open"))
    with open_file.open("ab") as fh:
        fh.write(b'{"a":3, "torn')
    spool.close()
    again = Spool(tmp_path, "t", segment_max_bytes=1 << 20, segment_max_age_s=60, max_bytes=4096)
    segments = again.recover()
    assert len(segments) == 1 and segments[0].path.read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert again.pending_records == 2
    with pytest.raises(SpoolFull):
        again.append([b"x" * 5000])


def test_http_status_codes(tmp_path: Path) -> None:
    settings = ShipSettings(spool_dir=tmp_path / "spool", sink_dir=tmp_path / "sink", max_body_bytes=2048,
                            spool_max_bytes=65536, segment_max_age_s=600)
    with TestClient(create_app(settings)) as client:
        ndj = {"content-type": "application/x-ndjson"}
        assert client.post("/v1/events", content=b"{}", headers={"content-type": "text/csv"}).status_code == 415
        assert client.post("/v1/events", content=b"x" * 4096, headers=ndj).status_code == 413
        bad = client.post("/v1/events", content=b"nope\n", headers=ndj)
        assert bad.status_code == 400 and bad.json()["quarantined"] == 1
        ok = client.post("/v1/events", content=ndjson(events(2)), headers=ndj)
        assert ok.status_code == 202 and ok.json() == {"accepted": 2, "quarantined": 0}
        assert client.post("/", content=b"{}", headers={"ce-id": "z"}).status_code == 400
        while (r := client.post("/v1/events", content=ndjson(events(3)), headers=ndj)).status_code == 202:
            pass
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert client.get("/readyz").status_code == 200 and client.get("/healthz").status_code == 200
        assert "ks_ship_requests_rejected_total{reason=\"spool_full\"}" in client.get("/metrics").text


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
    joiner = Joiner(DEFAULTS, ttl_s=60, max_pending=10)
    joiner.offer(_half("request", "k", {"instances": ["fine", "bad"]}))
    lines, _ = joiner.offer(_half("response", "k", {"predictions": ["positive", "negative"]}))
    rows = shipped(lines)
    assert [(r["label"], r["probabilities"], r["confidence"]) for r in rows] == [
        ("positive", [], None), ("negative", [], None)]


def test_a_segment_that_cannot_be_shipped_is_set_aside_not_blocking(tmp_path: Path) -> None:
    from serving.shipper.app import build_shipper

    settings = ShipSettings(spool_dir=tmp_path / "spool", sink_dir=tmp_path / "sink")
    shipper = build_shipper(settings)
    shipper.spool.recover()
    shipper.spool.append([b'{"_t": 1.0, "_s": "predictor"}', b'{"no_id": true}'])  # bypasses validation
    shipper.spool.seal()
    lines, _, _ = parse_ndjson(ndjson(events(3)), 2.0)
    shipper.spool.append(lines)
    shipper.spool.seal()
    assert shipper.flusher.ship_ready() is True
    assert len(list((tmp_path / "spool").glob("*.poison"))) == 1 and not shipper.spool.ready_segments()
    assert len(list((tmp_path / "sink").rglob("*.parquet"))) == 1
    shipper.spool.close()


def test_a_cloudevent_half_spooled_before_a_restart_still_joins(tmp_path: Path) -> None:
    from serving.shipper.app import build_shipper

    settings = ShipSettings(spool_dir=tmp_path / "spool", sink_dir=tmp_path / "sink", environment="test")
    first = build_shipper(settings)
    first.spool.recover()
    first.spool.carry_forward = first.joiner.pending_lines
    now = time.time()  # recent, or the restarted flusher would expire the half at once
    lines, _ = first.joiner.offer(_half("request", "r1", {"instances": ["on time for once"]}, when=now))
    first.spool.append(lines)
    first.spool.seal()  # sealed: the half is carried into the next segment as well
    first.spool.close()  # "crash": nothing shipped, the joiner's memory is gone

    second = build_shipper(settings)
    second.start()
    try:
        assert len(second.joiner) == 1
        joined, _ = second.joiner.offer(_half("response", "r1", {"predictions": [
            {"label": "positive", "probabilities": {"negative": 0.1, "neutral": 0.1, "positive": 0.8}}]}, when=now))
        second.spool.append(joined)
    finally:
        second.stop()
    table = pq.read_table(next((tmp_path / "sink").rglob("*.parquet")))
    assert table.column("id").to_pylist() == ["r1:0"] and table.column("source").to_pylist() == ["kserve-logger"]
