"""The drift job reading its window from S3-compatible storage (a real moto_server), written by the shipper's S3
sink: the path a cluster uses."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from control.drift.main import run
from control.drift.settings import DriftSettings
from serving.shipper.objects import segment_objects
from serving.shipper.sinks import S3Sink
from serving.shipper.wire import parse_ndjson
from tests.support.events import gibberish, predicted_events
from tests.support.models import SmallModel
from tests.support.servers import MotoServer

pytestmark = pytest.mark.integration


def test_drift_reads_an_s3_window_and_groups_by_version_and_track(tmp_path: Path, small_model: SmallModel,
                                                                  moto: MotoServer, s3_env) -> None:
    moto.client().create_bucket(Bucket="logs")
    sink = S3Sink("logs", "predictions/", endpoint_url=moto.url)
    stable = predicted_events(small_model.pipeline, small_model.fresh_texts[:800], prefix="s")
    canary = predicted_events(small_model.pipeline, gibberish(600), track="canary", prefix="c")
    for segment_id, batch in (("seg-stable", stable), ("seg-canary", canary)):
        lines, _, _ = parse_ndjson(b"".join(orjson.dumps(e) + b"\n" for e in batch), 1.0)
        objects, _ = segment_objects(segment_id, lines)
        for key, data, _ in objects:
            sink.put(key, data)
    outcome = run(DriftSettings(source="s3://logs/predictions", s3_endpoint_url=moto.url,
                                reference_dir=small_model.model_dir, output_dir=tmp_path / "out"))
    by_track = {g["track"]: g for g in outcome.report["groups"]}
    assert outcome.report["records"] == 1400 and outcome.exit_code == 3
    assert by_track["stable"]["verdict"] in ("ok", "warn") and by_track["canary"]["verdict"] == "drift"
