"""Drift reports over time (the drift job's ``<output_dir>/<run id>/report.json``, schema
``kube-sentiment.drift-report/v1``), with their live-quality section when the job computed one, and the class mix
over time read from the prediction log (``serving.eventlog.reader.read_window``)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: A drift run id (``20261201T101500Z``): the only names the report route accepts.
RUN_ID = re.compile(r"^\d{8}T\d{6}Z$")
#: Most reports read (newest first); older ones are left out of the trends.
MAX_REPORTS = 500


def _signal_summary(signal: dict[str, Any]) -> dict[str, Any]:
    return {k: signal.get(k) for k in ("name", "family", "statistic", "value", "threshold_warn", "threshold_drift",
                                       "p_value_adjusted", "verdict", "n")}


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """What the pages need of one report: verdicts, per group its signals' values, and the quality section."""
    quality = report.get("quality") or None
    return {
        "run_id": report.get("run_id"),
        "generated_at": report.get("generated_at"),
        "environment": report.get("environment"),
        "window": report.get("window"),
        "verdict": report.get("verdict"),
        "records": report.get("records"),
        "groups": [{"model_version": str(g.get("model_version")), "track": g.get("track"), "n": g.get("n"),
                    "verdict": g.get("verdict"), "error": g.get("error"),
                    "signals": [_signal_summary(s) for s in g.get("signals", [])],
                    "next_steps": g.get("next_steps") or []}
                   for g in report.get("groups", [])],
        "quality": None if quality is None else {
            "verdict": quality.get("verdict"),
            "groups": [{k: g.get(k) for k in ("model_version", "track", "verdict", "macro_f1", "ci_low", "ci_high",
                                               "holdout_macro_f1", "delta", "labelled", "coverage", "predictions")}
                       for g in quality.get("groups", [])],
        },
        "next_steps": report.get("next_steps") or [],
    }


@dataclass
class DriftReports:
    """The reports in one or more directories; re-read when a directory changes (cached by modification times)."""

    dirs: Sequence[Path]
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cache: dict[Path, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    def _paths(self) -> list[Path]:
        paths: list[Path] = []
        for directory in self.dirs:
            if directory.is_dir():
                paths.extend(p for p in directory.glob("*/report.json") if RUN_ID.match(p.parent.name))
        paths.sort(key=lambda p: p.parent.name, reverse=True)
        return paths[:MAX_REPORTS]

    def summaries(self, environment: str | None = None) -> list[dict[str, Any]]:
        """Report summaries, newest first; only ``environment``'s (or those of every environment) when given."""
        out = []
        for path in self._paths():
            summary = self._load(path)
            if summary is None:
                continue
            if environment is not None and summary.get("environment") not in (None, environment):
                continue
            out.append(summary)
        return out

    def _load(self, path: Path) -> dict[str, Any] | None:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None and cached[0] == mtime:
                return cached[1]
        try:
            summary = summarise(json.loads(path.read_text()))
        except (OSError, ValueError, AttributeError, TypeError) as e:
            log.warning("skipping unreadable drift report %s: %s", path, e)
            return None
        with self._lock:
            self._cache[path] = (mtime, summary)
        return summary

    def html_path(self, run_id: str) -> Path | None:
        """The HTML report of ``run_id`` (``None`` for a malformed id or no such report)."""
        if not RUN_ID.match(run_id):
            return None
        for directory in self.dirs:
            path = directory / run_id / "report.html"
            if path.is_file():
                return path
        return None


def trends(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model version and track, each signal's value over time (oldest first) and the verdicts."""
    series: dict[tuple[str, str], dict[str, Any]] = {}
    for summary in reversed(summaries):
        at = summary.get("generated_at")
        for group in summary["groups"]:
            key = (group["model_version"], str(group["track"]))
            entry = series.setdefault(key, {"model_version": key[0], "track": key[1], "verdicts": [], "signals": {}})
            entry["verdicts"].append({"at": at, "run_id": summary["run_id"], "verdict": group["verdict"],
                                      "n": group["n"]})
            for s in group["signals"]:
                sig = entry["signals"].setdefault(s["name"], {"name": s["name"], "statistic": s["statistic"],
                                                              "threshold_warn": s["threshold_warn"],
                                                              "threshold_drift": s["threshold_drift"],
                                                              "points": []})
                sig["points"].append({"at": at, "value": s["value"], "verdict": s["verdict"]})
    return [dict(v, signals=list(v["signals"].values())) for _, v in sorted(series.items())]


def latest_verdicts(summaries: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The newest drift and quality verdict of each (model version, track)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for summary in summaries:  # newest first: the first seen wins
        for group in summary["groups"]:
            key = (group["model_version"], str(group["track"]))
            out.setdefault(key, {"drift": group["verdict"], "drift_run_id": summary["run_id"],
                                 "drift_at": summary["generated_at"]})
        for group in (summary.get("quality") or {}).get("groups", []):
            key = (str(group.get("model_version")), str(group.get("track")))
            entry = out.setdefault(key, {})
            entry.setdefault("quality", group.get("verdict"))
            entry.setdefault("macro_f1", group.get("macro_f1"))
    return out


@dataclass
class ClassMix:
    """Predicted classes per hour and track from the prediction log (cached for a minute: it reads Parquet)."""

    source: str
    hours: int
    endpoint_url: str | None = None
    region: str = "us-east-1"
    ttl_s: float = 60.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cache: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    def get(self, environment: str, now: datetime | None = None) -> dict[str, Any]:
        """``{hours: [iso...], tracks: {track: {label: [count per hour]}}, records}`` of the last ``hours``."""
        with self._lock:
            cached = self._cache.get(environment)
            if cached is not None and time.monotonic() - cached[0] < self.ttl_s and now is None:
                return cached[1]
        result = self._read(environment, now or datetime.now(UTC))
        with self._lock:
            self._cache[environment] = (time.monotonic(), result)
        return result

    def _read(self, environment: str, now: datetime) -> dict[str, Any]:
        import pyarrow.compute as pc

        from serving.eventlog.reader import read_window

        end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        start = end - timedelta(hours=self.hours)
        hours = [(start + timedelta(hours=i)) for i in range(self.hours)]
        empty = {"hours": [h.isoformat() for h in hours], "tracks": {}, "records": 0}
        if "://" not in self.source and not Path(self.source).is_dir():
            return empty  # nothing shipped yet
        window = read_window(self.source, start, end, columns=["ts", "track", "label"],
                             where={"environment": environment}, endpoint_url=self.endpoint_url, region=self.region)
        table = window.table
        if table.num_rows == 0:
            return empty
        bucket = pc.floor(pc.divide(pc.subtract(table["ts"], start.timestamp()), 3600.0)).to_pylist()
        tracks: dict[str, dict[str, list[int]]] = {}
        for index, track, label in zip(bucket, table["track"].to_pylist(), table["label"].to_pylist(), strict=True):
            if index is None or not 0 <= index < self.hours:
                continue
            counts = tracks.setdefault(str(track), {}).setdefault(str(label), [0] * self.hours)
            counts[int(index)] += 1
        return {"hours": [h.isoformat() for h in hours], "tracks": tracks, "records": table.num_rows}
