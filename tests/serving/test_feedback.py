"""Prediction ids and ``POST /v1/feedback`` on real processes: the predictor (tiny model) hands its events to a real
shipper (the journal on their shared directory) that writes a local sink. Every answered text has an id on all three
protocols that is its logged event's id; labels sent for those ids are stored once however often sent; bad input is
refused with a clear 4xx and stores nothing; a journal that cannot take them gives a 503."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest

from serving.eventlog.parquet import FEEDBACK
from serving.eventlog.reader import Window, read_window
from tests.support import stop, wait_until
from tests.support.servers import Predictor, ShipperProcess, start_predictor

pytestmark = pytest.mark.integration

V1 = "/v1/models/sentiment:predict"
V2 = "/v2/models/sentiment/infer"
FEEDBACK_URL = "/v1/feedback"
WIDE = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def shipper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShipperProcess]:
    """A real shipper writing a local sink, sealing segments quickly."""
    process = ShipperProcess(tmp_path_factory.mktemp("ship"), {"KS_SHIP_SEGMENT_MAX_AGE_S": "0.2"}).start()
    yield process
    process.terminate()


@pytest.fixture(scope="module")
def predictor(tiny_model_dir: Path, shipper: ShipperProcess,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Predictor]:
    running = start_predictor(
        tmp_path_factory.mktemp("predictor"),
        ["--model-dir", str(tiny_model_dir), "--feedback-max-items", "50", "--feedback-max-bytes", "20000"],
        env={"KS_SERVE_EVENTS_DIR": str(shipper.journal_dir), "KS_SERVE_EVENTS_FLUSH_INTERVAL_S": "0.05",
             "KS_SERVE_ENVIRONMENT": "fb"},
    )
    yield running
    stop(running.process)


def feedback_log(shipper: ShipperProcess) -> Window:
    return read_window(str(shipper.sink_dir), *WIDE, event_log=FEEDBACK)


def logged_ids(shipper: ShipperProcess) -> set[str]:
    if not shipper.sink_dir.exists():
        return set()
    return set(read_window(str(shipper.sink_dir), *WIDE, columns=["id"]).table.column("id").to_pylist())


def grpc_ids(predictor: Predictor, texts: list[str], request_id: str) -> list[str]:
    async def call() -> Any:
        client = InferenceGRPCClient(predictor.grpc, retries=0, timeout=10)
        try:
            tensor = InferInput(name="text", shape=[len(texts)], datatype="BYTES", data=texts)
            return await client.infer(InferRequest(model_name="sentiment", infer_inputs=[tensor],
                                                   request_id=request_id))
        finally:
            await client.close()

    output = next(o for o in asyncio.run(call()).outputs if o.name == "id")
    return [i.decode() if isinstance(i, bytes) else i for i in output.as_numpy().tolist()]


def post(predictor: Predictor, body: Any = None, content: bytes | None = None,
         content_type: str = "application/json") -> httpx.Response:
    if content is None:
        return httpx.post(predictor.http + FEEDBACK_URL, json=body, timeout=30)
    return httpx.post(predictor.http + FEEDBACK_URL, content=content, headers={"content-type": content_type},
                      timeout=30)


def test_every_text_has_an_id_on_every_protocol_that_is_its_events_id(predictor: Predictor,
                                                                        shipper: ShipperProcess) -> None:
    texts = ["ids for feedback", "a second one"]
    v1 = httpx.post(predictor.http + V1, json={"instances": texts}, headers={"x-request-id": "ids-v1"}, timeout=10)
    assert [p["id"] for p in v1.json()["predictions"]] == ["ids-v1:0", "ids-v1:1"]
    assert v1.headers["x-request-id"] == "ids-v1"
    anonymous = httpx.post(predictor.http + V1, json={"instances": texts}, timeout=10)
    generated = anonymous.headers["x-request-id"]
    assert len(generated) == 32 and [p["id"] for p in anonymous.json()["predictions"]] == [
        f"{generated}:0", f"{generated}:1"]
    v2 = httpx.post(predictor.http + V2, timeout=10, json={
        "id": "ids-v2", "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": texts}]})
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    assert outputs["id"]["data"] == ["ids-v2:0", "ids-v2:1"] and outputs["id"]["shape"] == [2]
    assert v2.headers["x-request-id"] == "ids-v2"
    only_label = httpx.post(predictor.http + V2, timeout=10, json={
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x y"]}],
        "outputs": [{"name": "label"}]})
    assert [o["name"] for o in only_label.json()["outputs"]] == ["label"]  # a client may ask for fewer outputs
    assert grpc_ids(predictor, texts, "ids-grpc") == ["ids-grpc:0", "ids-grpc:1"]
    expected = {f"{rid}:{i}" for rid in ("ids-v1", generated, "ids-v2", "ids-grpc") for i in (0, 1)}
    wait_until(lambda: expected <= logged_ids(shipper), 60, "the predictions' events in the sink")


def test_labels_for_those_ids_are_stored_once_however_often_sent(predictor: Predictor,
                                                                  shipper: ShipperProcess) -> None:
    r = httpx.post(predictor.http + V1, json={"instances": ["label me", "and me", "me too"]},
                   headers={"x-request-id": "fb-1"}, timeout=10)
    ids = [p["id"] for p in r.json()["predictions"]]
    items = [{"id": ids[0], "label": "positive"}, {"id": ids[1], "label": "negative", "source": "reviewer"},
             {"id": ids[2], "label": "neutral", "at": "2026-03-01T12:00:00Z"}]
    first = post(predictor, items)
    assert first.status_code == 202 and first.json() == {"accepted": 3}
    assert post(predictor, items).status_code == 202  # a client that retried
    assert post(predictor, items[0]).json() == {"accepted": 1}  # one item without an array
    def labelled() -> Any:
        if not shipper.sink_dir.joinpath("feedback").exists():
            return None
        rows = feedback_log(shipper).table.to_pandas()
        return [rows] if rows["prediction_id"].str.startswith("fb-1:").sum() == 3 else None

    [rows] = wait_until(labelled, 60, "the three labels in the sink")
    mine = rows[rows["prediction_id"].str.startswith("fb-1:")].set_index("prediction_id")
    assert len(mine) == 3  # sent three times over: each label once (repeats dropped in the segment or on read)
    assert mine.loc["fb-1:1", "source"] == "reviewer" and mine.loc["fb-1:0", "source"] == "api"
    assert mine.loc["fb-1:2", "at"] == datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp()
    assert set(mine["environment"]) == {"fb"}
    metrics = httpx.get(predictor.http + "/metrics", timeout=10).text
    assert 'kube_sentiment_feedback_total{model_name="sentiment",model_version="3",outcome="accepted"} 7.0' in metrics


BAD = [
    ("unknown label", [{"id": "a:0", "label": "sarcastic"}], None, "application/json", 400,
     "label 'sarcastic' is not one of the model's classes ['negative', 'neutral', 'positive']"),
    ("malformed id", [{"id": "not-an-id", "label": "positive"}], None, "application/json", 400,
     "is not a prediction id"),
    ("one bad item of many", [{"id": "a:0", "label": "positive"}, {"id": "b:0", "lable": "x"}], None,
     "application/json", 400, "item 1 has unknown field(s) ['lable']"),
    ("not an item", ["a:0"], None, "application/json", 400, "item 0 is str"),
    ("empty array", [], None, "application/json", 400, "no feedback items"),
    ("huge batch", [{"id": f"a:{i}", "label": "positive"} for i in range(51)], None, "application/json", 413,
     "51 feedback items in one request; at most 50"),
    ("huge body", None, b'[{"id": "a:0", "label": "' + b"x" * 20001 + b'"}]', "application/json", 413,
     "exceeds 20000 bytes"),
    ("not UTF-8", None, b'{"id": "a:0", "label": "n\xe9gative"}', "application/json", 400, "not valid UTF-8"),
    ("not JSON", None, b'{"id": "a:0", label}', "application/json", 400, "not valid JSON"),
    ("wrong content type", None, b"id=a:0&label=positive", "application/x-www-form-urlencoded", 415,
     "content type 'application/x-www-form-urlencoded' is not supported"),
]


@pytest.mark.parametrize(("case", "body", "content", "content_type", "status", "message"), BAD,
                         ids=[b[0] for b in BAD])
def test_bad_feedback_is_a_4xx_naming_the_problem_and_stores_nothing(
        predictor: Predictor, shipper: ShipperProcess, case: str, body: Any, content: bytes | None,
        content_type: str, status: int, message: str) -> None:
    r = post(predictor, body, content, content_type)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert httpx.get(predictor.http + "/v2/health/ready", timeout=10).status_code == 200
    stored = set(feedback_log(shipper).table.column("prediction_id").to_pylist()) \
        if shipper.sink_dir.joinpath("feedback").exists() else set()
    assert not stored & {"a:0", "b:0", "not-an-id"}


def test_a_journal_that_cannot_take_feedback_is_a_503(tiny_model_dir: Path, tmp_path: Path) -> None:
    """No sidecar reads the journal and its budget is spent: labels are refused with 503, not lost silently."""
    running = start_predictor(tmp_path, ["--model-dir", str(tiny_model_dir), "--events-max-bytes", "65536",
                                         "--events-file-bytes", "8192"],
                              env={"KS_SERVE_EVENTS_DIR": str(tmp_path / "journal")})
    try:
        items = [{"id": f"r{i}:{j}", "label": "positive", "source": f"s-{j}"} for i in range(50) for j in range(20)]
        refused = post(running, items)  # ~100 kB of lines for a 64 kB journal nobody reads
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5", refused.text
        assert "the event journal is full" in refused.json()["error"] and "of 1000 stored" in refused.json()["error"]
    finally:
        stop(running.process)
    (tmp_path / "off").mkdir()
    no_events = start_predictor(tmp_path / "off", ["--model-dir", str(tiny_model_dir)],
                                env={"KS_SERVE_EVENTS_DIR": ""})
    try:
        r = post(no_events, {"id": "a:0", "label": "positive"})
        assert r.status_code == 503 and "records no events" in r.json()["error"]
    finally:
        stop(no_events.process)
