"""The real predictor process driven by real clients: httpx for REST, KServe's own ``InferenceGRPCClient`` for gRPC."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from sklearn.pipeline import Pipeline

from model.data import Split
from serving.eventlog.events import validate_event
from tests.support import wait_until
from tests.support.events import journal_events
from tests.support.servers import Predictor

pytestmark = pytest.mark.integration

V1 = "/v1/models/sentiment:predict"
EXPLAIN = "/v1/models/sentiment:explain"
V2 = "/v2/models/sentiment/infer"
CLASSES = ["negative", "neutral", "positive"]


def v2_body(texts: list, datatype: str = "BYTES", shape: list | None = None, name: str = "text") -> dict:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape or [len(texts)], "data": texts}]}


async def grpc_infer(predictor: Predictor, texts: list, model: str = "sentiment", datatype: str = "BYTES",
                     shape: list | None = None, request_id: str = "", name: str = "text",
                     version: str | None = None) -> object:
    client = InferenceGRPCClient(predictor.grpc, retries=0, timeout=10)
    try:
        tensor = InferInput(name=name, shape=shape or [len(texts)], datatype=datatype, data=texts)
        return await client.infer(InferRequest(model_name=model, infer_inputs=[tensor], request_id=request_id,
                                               model_version=version))
    finally:
        await client.close()


def grpc_error(predictor: Predictor, texts: list, **kwargs: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        asyncio.run(grpc_infer(predictor, texts, **kwargs))  # type: ignore[arg-type]
    return caught.value


def test_all_three_protocols_agree_with_sklearn(predictor: Predictor, tiny_pipeline: Pipeline,
                                                corpus_split: Split) -> None:
    texts = corpus_split.holdout["text"].tolist()[:16]
    expected = tiny_pipeline.predict_proba(texts)
    expected_labels = [CLASSES[i] for i in expected.argmax(axis=1)]

    v1 = httpx.post(predictor.http + V1, json={"instances": texts}, timeout=10)
    assert v1.status_code == 200, v1.text
    body = v1.json()
    assert body["model_name"] == "sentiment" and body["model_version"] == "3"
    v1_probs = np.array([[p["probabilities"][c] for c in CLASSES] for p in body["predictions"]])
    assert [p["label"] for p in body["predictions"]] == expected_labels
    assert np.abs(v1_probs - expected).max() <= 1e-9

    v2 = httpx.post(predictor.http + V2, json={"id": "req-v2", **v2_body(texts)}, timeout=10)
    assert v2.status_code == 200, v2.text
    assert v2.headers["content-type"] == "application/json" and v2.headers["x-request-id"] == "req-v2"
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    assert v2.json()["id"] == "req-v2" and v2.json()["model_version"] == "3"
    assert outputs["label"]["datatype"] == "BYTES" and outputs["label"]["shape"] == [16]
    assert outputs["label"]["data"] == expected_labels
    assert outputs["probabilities"]["datatype"] == "FP32" and outputs["probabilities"]["shape"] == [16, 3]
    v2_probs = np.array(outputs["probabilities"]["data"], dtype=np.float64).reshape(16, 3)
    assert np.abs(v2_probs - expected).max() <= 1e-6  # FP32 on the wire

    response = asyncio.run(grpc_infer(predictor, texts, request_id="req-grpc"))
    grpc_outputs = {o.name: o for o in response.outputs}  # type: ignore[attr-defined]
    labels = [x.decode() if isinstance(x, bytes) else x for x in grpc_outputs["label"].as_numpy().tolist()]
    assert labels == expected_labels
    grpc_probs = grpc_outputs["probabilities"].as_numpy().astype(np.float64)
    assert grpc_probs.shape == (16, 3)
    assert np.abs(grpc_probs - expected).max() <= 1e-6
    assert np.array_equal(grpc_probs, v2_probs)
    assert response.id == "req-grpc"  # type: ignore[attr-defined]


def test_grpc_binary_tensors_from_numpy(predictor: Predictor, tiny_pipeline: Pipeline, corpus_split: Split) -> None:
    """The KServe client's default ``set_data_from_numpy`` sends raw_input_contents and expects raw outputs."""
    texts = corpus_split.holdout["text"].tolist()[:8]

    async def call() -> object:
        client = InferenceGRPCClient(predictor.grpc, retries=0, timeout=10)
        try:
            tensor = InferInput(name="text", shape=[len(texts)], datatype="BYTES")
            tensor.set_data_from_numpy(np.array(texts, dtype=object))
            return await client.infer(InferRequest(model_name="sentiment", infer_inputs=[tensor]))
        finally:
            await client.close()

    outputs = {o.name: o for o in asyncio.run(call()).outputs}  # type: ignore[attr-defined]
    probs = outputs["probabilities"].as_numpy().astype(np.float64).reshape(len(texts), 3)
    assert np.abs(probs - tiny_pipeline.predict_proba(texts)).max() <= 1e-6
    labels = [x.decode() if isinstance(x, bytes) else x for x in outputs["label"].as_numpy().tolist()]
    assert labels == [CLASSES[i] for i in probs.argmax(axis=1)]


