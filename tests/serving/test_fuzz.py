"""Property-based: random Unicode and random JSON against the real predictor's V1 and V2 REST routes never get a 5xx,
and the server still answers a good request correctly afterwards."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.pipeline import Pipeline

from tests.support.servers import Predictor

pytestmark = pytest.mark.integration

V1 = "/v1/models/sentiment:predict"
V2 = "/v2/models/sentiment/infer"
CLASSES = ["negative", "neutral", "positive"]
CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "text/plain", "application/octet-stream",
                 "", "application/x-www-form-urlencoded", "application/cloudevents+json"]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

#: Any JSON value: scalars (with any Unicode, lone surrogates included) nested in arrays and objects.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec=None), max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
texts = st.one_of(st.text(st.characters(codec=None), max_size=40), json_values)
#: Mostly well-formed V1 and V2 bodies with random parts, so the model's own checks are reached, not only the parser.
good_texts = st.lists(st.text(st.characters(codec=None), min_size=1, max_size=40), min_size=1, max_size=16)
v1_bodies = st.one_of(json_values, st.fixed_dictionaries({"instances": st.lists(texts, max_size=20)}),
                      st.fixed_dictionaries({"instances": json_values}),
                      good_texts.map(lambda ts: {"instances": ts}))
v2_tensors = st.fixed_dictionaries({
    "name": st.sampled_from(["text", "texts", ""]) | st.text(max_size=8),
    "datatype": st.sampled_from(["BYTES", "FP32", "INT64", "BOOL", "STRING"]) | st.text(max_size=6),
    "shape": st.lists(st.integers(-2, 20), max_size=3) | json_values,
    "data": st.lists(texts, max_size=20) | json_values,
}, optional={"parameters": json_values})
v2_bodies = st.one_of(json_values, st.fixed_dictionaries({"inputs": st.lists(v2_tensors, max_size=3)},
                                                         optional={"id": json_values, "parameters": json_values,
                                                                   "outputs": json_values}),
                      good_texts.map(lambda ts: {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(ts)],
                                                             "data": ts}]}))


def _encode(body: Any) -> bytes:
    """JSON text of ``body`` with lone surrogates kept as ``\\ud800`` escapes (what a careless client sends)."""
    return json.dumps(body, ensure_ascii=True).encode()


def _good_answer(predictor: Predictor, pipeline: Pipeline) -> None:
    text = "what a lovely flight, thank you"
    expected = pipeline.predict_proba([text])[0]
    v1 = httpx.post(predictor.http + V1, json={"instances": [text]}, timeout=10)
    assert v1.status_code == 200, v1.text
    got = [v1.json()["predictions"][0]["probabilities"][c] for c in CLASSES]
    assert np.abs(np.array(got) - expected).max() <= 1e-9
    v2 = httpx.post(predictor.http + V2, timeout=10,
                    json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]})
    assert v2.status_code == 200, v2.text
    assert predictor.process.poll() is None


@pytest.mark.parametrize("route", ["v1", "v2"])
def test_random_json_and_unicode_never_get_a_5xx(route: str, predictor: Predictor, tiny_pipeline: Pipeline) -> None:
    path, bodies = (V1, v1_bodies) if route == "v1" else (V2, v2_bodies)
    raw = st.one_of(bodies.map(_encode), st.text(st.characters(codec=None), max_size=60).map(
        lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=60))
    seen: list[int] = []

    with httpx.Client(base_url=predictor.http, timeout=10) as client:

        @FUZZ
        @given(body=raw, content_type=st.sampled_from(CONTENT_TYPES))
        def check(body: bytes, content_type: str) -> None:
            r = client.post(path, content=body, headers={"content-type": content_type})
            seen.append(r.status_code)
            assert r.status_code < 500, (body[:300], content_type, r.status_code, r.text[:300])
            if r.status_code >= 400:
                assert r.json()["error"], r.text

        check()
    assert 400 in seen and 200 in seen  # both the refusals and the answers were exercised
    _good_answer(predictor, tiny_pipeline)
