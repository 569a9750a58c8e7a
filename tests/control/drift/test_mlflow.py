"""The drift job against a real MLflow tracking server: the reference comes from the registered version's run,
and the results are logged back to that run and tagged on the version. Metrics are pushed over real HTTP."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from control.drift.main import run
from control.drift.settings import DriftSettings
from model.registry import register
from tests.support.events import feedback_events, predicted_events, write_to_sink
from tests.support.models import SmallModel

pytestmark = pytest.mark.integration


class _Recorder(BaseHTTPRequestHandler):
    """Accepts what a Pushgateway accepts (PUT/POST of the text format) and remembers it."""

    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).received.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, *args: object) -> None:
        return


def test_reference_from_the_registry_results_logged_to_the_version_run(tmp_path: Path, small_model: SmallModel,
                                                                       mlflow_server,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from mlflow.tracking import MlflowClient

    scratch = tmp_path / "tmp"  # where the run downloads the reference
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    experiment = client.create_experiment("drift-test")
    run_id = client.create_run(experiment).info.run_id
    client.log_artifacts(run_id, str(small_model.model_dir), "model")
    client.set_terminated(run_id)
    version = register(client, run_id, "sentiment-drift-test", tags={})

    texts = small_model.fresh_texts[:1200]
    write_to_sink(tmp_path / "sink", predicted_events(small_model.pipeline, texts, model_version=version.version),
                  "seg")
    write_to_sink(tmp_path / "sink", feedback_events([f"r{i}:0" for i in range(600)], small_model.fresh_labels[:600]),
                  "labels")
    gateway = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    try:
        outcome = run(DriftSettings(
            source=str(tmp_path / "sink"), tracking_uri=mlflow_server.uri, registered_model="sentiment-drift-test",
            log_to_mlflow=True, output_dir=tmp_path / "out",
            pushgateway_url=f"http://127.0.0.1:{gateway.server_address[1]}", environment="test"))
    finally:
        gateway.shutdown()
    assert outcome.exit_code == 0, outcome.report["groups"]
    assert not list(scratch.glob("ks-drift-ref-*")), "the downloaded reference was left behind"
    group = outcome.report["groups"][0]
    assert group["reference"]["run_id"] == run_id
    assert group["reference"]["source"] == f"models:/sentiment-drift-test/{version.version}"
    metrics = client.get_run(run_id).data.metrics
    assert "drift.stable.class_shares_psi" in metrics and metrics["drift.stable.records"] == 1200
    artifacts = [a.path for a in client.list_artifacts(run_id, f"drift/{outcome.report['run_id']}")]
    assert any(a.endswith("report.html") for a in artifacts) and any(a.endswith("report.json") for a in artifacts)
    tags = client.get_model_version("sentiment-drift-test", version.version).tags
    assert tags["drift.stable.verdict"] == outcome.report["groups"][0]["verdict"]
    # live quality from the labels: on the version's run, tagged on the version, pushed with the drift metrics
    quality = outcome.report["quality"]["groups"][0]
    assert quality["labelled"] == 600 and quality["verdict"] == tags["quality.stable.verdict"] == "ok"
    assert metrics["quality.stable.labelled"] == 600
    assert metrics["quality.stable.macro_f1"] == pytest.approx(quality["macro_f1"])
    assert metrics["quality.stable.ci_low"] < metrics["quality.stable.macro_f1"] < metrics["quality.stable.ci_high"]
    method, path, body = _Recorder.received[-1]
    assert method == "PUT" and path == "/metrics/job/kube-sentiment-drift/environment/test"
    assert b"ks_drift_signal_value{" in body and b"ks_drift_exit_code 0.0" in body
    assert b"ks_quality_macro_f1{" in body and b'ks_quality_feedback{outcome="labelled"} 600.0' in body
