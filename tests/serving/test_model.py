"""The ``kserve.Model`` subclass in process: readiness, the fast path's fallback, concurrent requests,
bad input."""

from __future__ import annotations

import asyncio
import re
import shutil
import weakref
from pathlib import Path

import numpy as np
import orjson
import pytest
from fastapi.encoders import jsonable_encoder
from kserve import InferInput, InferRequest
from kserve.errors import InvalidInput, ModelNotReady
from kserve.model import InferenceVerb
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.rest.v2_datamodels import InferenceResponse
from prometheus_client import CollectorRegistry
from sklearn.pipeline import Pipeline

from model.artifacts import load_model_dir
from serving.errors import NotReady
from serving.fastpath import TABLES_FILE, FastPath
from serving.model import SentimentModel, _plain_grpc_texts
from serving.settings import ServeSettings


def make_model(model_dir: Path, **settings: object) -> SentimentModel:
    model = SentimentModel(
        ServeSettings(model_dir=model_dir, events_dir=None, **settings), registry=CollectorRegistry()
    )
    model.load()
    return model


def test_not_loaded_model_answers_not_ready(tiny_model_dir: Path) -> None:
    model = SentimentModel(ServeSettings(model_dir=tiny_model_dir, events_dir=None), registry=CollectorRegistry())
    assert not model.ready
    with pytest.raises(ModelNotReady, match="not loaded yet"):
        asyncio.run(model({"instances": ["hello"]}))
    model._loading = True
    with pytest.raises(NotReady, match="still loading"):
        model.load()


