"""What a rollout analysis is computed from: the prediction logs of the window (read with
:func:`serving.eventlog.reader.read_window`) per track and model version, the serving metrics (a Prometheus query
API when one is given), and live labels (the ``feedback`` event log, joined by :mod:`control.quality.join`).

The result is an :class:`~control.rollout.checks.AnalysisInput`, the pure input of the checks.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from control.quality.join import FEEDBACK_COLUMNS, join
from control.rollout.checks import AnalysisInput, Labelled, TrackSample
from model.errors import DataError, UnavailableError
from serving.eventlog.events import mirrored_event_id
from serving.eventlog.parquet import FEEDBACK
from serving.eventlog.reader import read_window

log = logging.getLogger(__name__)

COLUMNS = ["id", "request_id", "ts", "model_version", "track", "label", "confidence", "latency_ms", "mirror_of"]
#: Request outcomes (the ``status`` label of ``kube_sentiment_requests_total``) that are not server errors.
NOT_SERVER_ERRORS = ("ok", "invalid_argument")


@dataclass(frozen=True)
class Selection:
    """Which predictions an analysis compares: the stable track's version against the candidate's, in one
    environment, over ``[start, end)``. A version left ``None`` is the one the logs show on that track."""

    track: Literal["canary", "shadow"]
    start: datetime
    end: datetime
    environment: str | None = None
    stable_version: str | None = None
    candidate_version: str | None = None
    model_name: str = "sentiment"


@dataclass(frozen=True)
class LogSource:
    """A sink holding prediction logs: a local directory or ``s3://bucket/prefix``."""

    source: str
    endpoint_url: str | None = None
    region: str = "us-east-1"

    def read(self, selection: Selection) -> pa.Table:
        """The window's predictions of the environment on the stable and the candidate track."""
        where: dict[str, Any] = {"track": ["stable", selection.track]}
        if selection.environment is not None:
            where["environment"] = selection.environment
        return read_window(self.source, selection.start, selection.end, columns=COLUMNS, where=where,
                           endpoint_url=self.endpoint_url, region=self.region).table

    def labels(self, selection: Selection) -> pa.Table:
        """The feedback received from the window's start up to now (labels come late), the columns
        :func:`control.quality.join.join` needs."""
        where = {"environment": selection.environment} if selection.environment is not None else None
        window = read_window(self.source, selection.start, max(datetime.now(UTC), selection.end), event_log=FEEDBACK,
                             columns=list(FEEDBACK_COLUMNS), where=where, endpoint_url=self.endpoint_url,
                             region=self.region)
        return window.table


def _only_version(table: pa.Table, track: str, given: str | None) -> str | None:
    """``given``, or the one model version the logs show on ``track`` (``DataError`` when there are several)."""
    if given is not None:
        return given
    versions = sorted(set(table.filter(pc.equal(table.column("track"), track)).column("model_version").to_pylist()))
    if len(versions) > 1:
        raise DataError(f"the {track} track served versions {versions} in the window; say which to compare "
                        f"(--{'stable' if track == 'stable' else 'candidate'}-version)")
    return versions[0] if versions else None


def _rows(table: pa.Table, version: str | None, track: str) -> pa.Table:
    if version is None:
        return table.slice(0, 0)
    mask = pc.and_(pc.equal(table.column("model_version"), version), pc.equal(table.column("track"), track))
    return table.filter(mask)


def _sample(rows: pa.Table) -> TrackSample:
    """Classes and confidences per text, latency per request (a request's texts share its latency)."""
    requests = rows.group_by("request_id").aggregate([("latency_ms", "max")]) if rows.num_rows else None
    latency = (pc.fill_null(requests.column("latency_ms_max"), np.nan).to_numpy(zero_copy_only=False)
               if requests is not None else np.array([]))
    return TrackSample(
        labels=np.asarray(rows.column("label").to_pylist(), dtype=object),
        confidence=pc.fill_null(rows.column("confidence"), np.nan).to_numpy(zero_copy_only=False),
        latency_ms=latency[np.isfinite(latency)],
    )


