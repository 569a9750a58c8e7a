"""Records the shipper spools and writes: validated prediction events, quarantined input, CloudEvent halves.

A spool line is one JSON object. Three kinds:

* a prediction event (``serving.events`` contract) plus ``received_at`` and ``source``;
* a quarantine record ``{"_q": reason, "raw": <text>, "received_at": ...}`` for input that broke the contract;
* a CloudEvent half ``{"_h": "request"|"response", "ce": {ce-* headers}, "body": <text>, "received_at": ...}``,
  KServe's payload logger sends request and response separately; halves are journalled until joined.

This module also turns a list of events into partitioned, compressed Parquet objects.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from serving.events import SCHEMA, validate_event

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
SOURCE_PREDICTOR = "predictor"
SOURCE_KSERVE = "kserve-logger"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

#: Columns of every Parquet object (the partition columns live in the object key, not in the file).
PARQUET_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("request_id", pa.string()),
        ("ts", pa.float64()),
        ("received_at", pa.float64()),
        ("model_name", pa.string()),
        ("track", pa.string()),
        ("protocol", pa.string()),
        ("source", pa.string()),
        ("schema", pa.string()),
        ("text", pa.string()),
        ("text_sha256", pa.string()),
        ("text_length", pa.int32()),
        ("label", pa.string()),
        ("confidence", pa.float64()),
        ("latency_ms", pa.float64()),
        ("probabilities", pa.map_(pa.string(), pa.float64())),
    ]
)
PARTITION_KEYS = ("environment", "model_version", "date", "hour")


class MalformedInput(ValueError):
    """Input that cannot become a record; the message says why (it is stored with the quarantined input)."""


def parse_ndjson(body: bytes, received_at: float) -> tuple[list[bytes], list[bytes], int]:
    """Split an NDJSON body into spool lines: ``(event_lines, quarantine_lines, n_events)``.

    Each valid event gets ``received_at`` and ``source``; each invalid line becomes a quarantine record.
    """
    good: list[bytes] = []
    bad: list[bytes] = []
    for raw in body.splitlines():
        if not raw.strip():
            continue
        try:
            obj = validate_event(orjson.loads(raw))
        except orjson.JSONDecodeError as e:
            bad.append(quarantine_line(f"invalid JSON: {e}", raw, received_at))
            continue
        except ValueError as e:
            bad.append(quarantine_line(str(e), raw, received_at))
            continue
        obj["received_at"] = received_at  # type: ignore[typeddict-unknown-key]
        obj["source"] = SOURCE_PREDICTOR  # type: ignore[typeddict-unknown-key]
        good.append(orjson.dumps(obj))
    return good, bad, len(good)


def quarantine_line(reason: str, raw: bytes | str, received_at: float) -> bytes:
    """A spool line holding input that broke the contract, with the reason."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return orjson.dumps({"_q": reason[:500], "raw": text, "received_at": received_at})


def _texts_from_request(body: Any) -> tuple[list[str], str]:
    """The input texts of a V1 (``instances``) or V2 (``inputs``) inference request, and the protocol."""
    if not isinstance(body, dict):
        raise MalformedInput("inference request body is not a JSON object")
    if "instances" in body:
        texts = []
        for item in body["instances"]:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                texts.append(item["text"])
            elif isinstance(item, list) and len(item) == 1 and isinstance(item[0], str):
                texts.append(item[0])
            else:
                raise MalformedInput("V1 instance is neither a string nor {'text': string}")
        return texts, "v1"
    if "inputs" in body and isinstance(body["inputs"], list) and body["inputs"]:
        tensors = body["inputs"]
        tensor = next((t for t in tensors if isinstance(t, dict) and t.get("name") == "text"), tensors[0])
        data = tensor.get("data") if isinstance(tensor, dict) else None
        if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
            raise MalformedInput("V2 input tensor holds no list of strings in 'data'")
        return list(data), "v2-rest"
    raise MalformedInput("inference request has neither 'instances' (V1) nor 'inputs' (V2)")


