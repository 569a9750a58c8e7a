"""KServe payload-logger CloudEvents joined by ce-id, in either order; what cannot join is quarantined or
expires."""

from __future__ import annotations

import orjson
import pytest

from serving.shipper.cloudevents import REQUEST_TYPE, JoinDefaults, Joiner, make_half
from serving.shipper.wire import MalformedInput
from tests.support.events import JOIN_DEFAULTS, cloudevent_half, shipped_events


def joined_events(lines: list[bytes]) -> list[dict]:
    """The events in spool lines made by the joiner (after their batch marker)."""
    assert orjson.loads(lines[0])["_s"] == "kserve-logger"
    return [orjson.loads(line) for line in lines[1:]]


def test_cloudevents_v1_join_request_with_response_in_either_order() -> None:
    joiner = Joiner(JoinDefaults(*JOIN_DEFAULTS), ttl_s=60, max_pending=10)
    lines, _ = joiner.offer(cloudevent_half("response", "a", {"predictions": [
        {"label": "positive", "probabilities": {"negative": 0.1, "neutral": 0.1, "positive": 0.8}},
        [0.7, 0.2, 0.1]]}))
    assert orjson.loads(lines[0])["_h"] == "response" and len(joiner) == 1
    lines, _ = joiner.offer(cloudevent_half("request", "a", {"instances": ["great flight", {"text": "lost my bag"}]}))
    records = joined_events(lines)
    assert [(r["id"], r["text"], r["label"]) for r in records] == [
        ("a:0", "great flight", "positive"), ("a:1", "lost my bag", "negative")]
    assert records[1]["confidence"] == 0.7 and records[0]["model_version"] == "9"
    assert records[0]["track"] == "canary" and len(joiner) == 0
    assert [r["source"] for r in shipped_events(lines)] == ["kserve-logger"] * 2


def test_cloudevents_v2_join_reads_tensors_and_model_version() -> None:
    joiner = Joiner(JoinDefaults(*JOIN_DEFAULTS), ttl_s=60, max_pending=10)
    joiner.offer(cloudevent_half("request", "b", {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2],
                                                     "data": ["ok", "bad"]}]}))
    lines, _ = joiner.offer(cloudevent_half("response", "b", {"model_version": "4", "outputs": [
        {"name": "probabilities", "datatype": "FP32", "shape": [2, 3], "data": [0.1, 0.2, 0.7, 0.6, 0.3, 0.1]}]}))
    records = joined_events(lines)
    assert [r["label"] for r in records] == ["positive", "negative"]
    assert {r["model_version"] for r in records} == {"4"} and records[0]["protocol"] == "v2-rest"


def test_cloudevents_that_cannot_join_are_quarantined_or_expire() -> None:
    joiner = Joiner(JoinDefaults(*JOIN_DEFAULTS), ttl_s=5, max_pending=2)
    joiner.offer(cloudevent_half("request", "c", {"instances": ["one", "two"]}))
    lines, _ = joiner.offer(cloudevent_half("response", "c", {"predictions": ["positive"]}))
    assert "1 predictions for 2 texts" in orjson.loads(lines[0])["_q"]
    joiner.offer(cloudevent_half("request", "d", {"instances": ["x"]}, when=0.0))
    assert [orjson.loads(x)["_q"] for x in joiner.expire(now=100.0)] == ["unjoined CloudEvent request after 5s"]
    _, evicted = joiner.offer(cloudevent_half("request", "e", {"instances": ["x"]}))
    _, evicted = joiner.offer(cloudevent_half("request", "f", {"instances": ["x"]}))
    _, evicted = joiner.offer(cloudevent_half("request", "g", {"instances": ["x"]}))
    assert len(evicted) == 1 and len(joiner) == 2
    with pytest.raises(MalformedInput, match="neither"):
        make_half({"ce-id": "h", "ce-type": "dev.knative.other"}, b"{}", 0.0)
    with pytest.raises(MalformedInput, match="ce-id"):
        make_half({"ce-type": REQUEST_TYPE}, b"{}", 0.0)
