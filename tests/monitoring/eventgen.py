"""Prediction events for tests and benchmarks, built with the contract's own ``make_event``."""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson

from serving.eventlog.events import PredictionEvent, make_event

CLASSES = ("negative", "neutral", "positive")


def events(n: int, start: int = 0, prefix: str = "req", model_version: str = "1", track: str = "stable",
           environment: str = "test", ts: float | None = None, texts: Sequence[str] | None = None,
           ) -> list[PredictionEvent]:
    """``n`` events with ids ``<prefix><i>:0`` for ``i`` in ``start .. start+n-1``."""
    now = time.time() if ts is None else ts
    out = []
    for i in range(start, start + n):
        p = ((i * 7) % 10) / 10.0
        probs = [0.9 - 0.8 * p, 0.05 + 0.4 * p, 0.05 + 0.4 * p]
        text = texts[i % len(texts)] if texts else f"text number {i} is rather good"
        out.append(make_event(request_id=f"{prefix}{i}", index=0, ts=now, model_name="sentiment",
                              model_version=model_version, track=track, environment=environment, protocol="v1",
                              text=text, log_text=True, classes=CLASSES, probabilities=probs, latency_ms=1.5))
    return out


def ndjson(batch: Sequence[PredictionEvent]) -> bytes:
    """NDJSON body of ``batch``."""
    return b"".join(orjson.dumps(e) + b"\n" for e in batch)