def _row_probs(row: Any, classes: Sequence[str]) -> dict[str, float]:
    if isinstance(row, dict):
        return {str(k): float(v) for k, v in row.items()}
    if isinstance(row, list) and len(row) == len(classes):
        return {c: float(p) for c, p in zip(classes, row, strict=True)}
    raise MalformedInput(f"probability row {str(row)[:80]} matches neither a dict nor classes {list(classes)}")


def _predictions_from_response(body: Any, n: int, classes: Sequence[str]) -> tuple[list[tuple[str, dict]], str | None]:
    """``[(label, probabilities)]`` for ``n`` texts from a V1/V2 response, and its ``model_version`` if given."""
    if not isinstance(body, dict):
        raise MalformedInput("inference response body is not a JSON object")
    version = body.get("model_version")
    out: list[tuple[str, dict]] = []
    if "predictions" in body:
        for item in body["predictions"]:
            if isinstance(item, dict):
                probs = _row_probs(item.get("probabilities") or {}, classes) if item.get("probabilities") else {}
                label = item.get("label") or (max(probs, key=probs.__getitem__) if probs else None)
                if label is None:
                    raise MalformedInput("V1 prediction has neither 'label' nor 'probabilities'")
                version = version or item.get("model_version")
                out.append((str(label), probs))
            elif isinstance(item, str):
                out.append((item, {}))
            elif isinstance(item, list):
                probs = _row_probs(item, classes)
                out.append((max(probs, key=probs.__getitem__), probs))
            else:
                raise MalformedInput(f"V1 prediction of type {type(item).__name__} is not understood")
    elif "outputs" in body and isinstance(body["outputs"], list):
        labels: list[str] | None = None
        prob_rows: list[dict[str, float]] | None = None
        for tensor in body["outputs"]:
            if not isinstance(tensor, dict) or not isinstance(tensor.get("data"), list):
                continue
            data = tensor["data"]
            if tensor.get("datatype") == "BYTES" or (data and isinstance(data[0], str)):
                labels = [str(x) for x in data]
            else:
                shape = tensor.get("shape") or [n, len(classes)]
                width = int(shape[-1]) if len(shape) > 1 else len(classes)
                names = (tensor.get("parameters") or {}).get("classes") or list(classes)
                rows = [data[i : i + width] for i in range(0, len(data), width)]
                prob_rows = [_row_probs(r, names) for r in rows]
        if prob_rows is None and labels is None:
            raise MalformedInput("V2 response has no label or probability output")
        for i in range(n):
            probs = prob_rows[i] if prob_rows and i < len(prob_rows) else {}
            label = labels[i] if labels and i < len(labels) else max(probs, key=probs.__getitem__)
            out.append((label, probs))
    else:
        raise MalformedInput("inference response has neither 'predictions' (V1) nor 'outputs' (V2)")
    if len(out) != n:
        raise MalformedInput(f"response has {len(out)} predictions for {n} texts")
    return out, None if version is None else str(version)


@dataclass(frozen=True)
class JoinDefaults:
    """Labels given to joined KServe records when the CloudEvent does not carry them."""

    environment: str
    model_name: str
    model_version: str
    track: str
    classes: tuple[str, ...]


def _ce_time(headers: Mapping[str, str], fallback: float) -> float:
    value = headers.get("ce-time")
    if not value:
        return fallback
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return fallback


def join_halves(request: dict[str, Any], response: dict[str, Any], defaults: JoinDefaults) -> list[bytes]:
    """Spool lines of the prediction events made by joining a request half with its response half."""
    try:
        req_body = orjson.loads(request["body"])
        resp_body = orjson.loads(response["body"])
    except orjson.JSONDecodeError as e:
        raise MalformedInput(f"CloudEvent body is not JSON: {e}") from e
    texts, protocol = _texts_from_request(req_body)
    predictions, version = _predictions_from_response(resp_body, len(texts), defaults.classes)
    headers = request["ce"]
    ce_id = headers["ce-id"]
    ts = _ce_time(headers, request["received_at"])
    latency = max(0.0, (_ce_time(response["ce"], response["received_at"]) - ts) * 1000.0)
    lines = []
    for i, (text, (label, probs)) in enumerate(zip(texts, predictions, strict=True)):
        event = {
            "schema": SCHEMA,
            "id": f"{ce_id}:{i}",
            "request_id": ce_id,
            "ts": ts,
            "model_name": headers.get("ce-inferenceservicename") or defaults.model_name,
            "model_version": version or headers.get("ce-modelversion") or defaults.model_version,
            "track": defaults.track,
            "environment": defaults.environment,
            "protocol": protocol,
            "text": text,
            "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "text_length": len(text),
            "label": label,
            "probabilities": probs,
            "confidence": float(probs.get(label, 0.0)) if probs else float("nan"),
            "latency_ms": latency,
            "received_at": response["received_at"],
            "source": SOURCE_KSERVE,
        }
        lines.append(orjson.dumps(event))
    return lines


