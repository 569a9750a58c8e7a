"""Request rate, error rate, latency quantiles and predicted classes per environment and track, over time.

Two sources with one output (:data:`Point` lists per track): :class:`Scraper` reads the predictors' own
``/metrics`` (:mod:`serving.metrics`: ``kube_sentiment_requests_total``, ``kube_sentiment_request_latency_seconds``,
``kube_sentiment_predictions_total``, ``kube_sentiment_model_info``) every interval and derives rates from two
consecutive scrapes; :class:`PrometheusMetrics` asks a Prometheus server the same questions in PromQL.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)

#: One point of a track's series: ``{t, rps, error_rate, p50_ms, p99_ms, classes: {label: per second}}``.
Point = dict[str, Any]
#: Request statuses that are the server's fault (the rest of the non-``ok`` ones are the client's).
SERVER_ERRORS = frozenset({"internal", "unavailable"})


@dataclass
class Snapshot:
    """Cumulative counters of one predictor at one moment."""

    t: float
    requests: dict[str, float] = field(default_factory=dict)
    """Requests by status (summed over protocols)."""
    buckets: dict[float, float] = field(default_factory=dict)
    """Cumulative latency histogram (seconds; ``inf`` last), summed over protocols."""
    classes: dict[str, float] = field(default_factory=dict)
    """Predicted texts by label."""
    version: str | None = None
    track: str | None = None
    environment: str | None = None


def parse_metrics(text: str, t: float) -> Snapshot:
    """A predictor's ``/metrics`` page as a :class:`Snapshot`."""
    from prometheus_client.parser import text_string_to_metric_families

    snap = Snapshot(t)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "kube_sentiment_requests_total":
                status = labels.get("status", "")
                snap.requests[status] = snap.requests.get(status, 0.0) + sample.value
                snap.version, snap.track = labels.get("model_version"), labels.get("track")
            elif sample.name == "kube_sentiment_request_latency_seconds_bucket":
                le = float(labels["le"])
                snap.buckets[le] = snap.buckets.get(le, 0.0) + sample.value
            elif sample.name == "kube_sentiment_predictions_total":
                label = labels.get("label", "")
                snap.classes[label] = snap.classes.get(label, 0.0) + sample.value
                snap.version, snap.track = labels.get("model_version"), labels.get("track")
            elif sample.name == "kube_sentiment_model_info" and sample.value == 1:
                snap.version = labels.get("model_version")
                snap.track = labels.get("track")
                snap.environment = labels.get("environment")
    return snap


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile``: the ``q`` quantile of a cumulative histogram by linear interpolation in its bucket
    (``None`` without observations; the highest finite bound when it falls into ``+Inf``)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def _delta(new: dict[Any, float], old: dict[Any, float]) -> dict[Any, float] | None:
    """Per-key increase, ``None`` after a counter reset (a restarted predictor)."""
    out = {}
    for key, value in new.items():
        before = old.get(key, 0.0)
        if value < before:
            return None
        out[key] = value - before
    return out


def rate_point(pairs: Iterable[tuple[Snapshot, Snapshot]]) -> Point | None:
    """One point from (previous, current) snapshot pairs of the instances of one track (rates summed)."""
    requests: dict[str, float] = {}
    buckets: dict[float, float] = {}
    classes: dict[str, float] = {}
    seconds, t, any_pair = 0.0, 0.0, False
    for old, new in pairs:
        dt = new.t - old.t
        d_req, d_buckets, d_classes = (_delta(new.requests, old.requests), _delta(new.buckets, old.buckets),
                                       _delta(new.classes, old.classes))
        if dt <= 0 or d_req is None or d_buckets is None or d_classes is None:
            continue
        any_pair = True
        seconds, t = max(seconds, dt), max(t, new.t)
        for bucket, value in ((requests, d_req), (buckets, d_buckets), (classes, d_classes)):
            for key, n in value.items():
                bucket[key] = bucket.get(key, 0.0) + n / dt
    if not any_pair:
        return None
    total = sum(requests.values())
    errors = sum(n for status, n in requests.items() if status != "ok")
    p50, p99 = quantile(0.5, buckets), quantile(0.99, buckets)
    return {"t": t, "rps": total, "error_rate": errors / total if total else 0.0,
            "server_error_rate": (sum(n for s, n in requests.items() if s in SERVER_ERRORS) / total) if total else 0.0,
            "p50_ms": None if p50 is None else p50 * 1000, "p99_ms": None if p99 is None else p99 * 1000,
            "classes": classes}


@dataclass(frozen=True)
class ScrapeTarget:
    """One predictor instance to scrape."""

    environment: str
    track: str
    url: str
    """Base URL (``http://10.0.0.7:8080``); ``/metrics`` is appended."""


