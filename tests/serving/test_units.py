"""In-process tests of the predictor's parts: loading, settings, the model object, micro-batching, event emission."""

from __future__ import annotations

import asyncio
import gc
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import orjson
import pytest
from kserve import InferInput, InferRequest
from kserve.errors import InvalidInput, ModelNotReady
from prometheus_client import CollectorRegistry
from sklearn.pipeline import Pipeline

from model.process import settings_from_args
from serving.__main__ import _tune_gc, build_parser, main
from serving.batching import MicroBatcher
from serving.emitter import EventContext, EventEmitter
from serving.errors import ModelLoadError, NotReady, Overloaded
from serving.eventlog.events import RequestEncoder, expand_request, make_event, validate_event
from serving.fastpath import FastPath
from serving.loader import find_model_dir, load_local, parse_model_uri
from serving.metrics import ServingMetrics
from serving.model import SentimentModel
from serving.settings import ServeSettings
from tests.conftest import free_port
from tests.serving.conftest import EventSink


def make_model(model_dir: Path, **settings: object) -> SentimentModel:
    model = SentimentModel(
        ServeSettings(model_dir=model_dir, events_url="", **settings), registry=CollectorRegistry()
    )
    model.load()
    return model


# --- loading and settings ---------------------------------------------------------------------------------------