def test_v2_rest_binary_outputs_for_several_texts(predictor: Predictor, tiny_pipeline: Pipeline,
                                                  corpus_split: Split) -> None:
    """``binary_data_output``: the JSON header names each output's ``binary_data_size``; the raw tensors follow."""
    texts = corpus_split.holdout["text"].tolist()[:5]
    body = {**v2_body(texts), "parameters": {"binary_data_output": True}}
    r = httpx.post(predictor.http + V2, json=body, timeout=10)
    assert r.status_code == 200, r.text
    length = int(r.headers["inference-header-content-length"])
    assert r.headers["content-type"] == "application/octet-stream"
    header, raw = orjson.loads(r.content[:length]), r.content[length:]
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert [o["name"] for o in header["outputs"]] == ["label", "probabilities", "id"] and sum(sizes) == len(raw)
    probs = np.frombuffer(raw[sizes[0] : sizes[0] + sizes[1]], dtype="<f4").reshape(5, 3).astype(np.float64)
    assert np.abs(probs - tiny_pipeline.predict_proba(texts)).max() <= 1e-6
    labels, at = [], 0
    while at < sizes[0]:
        n = int.from_bytes(raw[at : at + 4], "little")
        labels.append(raw[at + 4 : at + 4 + n].decode())
        at += 4 + n
    assert labels == [CLASSES[i] for i in probs.argmax(axis=1)]


def test_v2_rest_accepts_n_by_1_shape_and_charset_content_type(predictor: Predictor) -> None:
    r = httpx.post(predictor.http + V2, json=v2_body([["good"], ["bad"]], shape=[2, 1]), timeout=10)
    assert r.status_code == 200, r.text
    v1 = httpx.post(predictor.http + V1, content=b'{"instances": ["good"]}',
                    headers={"content-type": "application/json; charset=utf-8"}, timeout=10)
    assert v1.status_code == 200, v1.text