@pytest.mark.parametrize("fault", ["raises", "disagrees"])
def test_a_failing_fast_path_falls_back_to_sklearn_at_load(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    def broken(self: FastPath, texts: list[str]) -> np.ndarray:
        if fault == "raises":
            raise RuntimeError("kernel exploded")
        return np.zeros((len(texts), 3))

    monkeypatch.setattr(FastPath, "predict_proba", broken)
    model = make_model(tiny_model_dir)
    assert model.ready
    assert model.inference_path == "sklearn"
    response, _ = asyncio.run(model({"instances": ["what a great day"]}))
    assert sum(response["predictions"][0]["probabilities"].values()) == pytest.approx(1.0)


def test_the_fast_path_does_not_keep_the_pipeline_and_explain_reads_it_again(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    (model_dir / TABLES_FILE).unlink()  # built from the pipeline (from the tables it is never unpickled at all)
    pipelines: list[weakref.ref[Pipeline]] = []
    from serving import model as model_module

    def tracked(path: Path, unpickle: bool = True) -> object:
        bundle = load_model_dir(path)
        pipelines.append(weakref.ref(bundle.pipeline))
        return bundle

    monkeypatch.setattr("serving.loader.load_model_dir", tracked)
    monkeypatch.setattr(model_module, "load_model_dir", tracked)
    model = make_model(model_dir)
    assert model.inference_path == "fast"
    # freed by reference counting at once, before the heap is trimmed (no collection needed)
    assert pipelines and pipelines[0]() is None, "the pipeline is kept beside the fast path's tables"

    explained, _ = asyncio.run(model({"instances": ["what a great day"]}, verb=InferenceVerb.EXPLAIN))
    assert len(pipelines) == 2  # read again for the explainer
    predicted, _ = asyncio.run(model({"instances": ["what a great day"]}))
    assert explained["predictions"][0]["probabilities"] == predicted["predictions"][0]["probabilities"]
    assert explained["predictions"][0]["explanation"]
    asyncio.run(model({"instances": ["a second one"]}, verb=InferenceVerb.EXPLAIN))
    assert len(pipelines) == 2  # ... once


def test_the_sklearn_path_explains_with_the_pipeline_it_serves(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    model = make_model(model_dir, fast_path=False)
    shutil.rmtree(model_dir)  # nothing is read again
    explained, _ = asyncio.run(model({"instances": ["what a great day"]}, verb=InferenceVerb.EXPLAIN))
    assert explained["predictions"][0]["explanation"]


def test_concurrent_requests_are_batched_and_answered_correctly(tiny_model_dir: Path,
                                                                 tiny_pipeline: Pipeline) -> None:
    model = make_model(tiny_model_dir, max_batch_texts=8)
    assert model.inference_path == "fast"
    texts = [f"text {i} is {'good' if i % 2 else 'bad'}" for i in range(40)]

    async def run() -> list:
        v1 = [model({"instances": [t]}) for t in texts[:20]]
        v2 = [model(InferRequest("sentiment", [InferInput("text", [1], "BYTES", [t.encode()])], request_id=str(i)))
              for i, t in enumerate(texts[20:])]
        big = model({"instances": texts})  # split over several batches of 8
        return await asyncio.gather(*v1, *v2, big)

    results = asyncio.run(run())
    expected = tiny_pipeline.predict_proba(texts)
    for i, (body, _) in enumerate(results[:20]):
        probs = body["predictions"][0]["probabilities"]
        assert np.abs(np.array([probs[c] for c in model.classes]) - expected[i]).max() <= 1e-9
    for i, (response, _) in enumerate(results[20:40]):
        document = orjson.loads(response)
        out = {o["name"]: o for o in document["outputs"]}
        assert np.abs(np.array(out["probabilities"]["data"]) - expected[20 + i]).max() <= 1e-6
        assert document["id"] == str(i)
    big = results[40][0]["predictions"]
    assert len(big) == 40
    got = np.array([[p["probabilities"][c] for c in model.classes] for p in big])
    assert np.abs(got - expected).max() <= 1e-9


def test_in_process_bad_input_is_invalid_input(tiny_model_dir: Path) -> None:
    model = make_model(tiny_model_dir, max_texts=2, max_text_chars=10)
    for body, message in [
        ({"instances": ["a", "b", "c"]}, "3 texts; at most 2"),
        ({"instances": ["x" * 11]}, "11 characters; at most 10"),
        ({"instances": [None]}, "instances[0] is null"),
        (b"\x00binary", "not valid JSON"),
    ]:
        with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
            asyncio.run(model(body, headers={"content-type": "application/json; charset=utf-8"}
                              if isinstance(body, bytes) else None))


def test_the_v2_rest_json_is_what_kserves_own_conversion_sends(tiny_model_dir: Path) -> None:
    """V2 REST answers are JSON built straight from the arrays: the same document KServe's endpoint sends for the
    V2 response (``to_rest()``, its ``InferenceResponse``, FastAPI's encoding), for one text and for several; with
    a binary-output or requested-outputs request, or a CloudEvent, KServe's own conversion answers."""
    model = make_model(tiny_model_dir)
    for texts in (["what a great day"], ["good", "bad", "the meeting is at noon", "ünïcode ✓", "x" * 500]):
        tensor = InferInput(name="text", shape=[len(texts)], datatype="BYTES", data=texts)
        request = InferRequest(model_name="sentiment", infer_inputs=[tensor], request_id="req-7")
        direct, headers = asyncio.run(model(request))
        assert isinstance(direct, bytes) and headers["x-request-id"] == "req-7"
        probs = model._proba.predict_proba(texts)
        labels = model._classes_arr[probs.argmax(axis=1)]
        document, _ = model._v2_response(request, "req-7", labels, probs).to_rest()
        via_kserve = jsonable_encoder(InferenceResponse.model_validate(document))
        assert orjson.loads(direct) == via_kserve
    binary = InferRequest(model_name="sentiment", request_id="r", parameters={"binary_data_output": True},
                          infer_inputs=[InferInput(name="text", shape=[1], datatype="BYTES", data=["good"])])
    assert not isinstance(asyncio.run(model(binary))[0], bytes)
    cloudevent = InferRequest(model_name="sentiment", request_id="r",
                              infer_inputs=[InferInput(name="text", shape=[1], datatype="BYTES", data=["good"])])
    ce_headers = {"ce-specversion": "1.0", "ce-source": "s", "ce-type": "t", "ce-id": "1"}
    assert not isinstance(asyncio.run(model(cloudevent, headers=ce_headers))[0], bytes)


def test_the_grpc_response_is_what_kserves_own_conversion_sends(tiny_model_dir: Path) -> None:
    """gRPC answers are built straight from the arrays; byte for byte what KServe's ``to_grpc()`` makes of the
    V2 response (raw contents and their sizes), for one text and for several."""
    model = make_model(tiny_model_dir)
    for texts in (["what a great day"], ["good", "bad", "the meeting is at noon", "ünïcode ✓"]):
        tensor = InferInput(name="text", shape=[len(texts)], datatype="BYTES", data=texts)
        request = InferRequest(model_name="sentiment", infer_inputs=[tensor], request_id="req-7")
        request.from_grpc = True
        direct, _ = asyncio.run(model(request))
        probs = model._proba.predict_proba(texts)
        labels = model._classes_arr[probs.argmax(axis=1)]
        via_kserve = model._v2_response(request, "req-7", labels, probs).to_grpc()
        assert direct.SerializeToString() == via_kserve.SerializeToString(), (direct, via_kserve)


def _tensor(**fields: object) -> pb.ModelInferRequest.InferInputTensor:
    contents = fields.pop("contents", [b"fine"])
    return pb.ModelInferRequest.InferInputTensor(
        **{"name": "text", "datatype": "BYTES", "shape": [1], **fields},  # type: ignore[arg-type]
        contents=pb.InferTensorContents(bytes_contents=contents))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "texts"),
    [
        (pb.ModelInferRequest(inputs=[_tensor()]), ["fine"]),
        (pb.ModelInferRequest(inputs=[_tensor(shape=[2, 1], contents=[b"a", "é".encode()])]), ["a", "é"]),
        (pb.ModelInferRequest(inputs=[_tensor(name="sentence")]), None),
        (pb.ModelInferRequest(inputs=[_tensor(datatype="FP32")]), None),
        (pb.ModelInferRequest(inputs=[_tensor(shape=[2])]), None),
        (pb.ModelInferRequest(inputs=[_tensor(shape=[1, 2])]), None),
        (pb.ModelInferRequest(inputs=[_tensor(shape=[])]), None),
        (pb.ModelInferRequest(inputs=[_tensor(shape=[0], contents=[])]), None),
        (pb.ModelInferRequest(inputs=[_tensor(contents=[b"\xff"])]), None),
        (pb.ModelInferRequest(inputs=[_tensor(), _tensor()]), None),
        (pb.ModelInferRequest(inputs=[_tensor(contents=[])], raw_input_contents=[b"\1\0\0\0a"]), None),
    ],
    ids=["plain", "column", "name", "datatype", "count", "shape", "scalar", "empty", "utf8", "two-inputs", "raw"],
)
def test_only_the_plain_grpc_form_is_read_straight_from_the_message(request_: pb.ModelInferRequest,
                                                                   texts: list[str] | None) -> None:
    """Every other form, right or wrong, goes through KServe's conversion and the checks that name the problem."""
    assert _plain_grpc_texts(request_) == texts


def test_a_grpc_message_gets_the_same_checks_and_errors_as_the_converted_request(tiny_model_dir: Path) -> None:
    loaded_model = make_model(tiny_model_dir)
    too_long = "x" * (loaded_model.settings.max_text_chars + 1)
    for texts, message in (([" "], "input 'text'[0] is empty or only whitespace"),
                           ([too_long], "input 'text'[0] has"), ([b"\xff"], "input 'text'[0] is not valid UTF-8")):
        raw = [t if isinstance(t, bytes) else t.encode() for t in texts]
        request = pb.ModelInferRequest(model_name="sentiment", inputs=[_tensor(contents=raw)])
        with pytest.raises(InvalidInput, match=re.escape(message)):
            asyncio.run(loaded_model.infer_grpc(request, dict))
    request = pb.ModelInferRequest(model_name="sentiment", model_version="9", inputs=[_tensor()])
    with pytest.raises(Exception, match="no version '9'"):
        asyncio.run(loaded_model.infer_grpc(request, dict))
    answer = asyncio.run(loaded_model.infer_grpc(pb.ModelInferRequest(inputs=[_tensor()]),
                                                 lambda: {"x-request-id": "meta"}))
    assert answer.id == "meta" and [o.name for o in answer.outputs] == ["label", "probabilities", "id"]
