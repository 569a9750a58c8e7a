"""The shipper's HTTP app and flusher in process: status codes, a segment that cannot be shipped is set aside,
a CloudEvent half spooled before a restart still joins."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
from starlette.testclient import TestClient

from serving.shipper.app import create_app
from serving.shipper.settings import ShipSettings
from serving.shipper.wire import parse_ndjson
from tests.support.events import cloudevent_half, events, ndjson


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
    lines, _ = first.joiner.offer(cloudevent_half("request", "r1", {"instances": ["on time for once"]}, when=now))
    first.spool.append(lines)
    first.spool.seal()  # sealed: the half is carried into the next segment as well
    first.spool.close()  # "crash": nothing shipped, the joiner's memory is gone

    second = build_shipper(settings)
    second.start()
    try:
        assert len(second.joiner) == 1
        joined, _ = second.joiner.offer(cloudevent_half("response", "r1", {"predictions": [
            {"label": "positive", "probabilities": {"negative": 0.1, "neutral": 0.1, "positive": 0.8}}]}, when=now))
        second.spool.append(joined)
    finally:
        second.stop()
    table = pq.read_table(next((tmp_path / "sink").rglob("*.parquet")))
    assert table.column("id").to_pylist() == ["r1:0"] and table.column("source").to_pylist() == ["kserve-logger"]