V1_BAD = [
    ("empty instances", b'{"instances": []}', "application/json", "is empty"),
    ("non-string item", b'{"instances": ["ok", 7]}', "application/json", "instances[1] is a number"),
    ("empty text", b'{"instances": [""]}', "application/json", "instances[0] is empty or only whitespace"),
    ("whitespace text", b'{"instances": [" \\t\\n "]}', "application/json", "empty or only whitespace"),
    ("text too long", b'{"instances": ["' + b"a" * 201 + b'"]}', "application/json", "201 characters; at most 200"),
    ("too many texts", b'{"instances": [' + b",".join([b'"t"'] * 17) + b"]}", "application/json",
     "17 texts; at most 16"),
    ("instances not a list", b'{"instances": "text"}', "application/json", '"instances" is a string'),
    ("no instances", b'{"inputs": ["text"]}', "application/json", 'no "instances"'),
    ("body not an object", b'["text"]', "application/json", "the body is an array"),
    ("malformed JSON", b'{"instances": ["unterminated', "application/json", "Unrecognized request format"),
    ("not UTF-8", b'{"instances": ["\xff\xfe"]}', "application/json", "Unrecognized request format"),
    ("not UTF-8, charset type", b'{"instances": ["\xff\xfe"]}', "application/json; charset=utf-8",
     "not valid JSON"),
    ("wrong content type", b"just some text", "text/plain", "content type 'text/plain' is not supported"),
    ("lone surrogate", b'{"instances": ["ok", "\\ud800"]}', "application/json", "surrogate"),
    ("lone surrogate, charset type", b'{"instances": ["\\udfff x"]}', "application/json; charset=utf-8",
     "surrogate"),
    ("a JSON string", b'"hello"', "application/json", "the body is a string; send a JSON object"),
    ("a JSON number", b"42", "application/json", "the body is a number"),
    ("JSON null", b"null", "application/json", "the body is null"),
]


@pytest.mark.parametrize(("case", "body", "content_type", "message"), V1_BAD, ids=[c[0] for c in V1_BAD])
def test_v1_bad_input_is_400_with_a_message(predictor: Predictor, case: str, body: bytes, content_type: str,
                                            message: str) -> None:
    r = httpx.post(predictor.http + V1, content=body, headers={"content-type": content_type}, timeout=10)
    assert r.status_code == 400, (case, r.status_code, r.text)
    assert message in r.json()["error"], r.text


def test_explain_answers_the_prediction_and_exact_contributions(predictor: Predictor,
                                                                tiny_pipeline: Pipeline) -> None:
    texts = ["my flight is at 5pm", "not bad at all!!!", "I hate driverless cars"]
    r = httpx.post(predictor.http + EXPLAIN, json={"instances": texts}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    predicted = httpx.post(predictor.http + V1, json={"instances": texts}, timeout=10).json()
    assert body["model_version"] == predicted["model_version"] == "3"
    scores = tiny_pipeline.decision_function(texts)
    for i, (explained, plain) in enumerate(zip(body["predictions"], predicted["predictions"], strict=True)):
        assert explained["label"] == plain["label"] and explained["probabilities"] == plain["probabilities"]
        assert list(explained["explanation"]) == CLASSES
        for c, cls in enumerate(CLASSES):
            e = explained["explanation"][cls]
            assert 0 < len(e["contributions"]) <= 10
            total = e["intercept"] + sum(f["contribution"] for f in e["contributions"]) + e["rest"]
            assert abs(total - e["logit"]) <= 1e-9 and abs(e["logit"] - scores[i, c]) <= 1e-9
            assert {"feature", "kind", "value", "weight", "contribution"} == set(e["contributions"][0])


@pytest.mark.parametrize(("case", "body", "content_type", "message"), V1_BAD, ids=[c[0] for c in V1_BAD])
def test_explain_bad_input_is_400_like_predict(predictor: Predictor, case: str, body: bytes, content_type: str,
                                               message: str) -> None:
    r = httpx.post(predictor.http + EXPLAIN, content=body, headers={"content-type": content_type}, timeout=10)
    assert r.status_code == 400, (case, r.status_code, r.text)
    assert message in r.json()["error"], r.text


V2_BAD = [
    ("wrong datatype", v2_body([1.5], datatype="FP32"), "datatype FP32; expected BYTES"),
    ("wrong shape", v2_body(["a", "b"], shape=[2, 2]), "shape [2, 2]"),
    ("shape and data disagree", v2_body(["a"], shape=[3]), "shape [3] but 1 items"),
    ("empty text", v2_body(["ok", "   "]), "input 'text'[1] is empty or only whitespace"),
    ("non-string item", v2_body(["ok", 3]), "input 'text'[1] is a number"),
    ("empty input", v2_body([], shape=[0]), "is empty"),
    ("too many texts", v2_body(["t"] * 17), "17 texts; at most 16"),
    ("text too long", v2_body(["a" * 201]), "201 characters"),
    ("two inputs", {"inputs": [v2_body(["a"], name="x")["inputs"][0], v2_body(["b"], name="y")["inputs"][0]]},
     "expected one input named 'text' (BYTES, shape [n]); got 2 inputs ['x', 'y']"),
    ("an extra input", {"inputs": [v2_body(["a"])["inputs"][0], v2_body(["b"], name="extra")["inputs"][0]]},
     "got 2 inputs ['text', 'extra']"),
    ("unknown input name", v2_body(["a"], name="sentence"), "expected one input named 'text' (BYTES, shape [n]); "
     "got input 'sentence'"),
    ("no input", {"inputs": []}, "got 0 inputs []"),
    ("inputs not a list", {"inputs": "text"}, "inputs: Input should be a valid list"),
]


@pytest.mark.parametrize(("case", "body", "message"), V2_BAD, ids=[c[0] for c in V2_BAD])
def test_v2_rest_bad_input_is_400_with_a_message(predictor: Predictor, case: str, body: dict, message: str) -> None:
    r = httpx.post(predictor.http + V2, json=body, timeout=10)
    assert r.status_code == 400, (case, r.status_code, r.text)
    assert message in r.json()["error"], r.text


@pytest.mark.parametrize(
    ("case", "body", "content_type", "message"),
    [
        ("lone surrogate", b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["ok", '
         b'"\\ud800"]}]}', "application/json", "input 'text'[1] is not valid Unicode: a lone surrogate U+D800"),
        ("malformed JSON", b'{"inputs": [', "application/json", "JSON decode error"),
        ("not UTF-8", b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["\xff"]}]}',
         "application/json", "must be UTF-8 JSON"),
        ("wrong content type", b"text", "text/plain", "inference-header-content-length"),
    ],
    ids=["lone-surrogate", "malformed-json", "not-utf8", "wrong-content-type"],
)
def test_v2_rest_unparseable_body_is_400(predictor: Predictor, case: str, body: bytes, content_type: str,
                                         message: str) -> None:
    r = httpx.post(predictor.http + V2, content=body, headers={"content-type": content_type}, timeout=10)
    assert r.status_code == 400, (case, r.status_code, r.text)
    assert message in r.json()["error"], r.text


