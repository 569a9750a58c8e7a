"""Prometheus metrics of the predictor, exposed on KServe's ``/metrics`` (the default registry).

Created once per model by its constructor, never at import time. Label children used on the hot path are cached.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.5)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
    """Request, latency, batch, prediction and event metrics for one served model."""

    def __init__(
        self,
        model_name: str,
        model_version: str,
        track: str,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """Register the metrics in ``registry`` (default: the process-wide one KServe serves on ``/metrics``)."""
        reg = REGISTRY if registry is None else registry
        self.model_name = model_name
        self.model_version = model_version
        self.track = track
        base = ("model_name", "model_version")
        self.requests = Counter(
            "kube_sentiment_requests_total", "Inference requests by protocol and outcome status.",
            (*base, "track", "protocol", "status"), registry=reg,
        )
        self.latency = Histogram(
            "kube_sentiment_request_latency_seconds", "Server-side latency of successful inference requests.",
            (*base, "protocol"), buckets=LATENCY_BUCKETS, registry=reg,
        )
        self.request_texts = Histogram(
            "kube_sentiment_request_texts", "Texts per inference request.",
            (*base, "protocol"), buckets=SIZE_BUCKETS, registry=reg,
        )
        self.batch_texts = Histogram(
            "kube_sentiment_batch_texts", "Texts per micro-batch computed together.",
            base, buckets=SIZE_BUCKETS, registry=reg,
        )
        self.predictions = Counter(
            "kube_sentiment_predictions_total", "Predicted class of every classified text.",
            (*base, "track", "label"), registry=reg,
        )
        self.events = Counter(
            "kube_sentiment_events_total",
            "Prediction events by outcome: sent, dropped_queue_full, dropped_send_failed.",
            (*base, "outcome"), registry=reg,
        )
        self.events_queued = Gauge(
            "kube_sentiment_events_queued", "Prediction events waiting in memory for the sidecar.", base,
            registry=reg,
        )
        self.info = Gauge(
            "kube_sentiment_model_info", "The served model (value 1) with its version, track and inference path.",
            (*base, "track", "environment", "inference_path"), registry=reg,
        )
        self._labels = (model_name, model_version)
        self._requests: dict[tuple[str, str], Counter] = {}
        self._latency: dict[str, tuple[Histogram, Histogram]] = {}
        self._batch = self.batch_texts.labels(*self._labels)
        self._queued = self.events_queued.labels(*self._labels)
        self._events = {
            o: self.events.labels(*self._labels, o) for o in ("sent", "dropped_queue_full", "dropped_send_failed")
        }
        self._predictions: list[Counter] = []

    def set_info(self, environment: str, inference_path: str, classes: Sequence[str]) -> None:
        """Publish the model-info gauge and pre-create the per-class counters."""
        self.info.labels(*self._labels, self.track, environment, inference_path).set(1)
        self._predictions = [self.predictions.labels(*self._labels, self.track, c) for c in classes]

    def request(self, protocol: str, status: str) -> None:
        """Count one request."""
        key = (protocol, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.requests.labels(*self._labels, self.track, protocol, status)
        child.inc()

    def success(self, protocol: str, seconds: float, n_texts: int) -> None:
        """Count and time one successful request carrying ``n_texts`` texts."""
        self.request(protocol, "ok")
        pair = self._latency.get(protocol)
        if pair is None:
            pair = self._latency[protocol] = (
                self.latency.labels(*self._labels, protocol), self.request_texts.labels(*self._labels, protocol)
            )
        pair[0].observe(seconds)
        pair[1].observe(n_texts)

    def batch(self, n_texts: int, class_counts: Sequence[int]) -> None:
        """Record one computed micro-batch and the classes it predicted."""
        self._batch.observe(n_texts)
        for child, count in zip(self._predictions, class_counts, strict=False):
            if count:
                child.inc(int(count))

    def event(self, outcome: str, n: int) -> None:
        """Count ``n`` events with ``outcome`` (``sent``, ``dropped_queue_full``, ``dropped_send_failed``)."""
        if n:
            self._events[outcome].inc(n)

    def queued(self, n: int) -> None:
        """Set the number of events waiting in memory."""
        self._queued.set(n)
