"""Prediction events for tests and benchmarks, built with the contract's own ``make_event``, a local sink written
through the shipper's own code path (events → spool lines → Parquet objects), and the events a predictor wrote to
its journal, read with the journal's own reader."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from serving.eventlog.events import REQUEST_SCHEMA, PredictionEvent, expand_request, make_event
from serving.eventlog.feedback import make_feedback
from serving.eventlog.journal import JournalReader
from serving.shipper.objects import segment_objects
from serving.shipper.sinks import LocalSink
from serving.shipper.wire import parse_ndjson

CLASSES = ("negative", "neutral", "positive")


def events(n: int, start: int = 0, prefix: str = "req", model_version: str = "1", track: str = "stable",
           environment: str = "test", ts: float | None = None, texts: Sequence[str] | None = None,
           ) -> list[PredictionEvent]:
    """``n`` synthetic events with ids ``<prefix><i>:0`` for ``i`` in ``start .. start+n-1``."""
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


def journal_events(directory: Path) -> list[dict[str, Any]]:
    """Every event in the journal files of ``directory`` (request records expanded as the sidecar does), read with
    a fresh :class:`JournalReader` that deletes nothing."""
    reader = JournalReader(directory)
    found: list[dict[str, Any]] = []
    try:
        while chunks := reader.poll():
            for chunk in chunks:
                for line in chunk.data.splitlines():
                    obj = orjson.loads(line)
                    if obj.get("schema") == REQUEST_SCHEMA:
                        found.extend(orjson.loads(event) for event in expand_request(obj))
                    else:
                        found.append(obj)
                reader.advance(chunk.stem, chunk.end)
    finally:
        reader.close()
    return found


def feedback_events(ids: Sequence[str], labels: Sequence[str], source: str = "api", received: float | None = None,
                    environment: str = "test", at: float | None = None) -> list[dict[str, Any]]:
    """Feedback events labelling the predictions ``ids`` (as the predictor's ``POST /v1/feedback`` stores them)."""
    now = time.time() if received is None else received
    return [dict(make_feedback(i, label, source=source, at=at, received=now, environment=environment))
            for i, label in zip(ids, labels, strict=True)]


def ndjson(batch: Sequence[PredictionEvent | dict[str, Any]]) -> bytes:
    """NDJSON body of ``batch``."""
    return b"".join(orjson.dumps(e) + b"\n" for e in batch)


def predicted_events(pipeline: Any, texts: Sequence[str], model_version: str = "1", track: str = "stable",
                     environment: str = "test", ts: float | None = None, prefix: str = "r",
                     mirror_of_prefix: str | None = None, latency_ms: float = 2.0) -> list[dict[str, Any]]:
    """Contract events for ``texts`` as the predictor would emit them, with a real model's probabilities (one
    request ``<prefix><i>`` per text). ``mirror_of_prefix``: shadow events, text ``i`` mirroring the request
    ``<mirror_of_prefix><i>`` (the live event ``<mirror_of_prefix><i>:0``)."""
    now = time.time() if ts is None else ts
    probabilities = pipeline.predict_proba(list(texts))
    classes = [str(c) for c in pipeline.classes_]
    return [dict(make_event(request_id=f"{prefix}{i}", index=0, ts=now, model_name="sentiment",
                            model_version=model_version, track=track, environment=environment, protocol="v1",
                            text=text, log_text=True, classes=classes, probabilities=row, latency_ms=latency_ms,
                            mirror_of=None if mirror_of_prefix is None else f"{mirror_of_prefix}{i}"))
            for i, (text, row) in enumerate(zip(texts, probabilities, strict=True))]


def sink_ids(root: Path) -> list[str]:
    """Every event id in a local sink (with repeats, if any)."""
    import pyarrow.dataset as ds

    files = [p for p in root.rglob("*.parquet") if not p.name.startswith(".")]
    if not files:
        return []
    return ds.dataset(files, format="parquet").to_table(columns=["id"]).column("id").to_pylist()


class PermutedModel:
    """A fitted pipeline whose class mapping is permuted (the answer of class ``i`` is reported as class
    ``shift + i``): a broken release with the same confidence distribution as the good one."""

    def __init__(self, pipeline: Any, shift: int = 1) -> None:
        self.pipeline = pipeline
        self.classes_ = pipeline.classes_
        self.shift = shift

    def predict_proba(self, texts: list[str]) -> Any:
        import numpy as np

        return np.roll(self.pipeline.predict_proba(texts), self.shift, axis=1)


def write_to_sink(root: Path, batch: Sequence[PredictionEvent | dict[str, Any]], segment_id: str) -> int:
    """Write events to a local sink as the shipper would (same parsing, partitioning and Parquet encoding)."""
    good, bad, _ = parse_ndjson(ndjson(batch), time.time())
    sink = LocalSink(root)
    objects, _ = segment_objects(segment_id, good + bad)
    for key, data, _ in objects:
        sink.put(key, data)
    return len(good)


PRODUCTS = ["dishwasher", "router", "thermostat", "espresso machine", "printer", "drill", "washing machine",
            "air purifier", "vacuum cleaner", "microwave oven", "projector", "water heater"]
PARTS = ["filter", "power cord", "drain hose", "control panel", "mounting bracket", "firmware", "heating element",
         "cartridge", "reset button", "gasket", "fuse", "display"]
ACTIONS = ["Disconnect the {p} from the mains before removing the {x}.",
           "Press and hold the reset button for ten seconds to restore the factory settings of the {p}.",
           "Clean the {x} of your {p} every three months with a soft, dry cloth.",
           "If the {p} displays error code E{n}, check that the {x} is seated correctly.",
           "Tighten the four screws of the {x} to a torque of {n} newton metres.",
           "Do not operate the {p} without the {x} installed; doing so voids the warranty.",
           "The {x} of the {p} must be replaced by an authorised service technician.",
           "Refer to section {n}.2 for the wiring diagram of the {x}.",
           "Store the {p} in a dry place between 5 and {n} degrees Celsius.",
           "Allow the {p} to cool down for {n} minutes before touching the {x}."]


def manual_sentences(n: int, seed: int = 0) -> list[str]:
    """Product-manual sentences from templates: a domain far from airline and brand tweets."""
    rng = random.Random(seed)
    return [rng.choice(ACTIONS).format(p=rng.choice(PRODUCTS), x=rng.choice(PARTS), n=rng.randint(2, 90))
            for _ in range(n)]


def python_doc_sentences() -> list[str]:
    """Sentences of Python's language reference, as shipped with every Python in the standard library's
    ``pydoc_data`` package: real, varied English prose from a domain the tweet corpus does not contain (software
    documentation), of tweet-like length (40-160 characters; code, markup and examples left out). About 800."""
    from pydoc_data.topics import topics

    found = set()
    for text in topics.values():
        for paragraph in re.split(r"\n\s*\n", text):
            if paragraph.startswith((" ", "\t")) or ">>>" in paragraph or "::" in paragraph:
                continue  # indented code, doctests, literal blocks
            paragraph = " ".join(paragraph.split())
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", paragraph):
                if (40 <= len(sentence) <= 160 and sentence[0].isupper() and sentence.endswith(".")
                        and not re.search(r"[|*=<>{}\[\]`\\]|\.\.\.", sentence)):
                    found.add(sentence)
    return sorted(found)


def gibberish(n: int, seed: int = 0) -> list[str]:
    """Random letter strings shaped like short texts."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [" ".join("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(rng.randint(4, 16)))
            for _ in range(n)]


#: Labels the shipper gives joined KServe records that do not carry them (as ``JoinDefaults``).
JOIN_DEFAULTS = ("test", "sentiment", "9", "canary", CLASSES)


def cloudevent_half(kind: str, ce_id: str, body: object, when: float = 10.0) -> dict[str, Any]:
    """A KServe payload-logger CloudEvent half (``request`` or ``response``) as the shipper receives it."""
    from serving.shipper.cloudevents import REQUEST_TYPE, RESPONSE_TYPE, make_half

    headers = {"ce-id": ce_id, "ce-type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
               "ce-source": "http://sentiment-predictor", "ce-inferenceservicename": "sentiment",
               "ce-specversion": "1.0", "content-type": "application/json"}
    return make_half(headers, orjson.dumps(body), when)


def shipped_events(lines: Sequence[bytes]) -> list[dict[str, Any]]:
    """The events the sink gets from a segment of spool ``lines`` (rows of its Parquet objects, in key order)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    objects, _ = segment_objects("seg", lines)
    tables = [pq.read_table(io.BytesIO(o.data)) for o in objects if o.key.endswith(".parquet")]
    return pa.concat_tables(tables).to_pylist() if tables else []
