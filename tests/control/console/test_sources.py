"""The console's adapters on their inputs' real formats: the predictor's ``/metrics`` page as ``serving.metrics``
writes it, rollout records as the rollout command writes them, drift reports with a live-quality section as the
drift job writes it, and the settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError

from control.console.settings import ConsoleSettings
from control.console.sources import rollouts
from control.console.sources.metrics import parse_metrics, quantile, rate_point
from control.console.sources.reports import DriftReports, latest_verdicts, trends
from serving.metrics import ServingMetrics


def exposition(requests: int, errors: int, latency_s: float, classes: tuple[int, int, int]) -> str:
    registry = CollectorRegistry()
    metrics = ServingMetrics("sentiment", "3", "canary", registry)
    metrics.set_info("staging", "fast", ("negative", "neutral", "positive"))
    for _ in range(requests):
        metrics.success("v1", latency_s, 1)
    for _ in range(errors):
        metrics.request("v1", "invalid_argument")
    metrics.batch(sum(classes), [0] * classes[0] + [1] * classes[1] + [2] * classes[2])
    return generate_latest(registry).decode()


def test_a_predictors_metrics_page_is_parsed() -> None:
    snap = parse_metrics(exposition(10, 2, 0.003, (5, 3, 2)), t=100.0)
    assert (snap.version, snap.track, snap.environment) == ("3", "canary", "staging")
    assert snap.requests == {"ok": 10.0, "invalid_argument": 2.0}
    assert snap.classes == {"negative": 5.0, "neutral": 3.0, "positive": 2.0}
    assert snap.buckets[0.004] == 10.0 and snap.buckets[0.002] == 0.0 and snap.buckets[float("inf")] == 10.0


def test_rates_between_two_scrapes() -> None:
    before = parse_metrics(exposition(10, 0, 0.003, (5, 3, 2)), t=100.0)
    after = parse_metrics(exposition(30, 5, 0.003, (15, 3, 2)), t=110.0)
    point = rate_point([(before, after)])
    assert point is not None
    assert point["rps"] == pytest.approx(2.5) and point["error_rate"] == pytest.approx(5 / 25)
    assert point["server_error_rate"] == 0.0
    assert 2.0 < point["p50_ms"] <= 4.0 and point["p50_ms"] <= point["p99_ms"] <= 4.0
    assert point["classes"] == {"negative": 1.0, "neutral": 0.0, "positive": 0.0}
    assert rate_point([(after, before)]) is None  # a restarted predictor resets its counters: no point


def test_quantile_interpolates_in_its_bucket() -> None:
    buckets = {0.1: 50.0, 0.2: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.15)
    assert quantile(0.99, {0.1: 0.0, float("inf"): 10.0}) == 0.1  # beyond the last bound: that bound
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None


def test_rollout_records_from_events_and_logs_merge(tmp_path: Path) -> None:
    events = [{"at": "2026-12-01T10:00:00+00:00", "reason": "RolloutStarted",
               "message": "version 4: started: from stable 3 (revision 7), 3 steps"},
              {"at": "2026-12-01T10:10:00+00:00", "reason": "RolloutFailedCheck",
               "message": "version 4: rollback at canary 25%: error_rate 0.04 > 0.01"},
              {"at": "2026-12-01T10:11:00+00:00", "reason": "Unrelated", "message": "something else"}]
    from_events = rollouts.from_events("production", events)
    assert [(d["decision"], d["step"]) for d in from_events] == [("started", None), ("rollback", "canary 25%")]
    log = tmp_path / "rollout.log"
    record = {"at": "2026-12-01T10:10:00.123+00:00", "decision": "rollback", "reason": "error_rate 0.04 > 0.01",
              "step": "canary 25%", "step_index": "2/3", "stable_version": "3",
              "checks": {"error_rate": {"status": "fail", "value": 0.04, "threshold": 0.01, "p_value_adjusted": 0.001}}}
    log.write_text("garbage\n" + json.dumps({"msg": "x", "environment": "production", "model_version": "4",
                                             "rollout": record}) + "\n")
    merged = rollouts.merge(from_events, rollouts.from_logs([log, tmp_path / "missing.log"]))
    assert [(d["decision"], d["source"]) for d in merged] == [("started", "event"), ("rollback", "log")]
    assert merged[1]["checks"]["error_rate"]["status"] == "fail"
    tags = {"rollout": {"production": {"decision": "hold", "at": "2026-12-01T09:00:00+00:00",
                                       "checks": {"error_rate": {"status": "pass"}}}}}
    assert rollouts.from_registry([{"version": "4", "rollouts": tags["rollout"]}])[0]["decision"] == "hold"


def _report(directory: Path, run_id: str, psi: float, quality: str | None) -> None:
    report = {
        "schema": "kube-sentiment.drift-report/v1", "run_id": run_id, "generated_at": f"{run_id[:4]}-12-01T10:00:00",
        "environment": "staging", "verdict": "ok", "records": 900, "window": {},
        "groups": [{"model_version": "3", "track": "stable", "n": 900, "verdict": "ok", "error": None,
                    "next_steps": ["label a sample of the window"],
                    "signals": [{"name": "class_shares_psi", "family": "predicted_class", "statistic": "psi",
                                 "value": psi, "threshold_warn": 0.1, "threshold_drift": 0.25,
                                 "p_value_adjusted": 0.5, "verdict": "ok", "n": 900}]}],
        "quality": None if quality is None else {
            "verdict": quality, "groups": [{"model_version": "3", "track": "stable", "verdict": quality,
                                            "macro_f1": 0.68, "ci_low": 0.6, "ci_high": 0.75,
                                            "holdout_macro_f1": 0.71, "labelled": 240}]},
    }
    (directory / run_id).mkdir(parents=True)
    (directory / run_id / "report.json").write_text(json.dumps(report))
    (directory / run_id / "report.html").write_text("<html></html>")


def test_drift_reports_trends_and_live_quality(tmp_path: Path) -> None:
    _report(tmp_path, "20261201T100000Z", 0.02, None)
    _report(tmp_path, "20261201T110000Z", 0.05, "warn")
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "20261201T120000Z").mkdir()
    (tmp_path / "20261201T120000Z" / "report.json").write_text("{broken")
    reports = DriftReports([tmp_path])
    summaries = reports.summaries("staging")
    assert [s["run_id"] for s in summaries] == ["20261201T110000Z", "20261201T100000Z"]
    assert reports.summaries("production") == []
    # next steps (a field the reliability work adds to a group) are kept
    assert summaries[0]["groups"][0]["next_steps"] == ["label a sample of the window"]
    (series,) = trends(summaries)
    assert [p["value"] for p in series["signals"][0]["points"]] == [0.02, 0.05]
    verdicts = latest_verdicts(summaries)[("3", "stable")]
    assert verdicts["drift"] == "ok" and verdicts["quality"] == "warn" and verdicts["macro_f1"] == 0.68
    assert reports.html_path("20261201T100000Z") == tmp_path / "20261201T100000Z" / "report.html"
    assert reports.html_path("../../etc") is None and reports.html_path("20991231T000000Z") is None


def test_settings_refuse_what_cannot_work() -> None:
    for bad in ({"predictors": ("stable=http://x",)}, {"weights": ("local/canary=101",)},
                {"start_command": "run {env}"}, {"read_requires_token": True}):
        with pytest.raises(ValidationError):
            ConsoleSettings(**bad)  # type: ignore[arg-type]
    s = ConsoleSettings(predictors=("local/stable=http://127.0.0.1:8080/", "local/canary=http://127.0.0.1:8081"),
                        weights=("local/canary=10",))
    assert s.predictor_table() == [("local", "stable", "http://127.0.0.1:8080"),
                                   ("local", "canary", "http://127.0.0.1:8081")]
    assert s.weight_table() == {("local", "canary"): 10}


def test_prometheus_series_from_the_query_range_api() -> None:
    """Against a stand-in answering Prometheus' HTTP API (``/api/v1/query_range``, its documented matrix result):
    Prometheus itself cannot run here. Each PromQL query gets the series a real server would return for it."""
    import asyncio
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    from control.console.sources.metrics import PrometheusMetrics

    def matrix(metric: dict[str, str], values: list[object]) -> dict[str, object]:
        return {"metric": metric, "values": [[1000.0 + 10 * i, str(v)] for i, v in enumerate(values)]}

    answers = {
        "rps": [matrix({"track": "stable"}, [4.0, 8.0]), matrix({"track": "canary"}, [1.0, 2.0])],
        "errors": [matrix({"track": "stable"}, [0.0, 0.4])],
        "p50": [matrix({"model_version": "3"}, [0.002, 0.003]), matrix({"model_version": "4"}, [0.004, "NaN"])],
        "p99": [matrix({"model_version": "3"}, [0.010, 0.012])],
        "classes": [matrix({"track": "stable", "label": "positive"}, [2.0, 3.0])],
        "versions": [matrix({"track": "stable", "model_version": "3"}, [1, 1]),
                     matrix({"track": "canary", "model_version": "4"}, [1, 1])],
    }
    prometheus = PrometheusMetrics("http://127.0.0.1:0", interval_s=10, points=2, timeout_s=5)
    by_query = {query: answers[name] for name, query in prometheus.queries("staging").items()}
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)["query"][0]
            asked.append(query)
            body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": by_query[query]}})
            self.send_response(200 if url.path == "/api/v1/query_range" else 404)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        prometheus.url = f"http://127.0.0.1:{server.server_address[1]}"
        series = asyncio.run(prometheus.series("staging"))
    finally:
        server.shutdown()
    assert all('namespace="staging"' in q for q in asked) and len(asked) == 6
    stable, canary = series["stable"], series["canary"]
    assert [p["rps"] for p in stable] == [4.0, 8.0] and [p["error_rate"] for p in stable] == [0.0, 0.05]
    assert [p["p50_ms"] for p in stable] == [2.0, 3.0] and [p["p99_ms"] for p in stable] == [10.0, 12.0]
    assert stable[1]["classes"] == {"positive": 3.0}
    assert [p["p50_ms"] for p in canary] == [4.0, None] and [p["rps"] for p in canary] == [1.0, 2.0]


def test_feedback_is_sent_in_the_feedback_contracts_shape() -> None:
    """``POST /v1/feedback`` takes a list of items ``{id, label, source?, at?}`` (serving/eventlog/feedback.py of the
    feedback work). Against a stand-in receiver (the predictor's endpoint is not on this branch yet): the body, a
    2xx taken as accepted, a 4xx passed on with the receiver's reason, a 404 named as a missing endpoint."""
    import asyncio
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from control.console.sources.predictor import PredictorClient, UpstreamError

    received: list[object] = []
    answers = iter([(202, {"accepted": 1}), (400, {"error": "item 0: label 'meh' is not one of the model's classes"}),
                    (404, {"error": "Not Found"})])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            status, body = next(answers)
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    client = PredictorClient("sentiment", 5.0)
    try:
        ok = asyncio.run(client.feedback(url, "console-abc:0", "negative"))
        with pytest.raises(UpstreamError) as refused:
            asyncio.run(client.feedback(url, "console-abc:0", "meh"))
        with pytest.raises(UpstreamError) as missing:
            asyncio.run(client.feedback(url, "console-abc:0", "negative"))
    finally:
        server.shutdown()
    assert received[0] == [{"id": "console-abc:0", "label": "negative", "source": "console"}]
    assert ok == {"accepted": True, "prediction_id": "console-abc:0", "label": "negative",
                  "predictor": {"accepted": 1}}
    assert refused.value.status == 400 and "not one of the model's classes" in refused.value.message
    assert missing.value.status == 502 and "no feedback endpoint" in missing.value.message
