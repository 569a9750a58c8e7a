"""The prediction event contract: request records expand to exactly the events ``make_event`` builds;
broken records are refused naming what is wrong."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from serving.eventlog.events import RequestEncoder, expand_request, make_event, mirrored_event_id, validate_event


@pytest.mark.parametrize("log_text", [True, False])
def test_a_request_record_expands_to_the_contracts_events(log_text: bool) -> None:
    classes = ("negative", "neutral", "positive")
    encoder = RequestEncoder("sentiment", "7", "canary", "staging", classes, log_text)
    texts = ["good", 'quotes " and \\ backslashes', "ünïcödé 😀", "tie"]
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25], [0.3, 0.4, 0.3], [0.4, 0.4, 0.2]])
    line = encoder.line("req-1", 1700000000.25, "v2-grpc", texts, probs, 3.5)
    assert b"\n" not in line
    record = orjson.loads(line)
    assert ("texts" in record) is log_text  # text logging off: the texts never leave the predictor
    expected = [
        make_event(request_id="req-1", index=i, ts=1700000000.25, model_name="sentiment", model_version="7",
                   track="canary", environment="staging", protocol="v2-grpc", text=texts[i], log_text=log_text,
                   classes=classes, probabilities=probs[i], latency_ms=3.5)
        for i in range(4)
    ]
    assert [orjson.loads(event) for event in expand_request(record)] == expected


@pytest.mark.parametrize(("change", "message"), [
    ({"classes": []}, "'classes' must be a non-empty array"),
    ({"probabilities": [[0.5, 0.5]]}, "rows of 3 numbers"),
    ({"text_sha256": ["abc"]}, "'text_sha256' must be an array of 2 strings"),
    ({"text_length": [1, "2"]}, "'text_length' must be an array of 2 integers"),
    ({"request_id": 7}, "'request_id' must be a string"),
    ({"ts": "now"}, "must be numbers"),
    ({"model_version": None}, "'model_version' must be a string"),
])
def test_a_broken_request_record_is_refused_with_what_is_wrong(change: dict, message: str) -> None:
    encoder = RequestEncoder("sentiment", "7", "stable", "test", ("negative", "neutral", "positive"), False)
    record = orjson.loads(encoder.line("r", 1.0, "v1", ["a", "b"], np.full((2, 3), 1 / 3), 1.0))
    with pytest.raises(ValueError, match=message):
        expand_request({**record, **change})
    del record["latency_ms"]
    with pytest.raises(ValueError, match="lacks field"):
        expand_request(record)


def test_a_shadow_record_carries_the_id_of_the_request_it_mirrors() -> None:
    classes = ("negative", "neutral", "positive")
    encoder = RequestEncoder("sentiment", "8", "shadow", "staging", classes, True)
    probs = np.array([[0.1, 0.2, 0.7], [0.6, 0.2, 0.2]])
    record = orjson.loads(encoder.line("shadow-req", 5.0, "v1", ["a", "b"], probs, 1.0, mirror_of="live-req"))
    shadow = [orjson.loads(event) for event in expand_request(record)]
    assert [e["mirror_of"] for e in shadow] == ["live-req", "live-req"]
    assert [e["track"] for e in shadow] == ["shadow", "shadow"]
    assert [mirrored_event_id(e["id"], e["mirror_of"]) for e in shadow] == ["live-req:0", "live-req:1"]
    assert shadow[1] == make_event(request_id="shadow-req", index=1, ts=5.0, model_name="sentiment",
                                   model_version="8", track="shadow", environment="staging", protocol="v1",
                                   text="b", log_text=True, classes=classes, probabilities=probs[1], latency_ms=1.0,
                                   mirror_of="live-req")
    live = orjson.loads(RequestEncoder("sentiment", "7", "stable", "staging", classes, True)
                        .line("live-req", 5.0, "v1", ["a"], probs[:1], 1.0))
    assert "mirror_of" not in live and orjson.loads(expand_request(live)[0])["mirror_of"] is None
    with pytest.raises(ValueError, match="'mirror_of' must be a string"):
        expand_request({**record, "mirror_of": 3})


def test_events_of_older_producers_without_the_optional_fields_stay_valid() -> None:
    event = dict(make_event(request_id="r", index=0, ts=1.0, model_name="sentiment", model_version="1",
                            track="stable", environment="test", protocol="v1", text="x", log_text=False,
                            classes=("a", "b"), probabilities=[0.4, 0.6], latency_ms=1.0))
    del event["mirror_of"]
    assert validate_event(event) == event
    with pytest.raises(ValueError, match="'mirror_of' must be a string"):
        validate_event({**event, "mirror_of": ["x"]})