def _pairs(stable: pa.Table, candidate: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Each mirrored text's stable and candidate class (the live event ``<mirror_of>:<i>`` joined by id)."""
    mirrored = candidate.filter(pc.invert(pc.is_null(candidate.column("mirror_of"))))
    if mirrored.num_rows == 0:
        return np.array([], dtype=object), np.array([], dtype=object)
    live_ids = [mirrored_event_id(i, m) for i, m in zip(mirrored.column("id").to_pylist(),
                                                        mirrored.column("mirror_of").to_pylist(), strict=True)]
    shadow = pa.table({"live_id": live_ids, "candidate": mirrored.column("label")})
    live = pa.table({"live_id": stable.column("id"), "stable": stable.column("label")})
    joined = shadow.join(live, "live_id", join_type="inner")
    return (np.asarray(joined.column("stable").to_pylist(), dtype=object),
            np.asarray(joined.column("candidate").to_pylist(), dtype=object))


def _labelled(rows: pa.Table, feedback: pa.Table) -> Labelled:
    """A track's predictions that have one true label, by the rules every consumer of feedback shares
    (:func:`control.quality.join.join`: the latest label per source, the majority across sources); a label counts
    whenever it came (the window's end is now)."""
    labelled, _ = join(rows.select(["id", "ts", "label"]).to_pandas(), feedback.to_pandas(), math.inf)
    return Labelled(np.asarray(labelled["true_label"].tolist(), dtype=object),
                    np.asarray(labelled["label"].tolist(), dtype=object))


@dataclass(frozen=True)
class Prometheus:
    """The serving metrics of a track from a Prometheus HTTP query API (``/api/v1/query``). ``selector``: extra
    label matchers for every query, e.g. ``namespace="production"``."""

    url: str
    selector: str = ""
    timeout_s: float = 10.0

    def query(self, expr: str, at: datetime) -> list[tuple[dict[str, str], float]]:
        """An instant vector: ``[(labels, value)]``. ``UnavailableError`` when the API cannot be reached,
        ``DataError`` when it refuses the query."""
        import httpx

        try:
            response = httpx.get(f"{self.url.rstrip('/')}/api/v1/query", params={"query": expr,
                                 "time": f"{at.timestamp():.3f}"}, timeout=self.timeout_s)
        except httpx.HTTPError as e:
            raise UnavailableError(f"Prometheus {self.url} unreachable: {e}") from e
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            raise DataError(f"Prometheus refused {expr!r}: HTTP {response.status_code} {body.get('error', '')}")
        data = body["data"]
        if data.get("resultType") != "vector":
            raise DataError(f"Prometheus answered {data.get('resultType')!r} to {expr!r}, not a vector")
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def _matchers(self, model_name: str, version: str, track: str | None) -> str:
        parts = [f'model_name="{model_name}"', f'model_version="{version}"']
        if track is not None:
            parts.append(f'track="{track}"')
        if self.selector.strip():
            parts.append(self.selector.strip().strip(","))
        return ",".join(parts)

    def track(self, model_name: str, version: str, track: str, start: datetime,
              end: datetime) -> tuple[int, int, float | None]:
        """``(requests, server errors, p99 latency in ms or None)`` of one track over ``[start, end)``."""
        seconds = max(1, math.ceil((end - start).total_seconds()))
        by_status = self.query(f"sum by (status) (increase(kube_sentiment_requests_total"
                               f"{{{self._matchers(model_name, version, track)}}}[{seconds}s]))", end)
        served = sum(v for _, v in by_status)
        errors = sum(v for labels, v in by_status if labels.get("status") not in NOT_SERVER_ERRORS)
        quantile = self.query(f"histogram_quantile(0.99, sum by (le) (increase("
                              f"kube_sentiment_request_latency_seconds_bucket"
                              f"{{{self._matchers(model_name, version, None)}}}[{seconds}s])))", end)
        p99 = quantile[0][1] * 1000.0 if quantile and math.isfinite(quantile[0][1]) else None
        return round(served), round(errors), p99


@dataclass(frozen=True)
class Inputs:
    """Where an analysis reads from."""

    logs: LogSource
    prometheus: Prometheus | None = None


@dataclass(frozen=True)
class Gathered:
    """The analysis input and what it was computed from."""

    data: AnalysisInput
    stable_version: str | None
    candidate_version: str | None
    sources: dict[str, Any]


def gather(inputs: Inputs, selection: Selection) -> Gathered:
    """Read everything one analysis needs."""
    table = inputs.logs.read(selection)
    stable_version = _only_version(table, "stable", selection.stable_version)
    candidate_version = _only_version(table, selection.track, selection.candidate_version)
    if stable_version is not None and stable_version == candidate_version:
        raise DataError(f"stable and {selection.track} both serve version {stable_version}: nothing to compare")
    stable_rows = _rows(table, stable_version, "stable")
    candidate_rows = _rows(table, candidate_version, selection.track)
    stable, candidate = _sample(stable_rows), _sample(candidate_rows)
    sources: dict[str, Any] = {"logs": inputs.logs.source, "metrics": "logs", "labels": None}
    if inputs.prometheus is not None and stable_version is not None and candidate_version is not None:
        prom = inputs.prometheus
        s = prom.track(selection.model_name, stable_version, "stable", selection.start, selection.end)
        c = prom.track(selection.model_name, candidate_version, selection.track, selection.start, selection.end)
        stable = TrackSample(stable.labels, stable.confidence, stable.latency_ms, *s)
        candidate = TrackSample(candidate.labels, candidate.confidence, candidate.latency_ms, *c)
        sources["metrics"] = prom.url
    pairs = _pairs(stable_rows, candidate_rows) if selection.track == "shadow" else None
    labels = inputs.logs.labels(selection)
    labelled = None
    if labels.num_rows:
        labelled = (_labelled(stable_rows, labels), _labelled(candidate_rows, labels))
        sources["labels"] = "feedback"
    classes = sorted({*map(str, stable.labels), *map(str, candidate.labels)})
    data = AnalysisInput(selection.track, classes, stable, candidate, pairs, labelled)
    log.info("analysis input: stable %s (%d predictions), %s %s (%d)%s", stable_version, stable.n, selection.track,
             candidate_version, candidate.n, f", {len(pairs[0])} mirrored pairs" if pairs is not None else "")
    return Gathered(data, stable_version, candidate_version, sources)