class Joiner:
    """Pairs KServe request and response CloudEvents by ``ce-id``. Thread-safe; bounded by count and age."""

    def __init__(self, defaults: JoinDefaults, ttl_s: float, max_pending: int) -> None:
        self.defaults = defaults
        self.ttl_s = ttl_s
        self.max_pending = max_pending
        self._pending: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pending)

    def offer(self, half: dict[str, Any]) -> tuple[list[bytes], list[bytes]]:
        """Take one half; return ``(spool_lines, evicted_quarantine_lines)``.

        When the partner is waiting, the lines are the joined events (or a quarantine record when they do not
        join); otherwise the line is the half itself (journalled so a restart can still join it).
        """
        ce_id = half["ce"]["ce-id"]
        evicted: list[bytes] = []
        with self._lock:
            partner = self._pending.get(ce_id)
            if partner is not None and partner["_h"] != half["_h"]:
                del self._pending[ce_id]
            else:
                partner = None
                self._pending[ce_id] = half
                while len(self._pending) > self.max_pending:
                    _, old = self._pending.popitem(last=False)
                    evicted.append(quarantine_line("unjoined CloudEvent evicted (too many pending)",
                                                   orjson.dumps(old), old["received_at"]))
        if partner is None:
            return [orjson.dumps(half)], evicted
        request, response = (half, partner) if half["_h"] == "request" else (partner, half)
        try:
            return join_halves(request, response, self.defaults), evicted
        except MalformedInput as e:
            raw = orjson.dumps({"request": request, "response": response})
            return [quarantine_line(str(e), raw, half["received_at"])], evicted

    def expire(self, now: float) -> list[bytes]:
        """Quarantine lines for halves older than the TTL (their partner never came)."""
        out = []
        with self._lock:
            while self._pending:
                ce_id, half = next(iter(self._pending.items()))
                if now - half["received_at"] < self.ttl_s:
                    break
                del self._pending[ce_id]
                out.append(quarantine_line(f"unjoined CloudEvent {half['_h']} after {self.ttl_s:.0f}s",
                                           orjson.dumps(half), half["received_at"]))
        return out

    def pending_lines(self) -> list[bytes]:
        """Spool lines of every waiting half (carried into a new segment so sealing never drops one)."""
        with self._lock:
            return [orjson.dumps(h) for h in self._pending.values()]

    def restore(self, halves: Iterable[dict[str, Any]], joined_request_ids: set[str]) -> None:
        """Rebuild the waiting halves after a restart from the journalled ones not joined yet."""
        with self._lock:
            for half in halves:
                ce_id = half["ce"]["ce-id"]
                if ce_id in joined_request_ids:
                    continue
                partner = self._pending.get(ce_id)
                if partner is not None and partner["_h"] != half["_h"]:
                    continue  # both halves spooled but not joined cannot happen; keep the first
                self._pending[ce_id] = half


def make_half(headers: Mapping[str, str], body: bytes, received_at: float) -> dict[str, Any]:
    """A CloudEvent half from binary-mode HTTP headers and body; ``MalformedInput`` names what is wrong."""
    ce = {k.lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}
    if not ce.get("ce-id"):
        raise MalformedInput("CloudEvent without ce-id header")
    ce_type = ce.get("ce-type", "")
    if ce_type == REQUEST_TYPE:
        kind = "request"
    elif ce_type == RESPONSE_TYPE:
        kind = "response"
    else:
        raise MalformedInput(f"CloudEvent type {ce_type!r} is neither {REQUEST_TYPE!r} nor {RESPONSE_TYPE!r}")
    return {"_h": kind, "ce": ce, "body": body.decode("utf-8", errors="replace"), "received_at": received_at}