class Scraper:
    """Scrapes the targets every interval and keeps ``points`` rate points per (environment, track)."""

    def __init__(self, targets: Callable[[], list[ScrapeTarget]], interval_s: float, points: int,
                 timeout_s: float) -> None:
        """``targets`` is asked before every round (pods come and go)."""
        self.targets = targets
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._last: dict[ScrapeTarget, Snapshot] = {}
        self._series: dict[tuple[str, str], deque[Point]] = {}
        self._points = points
        self.up: dict[ScrapeTarget, bool] = {}
        self.latest: dict[ScrapeTarget, Snapshot] = {}

    async def scrape_once(self, client: httpx.AsyncClient) -> None:
        """One round: every target once, then one point per track that has two scrapes."""
        try:
            targets = await asyncio.to_thread(self.targets)
        except Exception as e:  # a Kubernetes API hiccup must not stop the scraper
            log.warning("cannot list the scrape targets: %s", e)
            return

        async def one(target: ScrapeTarget) -> tuple[ScrapeTarget, Snapshot | None]:
            try:
                response = await client.get(f"{target.url}/metrics", timeout=self.timeout_s)
                response.raise_for_status()
                return target, parse_metrics(response.text, time.time())
            except (httpx.HTTPError, ValueError) as e:
                log.debug("scrape of %s failed: %s", target.url, e)
                return target, None

        results = await asyncio.gather(*(one(t) for t in targets))
        pairs: dict[tuple[str, str], list[tuple[Snapshot, Snapshot]]] = {}
        for target, snap in results:
            self.up[target] = snap is not None
            if snap is None:
                continue
            previous = self._last.get(target)
            self._last[target] = self.latest[target] = snap
            if previous is not None:
                pairs.setdefault((target.environment, target.track), []).append((previous, snap))
        gone = set(self._last) - set(targets)
        for target in gone:
            self._last.pop(target, None)
            self.latest.pop(target, None)
            self.up.pop(target, None)
        for key, track_pairs in pairs.items():
            point = rate_point(track_pairs)
            if point is not None:
                self._series.setdefault(key, deque(maxlen=self._points)).append(point)

    async def run(self) -> None:
        """Scrape forever (cancelled at shutdown)."""
        async with httpx.AsyncClient() as client:
            while True:
                started = time.monotonic()
                await self.scrape_once(client)
                await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    def series(self, environment: str) -> dict[str, list[Point]]:
        """Points per track of ``environment``, oldest first."""
        return {track: list(points) for (env, track), points in self._series.items() if env == environment}


@dataclass
class PrometheusMetrics:
    """The same series from a Prometheus server (the chart's PodMonitor or scrape annotations put the predictors'
    metrics there, with the pod's ``namespace`` label)."""

    url: str
    interval_s: float
    points: int
    timeout_s: float
    #: Range over which each rate is taken.
    rate_window: str = "2m"

    def queries(self, namespace: str) -> dict[str, str]:
        """PromQL per quantity, by track (latency by version: its histogram has no track label)."""
        sel = f'namespace="{namespace}"'
        w = self.rate_window
        return {
            "rps": f"sum by (track) (rate(kube_sentiment_requests_total{{{sel}}}[{w}]))",
            "errors": f'sum by (track) (rate(kube_sentiment_requests_total{{{sel},status!="ok"}}[{w}]))',
            "p50": f"histogram_quantile(0.5, sum by (model_version, le) "
                   f"(rate(kube_sentiment_request_latency_seconds_bucket{{{sel}}}[{w}])))",
            "p99": f"histogram_quantile(0.99, sum by (model_version, le) "
                   f"(rate(kube_sentiment_request_latency_seconds_bucket{{{sel}}}[{w}])))",
            "classes": f"sum by (track, label) (rate(kube_sentiment_predictions_total{{{sel}}}[{w}]))",
            "versions": f"max by (track, model_version) (kube_sentiment_model_info{{{sel}}})",
        }

    async def series(self, namespace: str) -> dict[str, list[Point]]:
        """Points per track over the last ``points`` intervals."""
        end = time.time()
        start = end - self.interval_s * (self.points - 1)
        results: dict[str, list[dict[str, Any]]] = {}
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            for name, query in self.queries(namespace).items():
                response = await client.get(f"{self.url.rstrip('/')}/api/v1/query_range",
                                            params={"query": query, "start": start, "end": end,
                                                    "step": self.interval_s})
                response.raise_for_status()
                body = response.json()
                if body.get("status") != "success":
                    raise ValueError(f"Prometheus answered {body.get('status')}: {body.get('error')}")
                results[name] = body["data"]["result"]
        track_of = {r["metric"].get("model_version"): r["metric"].get("track") for r in results["versions"]}
        points: dict[str, dict[float, Point]] = {}

        def at(track: str, t: float) -> Point:
            return points.setdefault(track, {}).setdefault(t, {"t": t, "rps": 0.0, "error_rate": 0.0,
                                                               "p50_ms": None, "p99_ms": None, "classes": {}})

        errors: dict[tuple[str, float], float] = {}
        for r in results["errors"]:
            for t, v in r["values"]:
                errors[(r["metric"].get("track", ""), float(t))] = float(v)
        for r in results["rps"]:
            track = r["metric"].get("track", "")
            for t, v in r["values"]:
                p = at(track, float(t))
                p["rps"] = float(v)
                p["error_rate"] = errors.get((track, float(t)), 0.0) / float(v) if float(v) else 0.0
        for name in ("p50", "p99"):
            for r in results[name]:
                track = track_of.get(r["metric"].get("model_version"))
                if track is None:
                    continue
                for t, v in r["values"]:
                    value = float(v)
                    at(track, float(t))[f"{name}_ms"] = None if math.isnan(value) else value * 1000
        for r in results["classes"]:
            track, label = r["metric"].get("track", ""), r["metric"].get("label", "")
            for t, v in r["values"]:
                at(track, float(t))["classes"][label] = float(v)
        return {track: [by_t[t] for t in sorted(by_t)] for track, by_t in points.items()}