def test_unknown_model_is_404_and_not_found(predictor: Predictor) -> None:
    for path in ("/v1/models/nope:predict", "/v2/models/nope/infer"):
        body = {"instances": ["a"]} if path.startswith("/v1") else v2_body(["a"])
        r = httpx.post(predictor.http + path, json=body, timeout=10)
        assert r.status_code == 404, r.text
        assert "nope" in r.json()["error"]
    err = grpc_error(predictor, [b"a"], model="nope")
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in (err.details() or "")


def test_a_version_other_than_the_served_one_is_not_found_and_the_served_one_answers(predictor: Predictor) -> None:
    versioned = "/v2/models/sentiment/versions"
    r = httpx.post(f"{predictor.http}{versioned}/99/infer", json=v2_body(["hi"]), timeout=10)
    assert r.status_code == 404, r.text
    assert r.json()["error"] == ("model 'sentiment' has no version '99' on this server; it serves version '3' "
                                 "(or leave the version out)")
    for path in (f"{versioned}/99", f"{versioned}/99/ready"):
        assert httpx.get(predictor.http + path, timeout=10).status_code == 404
    r = httpx.post(f"{predictor.http}{versioned}/3/infer", json=v2_body(["hi"]), timeout=10)
    assert r.status_code == 200 and r.json()["model_version"] == "3", r.text
    assert httpx.get(f"{predictor.http}{versioned}/3", timeout=10).json()["versions"] == ["3"]
    assert httpx.get(f"{predictor.http}{versioned}/3/ready", timeout=10).json() == {"name": "sentiment",
                                                                                    "ready": True}
    assert httpx.get(f"{predictor.http}/v2/models/nope/versions/3/ready", timeout=10).status_code == 404

    err = grpc_error(predictor, [b"hi"], version="99")
    assert err.code() == grpc.StatusCode.NOT_FOUND and "it serves version '3'" in (err.details() or "")
    assert asyncio.run(grpc_infer(predictor, [b"hi"], version="3")).model_version == "3"  # type: ignore[attr-defined]