def test_local_directory_and_one_level_below(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert find_model_dir(tiny_model_dir) == tiny_model_dir
    parent = tmp_path / "mnt-models"
    shutil.copytree(tiny_model_dir, parent / "model")
    assert find_model_dir(parent) == parent / "model"
    loaded = load_local(parent, None)
    assert loaded.version == "3" and loaded.bundle.classes == ("negative", "neutral", "positive")
    assert load_local(parent, "v-override").version == "v-override"
    shutil.copytree(tiny_model_dir, parent / "other")
    with pytest.raises(ModelLoadError, match="holds 2 models"):
        find_model_dir(parent)


def test_load_errors_name_what_is_missing(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=f"model directory {tmp_path / 'none'} does not exist"):
        load_local(tmp_path / "none", None)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README").write_text("x")
    with pytest.raises(ModelLoadError, match=r"holds no model: no MLmodel file .* \['README'\]"):
        load_local(tmp_path / "empty", None)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.pkl").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match=r"model\.pkl cannot be unpickled"):
        load_local(broken, None)
    (broken / "model.pkl").unlink()
    with pytest.raises(ModelLoadError, match=r"names 'model\.pkl' but .* does not exist"):
        load_local(broken, None)


def test_model_uri_forms() -> None:
    assert parse_model_uri("models:/sentiment/7") == ("sentiment", "7", None)
    assert parse_model_uri("models:/sentiment@production") == ("sentiment", None, "production")
    with pytest.raises(ModelLoadError, match="is not models:/<name>/<version>"):
        parse_model_uri("models:/sentiment")


def test_settings_from_flags_env_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KS_SERVE_TRACK", "canary")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    args = build_parser().parse_args(["--model-dir", "/mnt/models", "--max-texts", "8", "--log-text"])
    s = settings_from_args(ServeSettings, args)
    assert (s.model_name, s.track, s.max_texts, s.log_text) == ("sentiment", "canary", 8, True)
    assert s.tracking_uri == "http://mlflow:5000" and s.model_dir == Path("/mnt/models")
    assert args.http_port == 8080 and args.grpc_port == 8081
    assert settings_from_args(ServeSettings, build_parser().parse_args(["--model_name", "other"])).model_name == "other"
    monkeypatch.setenv("KS_SERVE_LOG_TEXT", "true")
    assert settings_from_args(ServeSettings, build_parser().parse_args(["--no-log-text"])).log_text is False


def test_no_flag_of_ours_is_read_by_kserves_import_time_parser() -> None:
    # kserve.model_server parses sys.argv at import with prefix matching: a flag of ours that is a prefix of one
    # of KServe's would silently set KServe's option.
    from kserve.model_server import parser as kserve_parser

    theirs = set(kserve_parser._option_string_actions)
    ours = set(build_parser()._option_string_actions) - theirs
    assert "--model-uri" in ours and "--model_name" in theirs
    assert not [(o, t) for o in ours for t in theirs if t.startswith(o)]


def test_conflicting_or_bad_settings_exit_with_config_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model-dir", "/x", "--model-uri", "models:/sentiment/1"]) == 78
    assert "either model_uri" in capsys.readouterr().err
    assert main(["--model-uri", "s3://bucket/model", "--tracking-uri", "http://127.0.0.1:1"]) == 78
    assert "must look like models:/" in capsys.readouterr().err
    assert main(["--model-dir", "/x", "--workers", "2"]) == 78
    assert main(["--max-texts", "lots"]) == 78
    assert "--max-texts / KS_SERVE_MAX_TEXTS = 'lots'" in capsys.readouterr().err


@pytest.mark.parametrize(("threshold", "expected"), [(100_000, 100_000), (0, None)])
def test_gc_is_frozen_and_tuned_after_load(threshold: int, expected: int | None) -> None:
    before = gc.get_threshold()
    try:
        _tune_gc(threshold)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (expected or before[0], *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert ServeSettings().gc_threshold == 100_000


# --- the model object ---------------------------------------------------------------------------------------------


def test_not_loaded_model_answers_not_ready(tiny_model_dir: Path) -> None:
    model = SentimentModel(ServeSettings(model_dir=tiny_model_dir, events_url=""), registry=CollectorRegistry())
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
        out = {o.name: o for o in response.outputs}
        assert np.abs(out["probabilities"].data.astype(float) - expected[20 + i]).max() <= 1e-6
        assert response.id == str(i)
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


# --- micro-batching -------------------------------------------------------------------------------------------------


def test_batcher_bounds_batches_and_queue() -> None:
    sizes: list[int] = []

    def compute(texts: list[str]) -> np.ndarray:
        sizes.append(len(texts))
        return np.array([[float(len(t))] for t in texts])

    batcher = MicroBatcher(compute, "m", max_batch_texts=4, max_queued_texts=10)

    async def run() -> list[np.ndarray]:
        futures = [batcher.submit(["a" * i]) for i in range(1, 4)] + [batcher.submit(["bb"] * 6)]
        with pytest.raises(Overloaded, match="9 texts are already waiting"):
            batcher.submit(["x", "y"])
        return await asyncio.gather(*futures)

    results = asyncio.run(run())
    assert [r[:, 0].tolist() for r in results] == [[1.0], [2.0], [3.0], [2.0] * 6]
    assert sizes == [4, 4, 1]
    assert batcher.queued_texts == 0


def test_batcher_failure_reaches_every_waiting_request() -> None:
    def compute(texts: list[str]) -> np.ndarray:
        raise RuntimeError("boom")

    batcher = MicroBatcher(compute, "m")

    async def run() -> list:
        return await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True)

    assert [str(e) for e in asyncio.run(run())] == ["boom", "boom"]


def test_hot_path_metrics_are_exposed_as_prometheus_series() -> None:
    registry = CollectorRegistry()
    metrics = ServingMetrics("sentiment", "3", "canary", registry)
    metrics.set_info("local", "fast", ["neg", "pos"])
    for seconds in (0.0004, 0.003, 0.003, 3.0):
        metrics.success("v2-grpc", seconds, 2)
    metrics.request("v1", "invalid_argument")
    metrics.batch(3, [1, 1, 0])
    series = {"model_name": "sentiment", "model_version": "3"}
    grpc = series | {"protocol": "v2-grpc"}
    value = registry.get_sample_value
    assert value("kube_sentiment_requests_total", grpc | {"status": "ok", "track": "canary"}) == 4
    assert value("kube_sentiment_requests_total", series | {"protocol": "v1", "status": "invalid_argument",
                                                            "track": "canary"}) == 1
    assert value("kube_sentiment_request_latency_seconds_bucket", grpc | {"le": "0.0005"}) == 1
    assert value("kube_sentiment_request_latency_seconds_bucket", grpc | {"le": "0.004"}) == 3
    assert value("kube_sentiment_request_latency_seconds_bucket", grpc | {"le": "+Inf"}) == 4
    assert value("kube_sentiment_request_latency_seconds_sum", grpc) == pytest.approx(3.0064)
    assert value("kube_sentiment_request_texts_count", grpc) == 4
    assert value("kube_sentiment_batch_texts_bucket", series | {"le": "2.0"}) == 0
    assert value("kube_sentiment_batch_texts_bucket", series | {"le": "4.0"}) == 1
    assert value("kube_sentiment_predictions_total", series | {"label": "pos", "track": "canary"}) == 2
    assert value("kube_sentiment_predictions_total", series | {"label": "neg", "track": "canary"}) == 1


# --- prediction events ----------------------------------------------------------------------------------------------


def emitter(url: str, **kwargs: object) -> tuple[EventEmitter, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = ServingMetrics("sentiment", "9", "stable", registry)
    context = EventContext("sentiment", "9", "stable", "test", ("neg", "pos"), log_text=True)
    return EventEmitter(url, context, metrics, flush_interval_s=0.05, **kwargs), registry


def test_events_are_sent_as_ndjson_in_batches(event_sink: EventSink) -> None:
    em, registry = emitter(event_sink.url, batch_size=3)
    probs = np.array([[0.2, 0.8], [0.9, 0.1]])

    async def run() -> None:
        for i in range(4):
            em.submit(f"unit-{i}", "v1", ["good", "bad"], probs, 1.5)
        await em.flush()
        await em.aclose()

    asyncio.run(run())
    mine = [e for e in event_sink.snapshot() if e["request_id"].startswith("unit-")]
    assert len(mine) == 8 and em.sent == 8 and em.dropped == 0
    for event in mine:
        validate_event(event)
    first = next(e for e in mine if e["id"] == "unit-0:0")
    assert first["text"] == "good" and first["label"] == "pos" and first["confidence"] == 0.8
    assert registry.get_sample_value(
        "kube_sentiment_events_total", {"model_name": "sentiment", "model_version": "9", "outcome": "sent"}) == 8


def test_a_request_whose_events_cannot_be_encoded_is_dropped_and_counted(event_sink: EventSink) -> None:
    em, registry = emitter(event_sink.url)
    probs = np.array([[0.2, 0.8]])

    async def run() -> None:
        em.submit("enc-ok-1", "v1", ["good"], probs, 1.0)
        em.submit("enc-bad", "v1", ["lone \ud800 surrogate"], probs, 1.0)  # not valid Unicode
        em.submit("enc-ok-2", "v1", ["fine"], probs, 1.0)
        await em.flush()
        em.submit("enc-bad-alone", "v1", ["\udfff"], probs, 1.0)  # a batch with nothing left to send
        await em.flush()
        await em.aclose()

    asyncio.run(run())
    assert sorted(e["id"] for e in event_sink.snapshot() if e["request_id"].startswith("enc-")) == [
        "enc-ok-1:0", "enc-ok-2:0"]
    assert em.sent == 2 and em.dropped == 2 and em.queued == 0 and not em._failing
    assert registry.get_sample_value("kube_sentiment_events_total", {
        "model_name": "sentiment", "model_version": "9", "outcome": "dropped_unencodable"}) == 2


def test_flush_waits_for_the_batch_the_background_sender_has_in_flight(event_sink: EventSink) -> None:
    em, _ = emitter(event_sink.url, batch_size=40, queue_size=10_000)
    probs = np.array([[0.2, 0.8]])

    async def run() -> None:
        for i in range(3000):
            em.submit(f"race-{i}", "v1", ["good"], probs, 1.0)
            if i % 100 == 0:
                await asyncio.sleep(0.001)  # the background sender takes and sends batches meanwhile
        await em.flush(deadline_s=30)
        await em.aclose()

    asyncio.run(run())
    ids = [e["id"] for e in event_sink.snapshot() if e["request_id"].startswith("race-")]
    assert em.sent == 3000 and em.queued == 0 and em.dropped == 0
    assert sorted(ids) == sorted(f"race-{i}:0" for i in range(3000))


def test_a_send_interrupted_at_shutdown_is_sent_by_drain(event_sink: EventSink) -> None:
    stalled = threading.Event()

    class Stalling(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # never answers: the sender is stopped while waiting here
            stalled.set()
            self.rfile.read(int(self.headers.get("content-length", "0")))
            time.sleep(5)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    em, _ = emitter(f"http://127.0.0.1:{server.server_address[1]}/v1/events", batch_size=10, timeout_s=30)

    async def run() -> None:
        em.submit("cut", "v1", ["good"] * 4, np.array([[0.2, 0.8]] * 4), 1.0)
        while not stalled.is_set():
            await asyncio.sleep(0.01)  # the background sender's POST is in flight
        await em.aclose()  # the server stops: the send is cancelled

    asyncio.run(run())
    server.shutdown()
    server.server_close()
    assert em.queued == 4 and em.sent == 0  # not lost, not counted as sent
    em.url = event_sink.url
    em.drain(deadline_s=10)
    assert em.queued == 0 and em.sent == 4
    assert {e["id"] for e in event_sink.snapshot() if e["request_id"] == "cut"} == {f"cut:{i}" for i in range(4)}


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


def test_events_are_dropped_and_counted_when_the_queue_is_full_or_the_sidecar_is_down() -> None:
    em, registry = emitter(f"http://127.0.0.1:{free_port()}/v1/events", queue_size=5, timeout_s=1.0)
    probs = np.array([[0.5, 0.5]] * 3)

    async def run() -> None:
        em.submit("a", "v1", ["x"] * 3, probs, 1.0)
        em.submit("b", "v1", ["x"] * 3, probs, 1.0)  # would exceed 5: dropped at once, never blocks
        await em.flush()  # the sidecar is down: the batch is dropped, no exception
        await em.aclose()

    asyncio.run(run())
    labels = {"model_name": "sentiment", "model_version": "9"}
    assert registry.get_sample_value("kube_sentiment_events_total", labels | {"outcome": "dropped_queue_full"}) == 3
    assert registry.get_sample_value("kube_sentiment_events_total", labels | {"outcome": "dropped_send_failed"}) == 3
    assert em.queued == 0 and em.sent == 0 and em.dropped == 6
