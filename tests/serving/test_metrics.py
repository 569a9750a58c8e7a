"""The predictor's Prometheus series."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from serving.metrics import ServingMetrics


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