def test_a_bad_binary_extension_header_is_400_and_the_connection_stays_open(predictor: Predictor) -> None:
    good = orjson.dumps(v2_body(["fine words"]))
    binary = {"content-type": "application/octet-stream"}
    with httpx.Client(base_url=predictor.http, timeout=10) as client:
        for value in ("abc", "-3", "1e3", "", str(len(good) + 1)):
            r = client.post(V2, content=good, headers=binary | {"inference-header-content-length": value})
            assert r.status_code == 400, (value, r.text)
            assert "inference-header-content-length" in r.json()["error"] and r.headers.get("connection") != "close"
        for header, message in ((b'{"id": "x"}', "inputs: Field required"),
                                (b'[1, 2]', "Input should be a valid dictionary"),
                                (b'{"inputs": [{"datatype": "BYTES"}]}', "inputs.0.name: Field required"),
                                (b'{"inputs": [', "is not valid JSON")):
            r = client.post(V2, content=header, headers=binary | {"inference-header-content-length": str(len(header))})
            assert r.status_code == 400 and message in r.json()["error"], r.text
        r = client.post(V2, content=good, headers=binary | {"inference-header-content-length": str(len(good))})
        assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [1], r.text


def test_only_post_reaches_predict(predictor: Predictor) -> None:
    for method in ("GET", "PUT", "DELETE"):
        r = httpx.request(method, predictor.http + V1, timeout=10)
        assert r.status_code == 405 and r.headers["allow"] == "POST", (method, r.text)
        assert f"{method} is not allowed" in r.json()["error"]
    assert httpx.get(predictor.http + V2, timeout=10).status_code == 405
    assert httpx.get(predictor.http + "/v1/models/sentiment", timeout=10).status_code == 200  # V1 metadata


def test_grpc_answers_every_form_of_the_same_texts_alike_and_takes_the_request_id_from_metadata(
    predictor: Predictor,
) -> None:
    """The plain form (``contents``, shape ``[n]``) is answered straight from the message, every other form through
    KServe's conversion (``serving.server``): the answers must not differ, and a message without an id takes the
    call's ``x-request-id`` metadata, as REST takes the header."""
    texts = [b"what a wonderful evening", b"the train was late again"]
    tensor = pb.ModelInferRequest.InferInputTensor
    plain = tensor(name="text", datatype="BYTES", shape=[2], contents=pb.InferTensorContents(bytes_contents=texts))
    column = tensor(name="text", datatype="BYTES", shape=[2, 1], contents=pb.InferTensorContents(bytes_contents=texts))
    raw = b"".join(len(t).to_bytes(4, "little") + t for t in texts)

    async def infer(request: pb.ModelInferRequest, metadata: tuple = ()) -> pb.ModelInferResponse:
        async with grpc.aio.insecure_channel(predictor.grpc) as channel:
            return await GRPCInferenceServiceStub(channel).ModelInfer(request, metadata=metadata, timeout=10)

    answers = [
        asyncio.run(infer(pb.ModelInferRequest(model_name="sentiment", id="same", inputs=[plain]))),
        asyncio.run(infer(pb.ModelInferRequest(model_name="sentiment", id="same", inputs=[column]))),
        asyncio.run(infer(pb.ModelInferRequest(model_name="sentiment", id="same", raw_input_contents=[raw],
                                               inputs=[tensor(name="text", datatype="BYTES", shape=[2])]))),
    ]
    assert answers[0].SerializeToString() == answers[1].SerializeToString() == answers[2].SerializeToString()
    assert [o.name for o in answers[0].outputs] == ["label", "probabilities", "id"]

    tagged = asyncio.run(infer(pb.ModelInferRequest(model_name="sentiment", inputs=[plain]),
                               (("x-request-id", "from-metadata"),)))
    assert tagged.id == "from-metadata" and tagged.raw_output_contents[2].endswith(b"from-metadata:1")
    anonymous = asyncio.run(infer(pb.ModelInferRequest(model_name="sentiment", inputs=[plain])))
    assert re.fullmatch(r"[0-9a-f]{32}", anonymous.id), anonymous.id


