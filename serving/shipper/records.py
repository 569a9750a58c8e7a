"""Records the shipper spools and writes: validated prediction events, quarantined input, CloudEvent halves.

A spool line is one JSON object. Three kinds:

* a batch marker ``{"_t": received_at, "_s": source}`` written before the events of one request;
* a prediction event (``serving.events`` contract) exactly as received (the flusher adds ``received_at`` and
  ``source`` from the marker before it);
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

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from serving.events import REQUEST_SCHEMA, SCHEMA, expand_request, validate_event

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


RESERVED_KEYS = ("_t", "_s", "_q", "_h")


def marker_line(received_at: float, source: str) -> bytes:
    """The line that precedes the events of one request in the spool."""
    return orjson.dumps({"_t": received_at, "_s": source})


def parse_ndjson(body: bytes, received_at: float) -> tuple[list[bytes], list[bytes], int]:
    """Split an NDJSON body into spool lines: ``(event_lines, quarantine_lines, n_events)``.

    Valid events are kept byte for byte behind one batch marker, request records (``REQUEST_SCHEMA``, what the
    predictor sends) are expanded into their events; each invalid line becomes a quarantine record.
    """
    good: list[bytes] = []
    bad: list[bytes] = []
    for raw in body.splitlines():
        raw = raw.strip()
        if not raw:
            continue
        try:
            obj = orjson.loads(raw)
            if isinstance(obj, dict) and obj.get("schema") == REQUEST_SCHEMA:
                good += expand_request(obj)
                continue
            obj = validate_event(obj)
            if any(k in obj for k in RESERVED_KEYS):
                raise ValueError(f"event uses a reserved key, one of {list(RESERVED_KEYS)}")
        except orjson.JSONDecodeError as e:
            bad.append(quarantine_line(f"invalid JSON: {e}", raw, received_at))
            continue
        except ValueError as e:
            bad.append(quarantine_line(str(e), raw, received_at))
            continue
        good.append(raw)
    n = len(good)
    if good:
        good.insert(0, marker_line(received_at, SOURCE_PREDICTOR))
    return good, bad, n


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
    """``{class: probability}`` from a dict row or a list row in ``classes`` order."""
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
    """The CloudEvent's ``ce-time`` as Unix seconds, or ``fallback`` when absent or unparsable."""
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
        }
        lines.append(orjson.dumps(event))
    return [marker_line(response["received_at"], SOURCE_KSERVE), *lines]


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
    """The Parquet table of ``events`` (columns of ``PARQUET_SCHEMA``; other keys are left out)."""
    return pa.Table.from_pylist(list(events), schema=PARQUET_SCHEMA)