def safe_partition_value(value: Any) -> str:
    """A partition value safe in a path and an S3 key: ``[A-Za-z0-9._-]``, others replaced by ``_``."""
    text = _UNSAFE.sub("_", str(value))
    return text if text.strip(".") else "_"


def partition_of(event: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """``(environment, model_version, date, hour)`` of an event, time taken from ``ts`` in UTC."""
    ts = event.get("ts")
    moment = datetime.fromtimestamp(float(ts) if isinstance(ts, int | float) else time.time(), UTC)
    return (
        safe_partition_value(event.get("environment", "unknown")),
        safe_partition_value(event.get("model_version", "unknown")),
        moment.strftime("%Y-%m-%d"),
        moment.strftime("%H"),
    )


def partition_path(partition: tuple[str, str, str, str]) -> str:
    """``environment=<e>/model_version=<v>/date=<d>/hour=<h>``."""
    return "/".join(f"{k}={v}" for k, v in zip(PARTITION_KEYS, partition, strict=True))


def events_table(events: Sequence[Mapping[str, Any]]) -> pa.Table:
    """The Parquet table of ``events`` (columns of ``PARQUET_SCHEMA``)."""
    columns: dict[str, list[Any]] = {name: [] for name in PARQUET_SCHEMA.names}
    for event in events:
        for name, values in columns.items():
            values.append(event.get(name))
    arrays = []
    for field in PARQUET_SCHEMA:
        values = columns[field.name]
        if field.name == "text_length":
            values = [None if v is None else int(v) for v in values]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=PARQUET_SCHEMA)


def encode_parquet(table: pa.Table) -> bytes:
    """Parquet bytes, zstd-compressed, dictionary-encoded strings."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", use_dictionary=True, write_statistics=True)
    return buffer.getvalue()


@dataclass
class SegmentContent:
    """What one spool segment holds, sorted by kind."""

    events: list[dict[str, Any]]
    quarantined: list[dict[str, Any]]
    halves: list[dict[str, Any]]
    duplicates: int


def read_segment_lines(lines: Iterable[bytes]) -> SegmentContent:
    """Sort spool lines into events (de-duplicated by ``id``), quarantine records and CloudEvent halves."""
    events: dict[str, dict[str, Any]] = {}
    quarantined: list[dict[str, Any]] = []
    halves: list[dict[str, Any]] = []
    duplicates = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            quarantined.append({"_q": "unreadable spool line", "raw": line.decode("utf-8", "replace"),
                                "received_at": time.time()})
            continue
        if "_q" in obj:
            quarantined.append(obj)
        elif "_h" in obj:
            halves.append(obj)
        elif obj["id"] in events:
            duplicates += 1
        else:
            events[obj["id"]] = obj
    return SegmentContent(list(events.values()), quarantined, halves, duplicates)


def segment_objects(segment_id: str, content: SegmentContent) -> list[tuple[str, bytes, int]]:
    """Sink objects ``(key, bytes, n_records)`` of one segment. Keys depend only on the segment id and content,
    so shipping a segment twice overwrites the same objects instead of duplicating records."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for event in content.events:
        groups.setdefault(partition_of(event), []).append(event)
    objects = []
    for partition, events in sorted(groups.items()):
        key = f"{partition_path(partition)}/{segment_id}.parquet"
        objects.append((key, encode_parquet(events_table(events)), len(events)))
    if content.quarantined:
        day = datetime.fromtimestamp(float(content.quarantined[0].get("received_at") or 0), UTC).strftime("%Y-%m-%d")
        body = b"".join(orjson.dumps(q) + b"\n" for q in content.quarantined)
        objects.append((f"quarantine/date={day}/{segment_id}.ndjson", body, len(content.quarantined)))
    return objects
