"""The spool's line format: ingest keeps valid events byte for byte behind a batch marker, expands the
predictor's request records and quarantines the rest with the reason."""

from __future__ import annotations

import numpy as np
import orjson

from serving.eventlog.events import RequestEncoder
from serving.shipper.wire import parse_ndjson
from tests.support.events import events, ndjson, shipped_events


def test_parse_ndjson_keeps_valid_events_and_quarantines_the_rest() -> None:
    good = events(3)
    body = ndjson(good) + b"{not json\n" + b'{"schema": "kube-sentiment.prediction/v1"}\n' + b"[1, 2]\n\n"
    lines, bad, n = parse_ndjson(body, 123.0)
    assert n == 3 and len(lines) == 4 and len(bad) == 3
    assert orjson.loads(lines[0]) == {"_t": 123.0, "_s": "predictor"}
    assert lines[1] == ndjson(good[:1]).strip()  # stored byte for byte
    first = shipped_events(lines)[0]
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
    stored = shipped_events(lines)
    assert [(e["id"], e["label"], e["text"], e["text_length"]) for e in stored] == [
        ("req:0", "positive", None, 4), ("req:1", "negative", None, 5)]
    assert "'text_length' must be an array of 2 integers" in orjson.loads(bad[0])["_q"]


def test_an_event_using_a_reserved_key_is_quarantined_not_taken_for_a_spool_line() -> None:
    event = events(1)[0]
    for key in ("_j", "_g"):  # a journal position; a spool group header, which readers drop
        lines, bad, n = parse_ndjson(orjson.dumps({key: 1, **event}) + b"\n", 1.0)
        assert (n, lines) == (0, []) and "reserved key" in orjson.loads(bad[0])["_q"]