def split_convertible(events: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(events that fit PARQUET_SCHEMA, quarantine records for those that do not)``, e.g. a string ``ts``."""
    good, bad = [], []
    for event in events:
        try:
            pa.Table.from_pylist([event], schema=PARQUET_SCHEMA)
            good.append(event)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
            bad.append({"_q": f"field types do not fit the log schema: {e}"[:500],
                        "raw": orjson.dumps(event).decode(), "received_at": event.get("received_at")})
    return good, bad


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


def _load_lines(lines: Sequence[bytes]) -> list[Any]:
    """Decode spool lines in one call (one JSON array); line by line only if some line is unreadable."""
    try:
        return orjson.loads(b"[" + b",".join(lines) + b"]")
    except orjson.JSONDecodeError:
        out: list[Any] = []
        for line in lines:
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                out.append({"_q": "unreadable spool line", "raw": line.decode("utf-8", "replace"),
                            "received_at": time.time()})
        return out


def read_segment_lines(lines: Iterable[bytes]) -> SegmentContent:
    """Sort spool lines into events (de-duplicated by ``id``), quarantine records and CloudEvent halves."""
    events: dict[str, dict[str, Any]] = {}
    quarantined: list[dict[str, Any]] = []
    halves: list[dict[str, Any]] = []
    duplicates = 0
    received_at, source = None, None
    for obj in _load_lines([line for line in lines if line.strip()]):
        if "_t" in obj:
            received_at, source = obj["_t"], obj.get("_s")
        elif "_q" in obj:
            quarantined.append(obj)
        elif "_h" in obj:
            halves.append(obj)
        elif obj["id"] in events:
            duplicates += 1
        else:
            obj["received_at"] = received_at
            obj["source"] = source
            events[obj["id"]] = obj
    return SegmentContent(list(events.values()), quarantined, halves, duplicates)


def _fast_events_table(lines: Sequence[bytes]) -> tuple[pa.Table, list[bytes], list[bytes]] | None:
    """Events of a segment parsed by Arrow's JSON reader: ``(table, quarantine_lines, half_lines)``, or ``None``
    when the events do not parse cleanly into the log schema (the caller then takes the per-record path)."""
    import pyarrow.json as pajson

    event_lines: list[bytes] = []
    received: list[float | None] = []
    sources: list[str | None] = []
    other_q: list[bytes] = []
    other_h: list[bytes] = []
    current_t: float | None = None
    current_s: str | None = None
    for line in lines:
        if line.startswith(b'{"_t"'):
            marker = orjson.loads(line)
            current_t, current_s = marker["_t"], marker.get("_s")
        elif line.startswith(b'{"_q"'):
            other_q.append(line)
        elif line.startswith(b'{"_h"'):
            other_h.append(line)
        elif line.strip():
            event_lines.append(line)
            received.append(current_t)
            sources.append(current_s)
    if not event_lines:
        return pa.Table.from_pylist([], schema=PARQUET_SCHEMA), other_q, other_h
    try:
        raw = pajson.read_json(io.BytesIO(b"\n".join(event_lines)),
                               read_options=pajson.ReadOptions(block_size=1 << 24))
        probs = raw.column("probabilities").combine_chunks()
        if not pa.types.is_struct(probs.type) or probs.null_count:
            return None
        names = [probs.type.field(i).name for i in range(probs.type.num_fields)]
        matrix = np.column_stack([pc.fill_null(probs.field(i).cast(pa.float64()), np.nan).to_numpy()
                                  for i in range(len(names))])
        present = ~np.isnan(matrix)
        offsets = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int32)
        keys = np.tile(np.array(names, dtype=object), len(matrix))[present.ravel()]
        prob_map = pa.MapArray.from_arrays(pa.array(offsets), pa.array(keys, pa.string()),
                                           pa.array(matrix.ravel()[present.ravel()], pa.float64()))
        columns = []
        for field in PARQUET_SCHEMA:
            if field.name == "probabilities":
                columns.append(prob_map)
            elif field.name == "received_at":
                columns.append(pa.array(received, pa.float64()))
            elif field.name == "source":
                columns.append(pa.array(sources, pa.string()))
            elif field.name in raw.column_names:
                columns.append(raw.column(field.name).cast(field.type))
            else:
                columns.append(pa.nulls(len(event_lines), field.type))
        table = pa.Table.from_arrays(columns, schema=PARQUET_SCHEMA)
        for name in ("environment", "model_version"):
            if name not in raw.column_names:
                return None
            table = table.append_column(name, raw.column(name).cast(pa.string()))
        return table, other_q, other_h
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, KeyError, ValueError):
        return None


def _dedupe_table(table: pa.Table) -> tuple[pa.Table, int]:
    """Keep the first row of each ``id``; return the table and the number of repeats dropped."""
    if table.num_rows == 0 or pc.count_distinct(table.column("id")).as_py() == table.num_rows:
        return table, 0
    indexed = table.select(["id"]).append_column("_row", pa.array(np.arange(table.num_rows)))
    rows = np.sort(indexed.group_by("id").aggregate([("_row", "min")]).column("_row_min").to_numpy())
    return table.take(pa.array(rows)), table.num_rows - len(rows)


def _partitions(table: pa.Table) -> dict[tuple[str, str, str, str], np.ndarray]:
    """Row indices of each ``(environment, model_version, date, hour)`` partition of ``table``."""
    hours = np.floor(pc.fill_null(table.column("ts"), time.time()).to_numpy() / 3600.0).astype(np.int64)
    env = table.column("environment").combine_chunks().dictionary_encode()
    ver = table.column("model_version").combine_chunks().dictionary_encode()
    env_codes = pc.fill_null(env.indices, -1).to_numpy()
    ver_codes = pc.fill_null(ver.indices, -1).to_numpy()
    groups: dict[tuple[str, str, str, str], list[np.ndarray]] = {}
    keys = np.stack([env_codes, ver_codes, hours], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(unique) + 1))
    for i, (e, v, h) in enumerate(unique):
        partition = partition_of({"environment": env.dictionary[e].as_py() if e >= 0 else "unknown",
                                  "model_version": ver.dictionary[v].as_py() if v >= 0 else "unknown",
                                  "ts": float(h) * 3600.0})
        groups.setdefault(partition, []).append(order[bounds[i] : bounds[i + 1]])
    return {k: np.sort(np.concatenate(v)) for k, v in groups.items()}


def segment_objects_from_lines(segment_id: str, lines: Sequence[bytes]) -> tuple[list[tuple[str, bytes, int]], int]:
    """Sink objects of a segment straight from its spool lines (Arrow's JSON reader; the per-record path when
    a record does not fit), and the number of repeated ids dropped."""
    fast = _fast_events_table(lines)
    if fast is None:
        content = read_segment_lines(lines)
        return segment_objects(segment_id, content), content.duplicates
    table, q_lines, _ = fast
    table, duplicates = _dedupe_table(table)
    objects = []
    if table.num_rows:
        for partition, rows in sorted(_partitions(table).items()):
            part = table.take(pa.array(rows)).select(PARQUET_SCHEMA.names)
            objects.append((f"{partition_path(partition)}/{segment_id}.parquet", encode_parquet(part), len(rows)))
    if q_lines:
        quarantined = [orjson.loads(q) for q in q_lines]
        objects.extend(segment_objects(segment_id, SegmentContent([], quarantined, [], 0)))
    return objects, duplicates


def segment_objects(segment_id: str, content: SegmentContent) -> list[tuple[str, bytes, int]]:
    """Sink objects ``(key, bytes, n_records)`` of one segment. Keys depend only on the segment id and content,
    so shipping a segment twice overwrites the same objects instead of duplicating records."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    hours: dict[tuple[Any, Any, int], tuple[str, str, str, str]] = {}
    for event in content.events:
        ts = event.get("ts")
        hour = int(ts // 3600) if isinstance(ts, int | float) else -1
        key = (event.get("environment"), event.get("model_version"), hour)
        partition = hours.get(key)
        if partition is None:
            partition = hours[key] = partition_of(event)
        groups.setdefault(partition, []).append(event)
    objects: list[tuple[str, bytes, int]] = []
    quarantined = list(content.quarantined)
    for partition, events in sorted(groups.items()):
        name = f"{partition_path(partition)}/{segment_id}.parquet"
        try:
            table = events_table(events)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            events, bad = split_convertible(events)
            quarantined.extend(bad)
            table = events_table(events)
        if table.num_rows:
            objects.append((name, encode_parquet(table), len(events)))
    if quarantined:
        day = datetime.fromtimestamp(float(quarantined[0].get("received_at") or 0), UTC).strftime("%Y-%m-%d")
        body = b"".join(orjson.dumps(q) + b"\n" for q in quarantined)
        objects.append((f"quarantine/date={day}/{segment_id}.ndjson", body, len(quarantined)))
    return objects
