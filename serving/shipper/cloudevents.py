"""KServe's payload logger: request and response CloudEvents (HTTP binary mode) joined by ``ce-id`` into
prediction events (the :mod:`serving.eventlog.events` contract).

Each half is journalled in the spool (:mod:`serving.shipper.wire`) until its partner comes, so a restart does not
lose one; halves that never join are quarantined after a TTL or when too many wait.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from serving.eventlog.events import SCHEMA
from serving.shipper.wire import SOURCE_KSERVE, MalformedInput, marker_line, quarantine_line

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"


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