def test_grpc_methods_other_than_infer_keep_kserves_status_codes(predictor: Predictor) -> None:
    async def call(method: str, request: object) -> object:
        async with grpc.aio.insecure_channel(predictor.grpc) as channel:
            return await getattr(GRPCInferenceServiceStub(channel), method)(request, timeout=10)

    assert asyncio.run(call("ServerReady", pb.ServerReadyRequest())).ready  # type: ignore[attr-defined]
    assert asyncio.run(call("ModelReady", pb.ModelReadyRequest(name="sentiment"))).ready  # type: ignore[attr-defined]
    for method, request in (("ModelMetadata", pb.ModelMetadataRequest(name="nope")),
                            ("ModelReady", pb.ModelReadyRequest(name="nope"))):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            asyncio.run(call(method, request))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in (caught.value.details() or ""), method


def test_grpc_texts_in_the_wrong_contents_field_are_named(predictor: Predictor) -> None:
    async def infer(tensor: pb.ModelInferRequest.InferInputTensor) -> None:
        async with grpc.aio.insecure_channel(predictor.grpc) as channel:
            await GRPCInferenceServiceStub(channel).ModelInfer(
                pb.ModelInferRequest(model_name="sentiment", inputs=[tensor]), timeout=10)

    tensor = pb.ModelInferRequest.InferInputTensor
    cases = [
        (tensor(name="text", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(fp32_contents=[1.0])),
         "input 'text' has shape [1] but no BYTES data; send the texts in"),
        (tensor(name="text", datatype="FP32", shape=[1], contents=pb.InferTensorContents(bytes_contents=[b"hi"])),
         "input 'text' has datatype FP32; expected BYTES"),
    ]
    for request, message in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            asyncio.run(infer(request))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (caught.value.details() or ""), caught.value.details()


@pytest.mark.parametrize(
    ("case", "kwargs", "message"),
    [
        ("wrong datatype", {"texts": [1.5], "datatype": "FP32"}, "datatype FP32; expected BYTES"),
        ("wrong shape", {"texts": [b"a", b"b"], "shape": [1, 2]}, "shape [1, 2]"),
        ("not UTF-8", {"texts": [b"ok", b"\xff\xfe"]}, "input 'text'[1] is not valid UTF-8"),
        ("empty text", {"texts": [b""]}, "empty or only whitespace"),
        ("too many texts", {"texts": [b"t"] * 17}, "17 texts; at most 16"),
        ("lone surrogate", {"texts": [b"\xed\xa0\x80"]}, "input 'text'[0] is not valid UTF-8"),
        ("unknown input name", {"texts": [b"a"], "name": "sentence"}, "expected one input named 'text'"),
    ],
    ids=["wrong-datatype", "wrong-shape", "not-utf8", "empty-text", "too-many", "lone-surrogate", "input-name"],
)
def test_grpc_bad_input_is_invalid_argument(predictor: Predictor, case: str, kwargs: dict, message: str) -> None:
    err = grpc_error(predictor, **kwargs)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (case, err)
    assert message in (err.details() or ""), err.details()


def test_server_keeps_serving_after_bad_input(predictor: Predictor) -> None:
    for body in (b"{", b'{"instances": [null]}', b"\xff" * 10):
        httpx.post(predictor.http + V1, content=body, timeout=10)
    r = httpx.post(predictor.http + V1, json={"instances": ["still here"]}, timeout=10)
    assert r.status_code == 200
    assert predictor.process.poll() is None


