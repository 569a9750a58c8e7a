"""The prediction event: what the predictor emits for every text it classifies. This schema is a contract.

The predictor sends events to the monitoring sidecar (``kube-sentiment ship``) as newline-delimited JSON,
``POST /v1/events`` with ``Content-Type: application/x-ndjson``, one event per line. The shipper stores them
unchanged (plus its own receive time) and the drift job reads them back. Fields may be added in a later minor
version; none is removed or changes meaning without bumping ``schema``.

Fields (all present in every event):

``schema``         ``"kube-sentiment.prediction/v1"``
``id``             unique id of this event: ``<request_id>:<index of the text in the request>``
``request_id``     the inference request's id (KServe's ``x-request-id`` / V2 ``id`` when given, else a uuid4 hex)
``ts``             time the prediction was made, Unix epoch seconds (float, UTC)
``model_name``     name the model is served under (``sentiment``)
``model_version``  registry version that answered (``"7"``), or the local version label
``track``          deployment track, ``"stable"`` or ``"canary"``
``environment``    deployment environment label (``"local"``, ``"staging"``, ``"production"``)
``protocol``       ``"v1"``, ``"v2-rest"`` or ``"v2-grpc"``
``text``           the input text, or ``null`` when text logging is off
``text_sha256``    hex SHA-256 of the UTF-8 text (always present, for joins and de-identification)
``text_length``    length of the text in characters
``label``          predicted class
``probabilities``  ``{class: probability}`` for every class, in the model's class order
``confidence``     probability of the predicted class
``latency_ms``     server-side latency of the request that carried this text, milliseconds
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal, TypedDict

import orjson

SCHEMA = "kube-sentiment.prediction/v1"
Protocol = Literal["v1", "v2-rest", "v2-grpc"]
Track = Literal["stable", "canary"]


class PredictionEvent(TypedDict):
    """One classified text. See the module docstring for the meaning of each field."""

    schema: str
    id: str
    request_id: str
    ts: float
    model_name: str
    model_version: str
    track: str
    environment: str
    protocol: str
    text: str | None
    text_sha256: str
    text_length: int
    label: str
    probabilities: dict[str, float]
    confidence: float
    latency_ms: float


REQUIRED_FIELDS: tuple[str, ...] = tuple(PredictionEvent.__annotations__)


def make_event(
    *,
    request_id: str,
    index: int,
    ts: float,
    model_name: str,
    model_version: str,
    track: str,
    environment: str,
    protocol: str,
    text: str,
    log_text: bool,
    classes: tuple[str, ...] | list[str],
    probabilities: Any,
    latency_ms: float,
) -> PredictionEvent:
    """Build one event from a text and its probability row (``probabilities`` indexed like ``classes``)."""
    probs = {c: float(p) for c, p in zip(classes, probabilities, strict=True)}
    label = max(probs, key=probs.__getitem__)
    return PredictionEvent(
        schema=SCHEMA,
        id=f"{request_id}:{index}",
        request_id=request_id,
        ts=ts,
        model_name=model_name,
        model_version=model_version,
        track=track,
        environment=environment,
        protocol=protocol,
        text=text if log_text else None,
        text_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        text_length=len(text),
        label=label,
        probabilities=probs,
        confidence=probs[label],
        latency_ms=latency_ms,
    )


class EventEncoder:
    """Encodes events to NDJSON lines, equal (as JSON) to ``orjson.dumps(make_event(...))`` but several times faster.

    The predictor-wide fields (schema, model, track, environment) are encoded once; per event only the varying
    fields go through ``orjson``. ``tests/serving`` asserts the equality with :func:`make_event`.
    """

    def __init__(
        self, model_name: str, model_version: str, track: str, environment: str, classes: tuple[str, ...],
        log_text: bool,
    ) -> None:
        """Encode the constant fields."""
        constant = {"schema": SCHEMA, "model_name": model_name, "model_version": model_version, "track": track,
                    "environment": environment}
        self._prefix = orjson.dumps(constant)[:-1] + b","
        self._classes = classes
        self._log_text = log_text

    def lines(
        self, request_id: str, ts: float, protocol: str, texts: list[str], rows: list[list[float]],
        latency_ms: float, start: int, end: int,
    ) -> list[bytes]:
        """The lines of texts ``start..end-1`` of one request (``rows``: their probability rows, class order)."""
        classes, prefix, log_text = self._classes, self._prefix, self._log_text
        dumps, sha256 = orjson.dumps, hashlib.sha256
        out = []
        for i in range(start, end):
            text, row = texts[i], rows[i]
            confidence = max(row)
            out.append(prefix + dumps({
                "id": f"{request_id}:{i}", "request_id": request_id, "ts": ts, "protocol": protocol,
                "text": text if log_text else None, "text_sha256": sha256(text.encode()).hexdigest(),
                "text_length": len(text), "label": classes[row.index(confidence)],
                "probabilities": dict(zip(classes, row, strict=True)), "confidence": confidence,
                "latency_ms": latency_ms,
            })[1:])
        return out


def validate_event(obj: Any) -> PredictionEvent:
    """Check a decoded JSON object against the contract; raise ``ValueError`` naming what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"an event must be a JSON object, got {type(obj).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in obj]
    if missing:
        raise ValueError(f"event lacks field(s) {missing}")
    if obj["schema"] != SCHEMA:
        raise ValueError(f"unknown event schema {obj['schema']!r}; expected {SCHEMA!r}")
    if not isinstance(obj["probabilities"], dict) or not obj["probabilities"]:
        raise ValueError("event field 'probabilities' must be a non-empty object {class: probability}")
    if obj["label"] not in obj["probabilities"]:
        raise ValueError(f"event label {obj['label']!r} is not among its probabilities' classes")
    return obj  # type: ignore[return-value]
