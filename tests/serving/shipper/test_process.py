"""The shipper as a real process: kill -9 mid-stream loses and duplicates nothing, a real S3 server as the sink,
backpressure while the sink is down and drain when it comes back."""

from __future__ import annotations

import signal
import threading

import httpx
import pyarrow.dataset as ds
import pytest

from tests.support import free_port, wait_until
from tests.support.events import events, ndjson, sink_ids
from tests.support.servers import MotoServer

pytestmark = pytest.mark.integration
NDJSON = {"content-type": "application/x-ndjson"}
#: uvicorn re-raises SIGTERM after the graceful drain, so a clean stop reads as "terminated by SIGTERM".
CLEAN_EXIT = (0, -signal.SIGTERM)


def test_kill9_mid_stream_then_restart_writes_every_acknowledged_event_exactly_once(shipper_factory) -> None:
    env = {"KS_SHIP_SEGMENT_MAX_BYTES": "20000", "KS_SHIP_SEGMENT_MAX_AGE_S": "0.2", "KS_SHIP_POLL_INTERVAL_S": "0.05"}
    first = shipper_factory(**env).start()
    acked: list[str] = []
    stop = threading.Event()

    def send_forever(worker: int) -> None:
        with httpx.Client(base_url=first.url, timeout=5) as client:
            i = 0
            while not stop.is_set():
                batch = events(25, start=i, prefix=f"w{worker}-")
                try:
                    response = client.post("/v1/events", content=ndjson(batch), headers=NDJSON)
                except httpx.TransportError:
                    return  # the shipper died under us: this batch was never acknowledged
                if response.status_code == 202:
                    acked.extend(e["id"] for e in batch)
                i += 25

    senders = [threading.Thread(target=send_forever, args=(w,)) for w in range(3)]
    for t in senders:
        t.start()
    wait_until(lambda: len(acked) >= 1500 and sink_ids(first.sink_dir), 60, "acknowledged events and some shipped")
    first.kill9()
    stop.set()
    for t in senders:
        t.join(timeout=10)
    assert not any(first.spool_dir.glob("*.tmp"))

    second = shipper_factory(**env).start()
    response = httpx.post(f"{second.url}/v1/events", content=ndjson(events(50, prefix="after-")), headers=NDJSON)
    assert response.status_code == 202
    acked.extend(f"after-{i}:0" for i in range(50))
    assert second.terminate() in CLEAN_EXIT
    stored = sink_ids(second.sink_dir)
    assert len(stored) == len(set(stored)), "an event was written twice"
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged event(s) lost, e.g. {sorted(missing)[:3]}"
    assert not list(second.spool_dir.glob("*.ready")) and not list(second.spool_dir.glob("*.open"))


def test_s3_sink_on_a_real_s3_server_and_cloudevents_join(shipper_factory, moto: MotoServer, s3_env) -> None:
    s3 = moto.client()
    s3.create_bucket(Bucket="predictions")
    shipper = shipper_factory(KS_SHIP_SINK="s3", KS_SHIP_S3_BUCKET="predictions", KS_SHIP_S3_PREFIX="logs",
                              KS_SHIP_S3_ENDPOINT_URL=moto.url, KS_SHIP_SEGMENT_MAX_AGE_S="0.2",
                              KS_SHIP_ENVIRONMENT="staging", **s3_env).start()
    with httpx.Client(base_url=shipper.url, timeout=5) as client:
        for i in range(0, 400, 100):
            assert client.post("/v1/events", content=ndjson(events(100, start=i)), headers=NDJSON).status_code == 202
        ce = {"ce-id": "kserve-1", "ce-specversion": "1.0", "ce-source": "http://sentiment-predictor",
              "ce-inferenceservicename": "sentiment", "ce-namespace": "ml", "ce-component": "predictor",
              "content-type": "application/json"}
        request = {**ce, "ce-type": "org.kubeflow.serving.inference.request"}
        response = {**ce, "ce-type": "org.kubeflow.serving.inference.response"}
        assert client.post("/", json={"instances": ["nice", "awful"]}, headers=request).status_code == 202
        joined = client.post("/", json={"model_version": "5", "predictions": [
            {"label": "positive", "probabilities": {"negative": 0.1, "neutral": 0.2, "positive": 0.7}},
            {"label": "negative", "probabilities": {"negative": 0.8, "neutral": 0.1, "positive": 0.1}}]},
            headers=response)
        assert joined.json()["accepted"] == 2
    assert shipper.terminate() in CLEAN_EXIT
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="predictions")["Contents"]]
    assert all(k.startswith("logs/environment=") for k in keys)
    assert any("/environment=staging/model_version=5/" in f"/{k}" for k in keys)
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=moto.url, access_key="test", secret_key="test", region="us-east-1",
                           scheme="http")
    table = ds.dataset("predictions/logs", filesystem=fs, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 402
    kserve = table.filter(ds.field("source") == "kserve-logger").to_pylist()
    assert sorted((r["text"], r["label"]) for r in kserve) == [("awful", "negative"), ("nice", "positive")]


def test_sink_down_gives_backpressure_then_the_backlog_drains(shipper_factory, s3_env) -> None:
    port = free_port()  # nothing listens here yet: the sink is down
    shipper = shipper_factory(KS_SHIP_SINK="s3", KS_SHIP_S3_BUCKET="predictions",
                              KS_SHIP_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}", KS_SHIP_SPOOL_MAX_BYTES="200000",
                              KS_SHIP_SEGMENT_MAX_BYTES="20000", KS_SHIP_SEGMENT_MAX_AGE_S="0.2",
                              KS_SHIP_SINK_BACKOFF_MAX_S="0.5", KS_SHIP_RETRY_AFTER_S="2", **s3_env).start()
    accepted = 0
    with httpx.Client(base_url=shipper.url, timeout=5) as client:
        for i in range(0, 100_000, 50):
            response = client.post("/v1/events", content=ndjson(events(50, start=i)), headers=NDJSON)
            if response.status_code != 202:
                break
            accepted += 50
        assert response.status_code == 503 and response.headers["retry-after"] == "2"
        assert 0 < accepted < 100_000
        wait_until(lambda: shipper.metric("ks_ship_sink_errors_total") >= 1, 30, "sink errors to be counted")
        ready = client.get("/readyz")
        assert ready.status_code == 200 and not ready.json()["sink_healthy"]

        moto = MotoServer(port).start()
        try:
            moto.client().create_bucket(Bucket="predictions")
            wait_until(lambda: shipper.metric("ks_ship_events_written_total") >= accepted, 60, "the backlog to drain")
            wait_until(lambda: client.get("/readyz").json()["sink_healthy"], 30, "the sink to be healthy again")
            assert client.post("/v1/events", content=ndjson(events(10, prefix="late-")),
                               headers=NDJSON).status_code == 202
            assert shipper.terminate() in CLEAN_EXIT
            keys = [o["Key"] for o in moto.client().list_objects_v2(Bucket="predictions")["Contents"]]
            assert keys and all(k.endswith(".parquet") for k in keys)
        finally:
            moto.stop()