def test_metadata_names_inputs_outputs_classes_and_version(predictor: Predictor) -> None:
    meta = httpx.get(predictor.http + "/v2/models/sentiment", timeout=10).json()
    assert meta["name"] == "sentiment" and meta["versions"] == ["3"]
    assert meta["platform"] == "kube-sentiment/sklearn;version=3;classes=negative,neutral,positive"
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "id", "datatype": "BYTES", "shape": [-1]},
    ]

    async def grpc_meta() -> pb.ModelMetadataResponse:
        async with grpc.aio.insecure_channel(predictor.grpc) as channel:
            return await GRPCInferenceServiceStub(channel).ModelMetadata(pb.ModelMetadataRequest(name="sentiment"))

    g = asyncio.run(grpc_meta())
    assert g.platform == meta["platform"]
    assert [(t.name, t.datatype, list(t.shape)) for t in g.outputs] == [
        ("label", "BYTES", [-1]), ("probabilities", "FP32", [-1, 3]), ("id", "BYTES", [-1])]


def test_liveness_and_readiness(predictor: Predictor) -> None:
    assert httpx.get(predictor.http + "/", timeout=5).json() == {"status": "alive"}
    assert httpx.get(predictor.http + "/v2/health/live", timeout=5).json() == {"live": True}
    assert httpx.get(predictor.http + "/v2/health/ready", timeout=5).json() == {"ready": True}
    assert httpx.get(predictor.http + "/v2/models/sentiment/ready", timeout=5).status_code == 200

    async def grpc_ready() -> tuple[bool, bool, bool]:
        client = InferenceGRPCClient(predictor.grpc, retries=0, timeout=5)
        try:
            return (await client.is_server_live(), await client.is_server_ready(),
                    await client.is_model_ready("sentiment"))
        finally:
            await client.close()

    assert asyncio.run(grpc_ready()) == (True, True, True)


def test_health_checks_answer_while_the_server_is_busy(predictor: Predictor) -> None:
    texts = [f"text number {i} is rather long and full of words to tokenise " * 3 for i in range(16)]

    async def run() -> list[float]:
        async with httpx.AsyncClient(base_url=predictor.http, timeout=30) as client:
            stop_at = time.monotonic() + 1.5

            async def load() -> None:
                while time.monotonic() < stop_at:
                    r = await client.post(V1, json={"instances": texts})
                    assert r.status_code == 200

            async def probe() -> list[float]:
                waits = []
                while time.monotonic() < stop_at:
                    started = time.monotonic()
                    assert (await client.get("/v2/health/live")).status_code == 200
                    waits.append(time.monotonic() - started)
                    await asyncio.sleep(0.05)  # probe period
                return waits

            results = await asyncio.gather(probe(), *[load() for _ in range(8)])
            return results[0]

    waits = asyncio.run(run())
    assert waits
    assert max(waits) < 2.0, waits  # bounded by one micro-batch step, not by the queue


def test_metrics_count_requests_latency_batches_and_classes(predictor: Predictor) -> None:
    httpx.post(predictor.http + V1, json={"instances": ["good", "bad"]}, timeout=10)
    httpx.post(predictor.http + V1, json={"instances": []}, timeout=10)
    text = httpx.get(predictor.http + "/metrics", timeout=10).text
    labels = 'model_name="sentiment",model_version="3"'
    assert re.search(rf'kube_sentiment_requests_total\{{{labels},protocol="v1",status="ok",track="canary"}} [1-9]',
                     text)
    assert re.search(rf'kube_sentiment_requests_total\{{{labels},protocol="v1",status="invalid_argument",'
                     rf'track="canary"}} [1-9]', text)
    assert f'kube_sentiment_request_latency_seconds_count{{{labels},protocol="v1"}}' in text
    assert f"kube_sentiment_batch_texts_count{{{labels}}}" in text
    assert re.search(rf'kube_sentiment_predictions_total\{{label="\w+",{labels},track="canary"}} [1-9]', text)
    assert 'inference_path="fast"' in text and "kube_sentiment_model_info" in text
    assert re.search(rf'kube_sentiment_events_total\{{{labels},outcome="written"}} [1-9]', text)


