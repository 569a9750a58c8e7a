"""Prometheus metrics of the predictor, exposed on KServe's ``/metrics`` (the default registry).

Created once per model by its constructor, never at import time. The per-request and per-batch metrics (requests,
latency, texts per request and per batch, predicted classes) are plain counters read by a collector at scrape
time: prometheus_client's lock and checks per ``inc``/``observe`` cost more than the rest of a request's
bookkeeping. They are only touched from the server's event loop.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.5)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _Histogram:
    """Bucket counts and sum of one histogram series."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative ``(le, count)`` pairs, ``+Inf`` last."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(floatToGoString, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class _HotPathCollector(Collector):
    """Exposes the plain counters of :class:`ServingMetrics` at scrape time."""

    def __init__(self, owner: ServingMetrics) -> None:
        self._m = owner

    def collect(self) -> Iterator[Metric]:
        m = self._m
        base = [m.model_name, m.model_version]
        requests = CounterMetricFamily(
            "kube_sentiment_requests", "Inference requests by protocol and outcome status.",
            labels=["model_name", "model_version", "track", "protocol", "status"],
        )
        for (protocol, status), n in list(m.request_counts.items()):
            requests.add_metric([*base, m.track, protocol, status], n)
        yield requests
        for name, doc, series in (
            ("kube_sentiment_request_latency_seconds", "Server-side latency of successful inference requests.",
             m.latency_seconds),
            ("kube_sentiment_request_texts", "Texts per inference request.", m.request_texts),
        ):
            family = HistogramMetricFamily(name, doc, labels=["model_name", "model_version", "protocol"])
            for protocol, hist in list(series.items()):
                family.add_metric([*base, protocol], hist.buckets(), hist.total)
            yield family
        batches = HistogramMetricFamily("kube_sentiment_batch_texts", "Texts per micro-batch computed together.",
                                        labels=["model_name", "model_version"])
        batches.add_metric(base, m.batch_texts.buckets(), m.batch_texts.total)
        yield batches
        predictions = CounterMetricFamily(
            "kube_sentiment_predictions", "Predicted class of every classified text.",
            labels=["model_name", "model_version", "track", "label"],
        )
        for label, n in zip(m.classes, m.class_counts, strict=True):
            predictions.add_metric([*base, m.track, label], n)
        yield predictions


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
        self.request_counts: dict[tuple[str, str], int] = {}
        self.latency_seconds: dict[str, _Histogram] = {}
        self.request_texts: dict[str, _Histogram] = {}
        self.batch_texts = _Histogram(SIZE_BUCKETS)
        self.classes: tuple[str, ...] = ()
        self.class_counts: list[int] = []
        self.events = Counter(
            "kube_sentiment_events_total",
            "Prediction events by outcome: written (to the sidecar's journal), dropped_queue_full, "
            "dropped_journal_full, dropped_write_failed, dropped_unencodable.",
            (*base, "outcome"), registry=reg,
        )
        self.events_queued = Gauge(
            "kube_sentiment_events_queued", "Prediction events waiting in memory to be written.", base,
            registry=reg,
        )
        self.feedback_items = Counter(
            "kube_sentiment_feedback_total",
            "Feedback items of POST /v1/feedback by outcome: accepted (stored), bad_request, too_large, unavailable, "
            "not_ready (refused requests count 1).",
            (*base, "outcome"), registry=reg,
        )
        self.info = Gauge(
            "kube_sentiment_model_info", "The served model (value 1) with its version, track and inference path.",
            (*base, "track", "environment", "inference_path"), registry=reg,
        )
        self._labels = (model_name, model_version)
        self._queued = self.events_queued.labels(*self._labels)
        outcomes = ("written", "dropped_queue_full", "dropped_journal_full", "dropped_write_failed",
                    "dropped_unencodable")
        self._events = {o: self.events.labels(*self._labels, o) for o in outcomes}
        reg.register(_HotPathCollector(self))

    def set_info(self, environment: str, inference_path: str, classes: Sequence[str]) -> None:
        """Publish the model-info gauge and start the per-class counters."""
        self.info.labels(*self._labels, self.track, environment, inference_path).set(1)
        self.classes = tuple(classes)
        self.class_counts = [0] * len(self.classes)

    def request(self, protocol: str, status: str) -> None:
        """Count one request."""
        key = (protocol, status)
        self.request_counts[key] = self.request_counts.get(key, 0) + 1

    def success(self, protocol: str, seconds: float, n_texts: int) -> None:
        """Count and time one successful request carrying ``n_texts`` texts."""
        self.request(protocol, "ok")
        latency = self.latency_seconds.get(protocol)
        if latency is None:
            latency = self.latency_seconds[protocol] = _Histogram(LATENCY_BUCKETS)
            self.request_texts[protocol] = _Histogram(SIZE_BUCKETS)
        latency.observe(seconds)
        self.request_texts[protocol].observe(n_texts)

    def batch(self, n_texts: int, winners: Sequence[int]) -> None:
        """Record one computed micro-batch and the class index predicted for each of its texts."""
        self.batch_texts.observe(n_texts)
        counts = self.class_counts
        for k in winners:
            counts[k] += 1

    def event(self, outcome: str, n: int) -> None:
        """Count ``n`` events with ``outcome`` (``written``, ``dropped_queue_full``, ``dropped_journal_full``,
        ``dropped_write_failed``, ``dropped_unencodable``)."""
        if n:
            self._events[outcome].inc(n)

    def feedback(self, outcome: str, n: int) -> None:
        """Count ``n`` feedback items (or one refused request) with ``outcome``."""
        self.feedback_items.labels(*self._labels, outcome).inc(n)

    def queued(self, n: int) -> None:
        """Set the number of events waiting in memory."""
        self._queued.set(n)