def test_every_prediction_becomes_an_event(predictor: Predictor) -> None:
    texts = ["events are a contract", "second text"]
    r = httpx.post(predictor.http + V1, json={"instances": texts}, headers={"x-request-id": "evt-v1"}, timeout=10)
    assert r.status_code == 200
    response = asyncio.run(grpc_infer(predictor, [t.encode() for t in texts], request_id="evt-grpc"))
    grpc_ids = next(o for o in response.outputs if o.name == "id").as_numpy().tolist()  # type: ignore[attr-defined]
    assert [i.decode() if isinstance(i, bytes) else i for i in grpc_ids] == ["evt-grpc:0", "evt-grpc:1"]
    assert [p["id"] for p in r.json()["predictions"]] == ["evt-v1:0", "evt-v1:1"]  # the ids the events carry

    def mine() -> list[dict]:
        assert predictor.events_dir is not None
        return [e for e in journal_events(predictor.events_dir) if e["request_id"] in ("evt-v1", "evt-grpc")]

    wait_until(lambda: len(mine()) == 4, 20, "4 prediction events in the journal")
    by_id = {e["id"]: validate_event(e) for e in mine()}
    assert set(by_id) == {"evt-v1:0", "evt-v1:1", "evt-grpc:0", "evt-grpc:1"}
    first = by_id["evt-v1:0"]
    assert first["protocol"] == "v1" and by_id["evt-grpc:1"]["protocol"] == "v2-grpc"
    assert (first["model_name"], first["model_version"], first["track"], first["environment"]) == (
        "sentiment", "3", "canary", "test")
    assert first["text"] is None  # text logging is off by default
    assert first["text_sha256"] == hashlib.sha256(texts[0].encode()).hexdigest()
    assert first["text_length"] == len(texts[0])
    assert first["label"] == r.json()["predictions"][0]["label"]
    assert first["probabilities"] == pytest.approx(r.json()["predictions"][0]["probabilities"], abs=1e-12)
    assert first["latency_ms"] > 0


def test_client_errors_are_one_info_line_each_and_server_faults_keep_their_traceback(predictor: Predictor) -> None:
    marker = "log-marker-input"
    httpx.post(predictor.http + V2, json=v2_body(["a"], name=marker), timeout=10)
    httpx.post(predictor.http + "/v2/models/sentiment/versions/77/infer", json=v2_body(["a"]), timeout=10)
    grpc_error(predictor, [b"a"], name=marker)

    def refusals() -> list[dict]:
        records = [json.loads(line) for line in predictor.log_text().splitlines() if line.startswith("{")]
        return [r for r in records if marker in r["msg"] or "'77'" in r["msg"]]

    found = wait_until(lambda: len(refusals()) >= 3 and refusals(), 10, "three refusal log lines")
    assert all(r["level"] == "info" and "exc" not in r and r["msg"].startswith("request refused (") for r in found)
    assert {r["status"] for r in found} == {"invalid_argument", "not_found"}
    assert "Traceback" not in predictor.log_text()  # every request of this module so far was the client's fault
    records = [json.loads(line) for line in predictor.log_text().splitlines() if line.startswith("{")]
    assert not [r["msg"][:300] for r in records if r["logger"] == "py.warnings"]  # V1 requests were made before


def run_serving(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", "--http_port", "0", "--grpc_port", "0", *args],
        capture_output=True, text=True, timeout=120, cwd=tmp,
        env={"PATH": "/usr/bin:/bin", "KS_SERVE_EVENTS_DIR": "", "KS_SERVE_JSON_LOGS": "false"},
    )


def test_missing_model_fails_start_up_naming_it(tmp_path: Path) -> None:
    result = run_serving(["--model-dir", str(tmp_path / "nowhere")], tmp_path)
    assert result.returncode == 66, result.stderr
    assert f"model directory {tmp_path / 'nowhere'} does not exist" in result.stderr
