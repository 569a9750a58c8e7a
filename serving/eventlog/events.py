"""The prediction event: what the predictor emits for every text it classifies. This schema is a contract
(``serving.eventlog`` owns it; the Parquet layout of the stored events is in ``serving.eventlog.parquet``).

Events reach the monitoring sidecar (``kube-sentiment ship``) as newline-delimited JSON: the predictor appends them
to its journal files (:mod:`serving.eventlog.journal`), other producers ``POST /v1/events`` with
``Content-Type: application/x-ndjson``. A line is either one event, or one *request record*
(``REQUEST_SCHEMA``, see :class:`RequestEncoder`) that the sidecar expands into the events of every text of the
request (:func:`expand_request`); the predictor sends request records, so that building each event's JSON is the
sidecar's work, not the model server's. The shipper stores the events (plus its own receive time) and the drift job
reads them back. Fields may be added in a later minor version; none is removed or changes meaning without bumping
``schema``.

Fields (all present in every event):

``schema``         ``"kube-sentiment.prediction/v1"``
``id``             unique id of this event: ``<request_id>:<index of the text in the request>``
``request_id``     the inference request's id (KServe's ``x-request-id`` / V2 ``id`` when given, else a uuid4 hex)
``ts``             time the prediction was made, Unix epoch seconds (float, UTC)
``model_name``     name the model is served under (``sentiment``)
``model_version``  registry version that answered (``"7"``), or the local version label
``track``          deployment track: ``"stable"``, ``"canary"`` (answers a share of the requests) or ``"shadow"``
                   (gets a copy of a share of the requests; its answers are only logged, never returned)
``environment``    deployment environment label (``"local"``, ``"staging"``, ``"production"``)
``protocol``       ``"v1"``, ``"v2-rest"`` or ``"v2-grpc"``
``text``           the input text, or ``null`` when text logging is off
``text_sha256``    hex SHA-256 of the UTF-8 text (always present, for joins and de-identification)
``text_length``    length of the text in characters
``label``          predicted class
``probabilities``  ``{class: probability}`` for every class, in the model's class order
``confidence``     probability of the predicted class
``latency_ms``     server-side latency of the request that carried this text, milliseconds

Optional fields (added in a minor version; absent or ``null`` in events of older producers):

``mirror_of``      on ``shadow`` events: the ``request_id`` of the live request this one is a copy of, so the
                   shadow's answer to text ``i`` pairs with the event ``<mirror_of>:<i>`` (:func:`mirrored_event_id`);
                   ``null`` on every other event
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal, NotRequired, TypedDict

import numpy as np
import orjson

SCHEMA = "kube-sentiment.prediction/v1"
REQUEST_SCHEMA = "kube-sentiment.prediction-request/v1"
Protocol = Literal["v1", "v2-rest", "v2-grpc"]
Track = Literal["stable", "canary", "shadow"]
TRACKS: tuple[str, ...] = ("stable", "canary", "shadow")


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
    mirror_of: NotRequired[str | None]


#: Optional fields: validated when present, absent from events of older producers.
OPTIONAL_FIELDS: tuple[str, ...] = ("mirror_of",)
REQUIRED_FIELDS: tuple[str, ...] = tuple(f for f in PredictionEvent.__annotations__ if f not in OPTIONAL_FIELDS)


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
    mirror_of: str | None = None,
) -> PredictionEvent:
    """Build one event from a text and its probability row (``probabilities`` indexed like ``classes``);
    ``mirror_of``: on a shadow's event, the id of the request it mirrors."""
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
        mirror_of=mirror_of,
    )


def mirrored_event_id(event_id: str, mirror_of: str) -> str:
    """The id of the live event a shadow event (``event_id`` = ``<its request id>:<i>``) is the copy of."""
    return f"{mirror_of}:{event_id.rsplit(':', 1)[1]}"


class RequestEncoder:
    """Encodes one request's events as one NDJSON line (``REQUEST_SCHEMA``), which :func:`expand_request` turns into
    the events ``make_event`` would build, one per text.

    The line holds the predictor-wide fields (``model_name``, ``model_version``, ``track``, ``environment``,
    ``classes``), the request's (``request_id``, ``ts``, ``protocol``, ``latency_ms``, and ``mirror_of`` on a shadow's
    records), ``probabilities`` (one row
    per text, in class order) and either ``texts`` (text logging on) or ``text_sha256`` and ``text_length`` (off: the
    texts never leave the predictor). ``tests/serving`` asserts that the expansion equals :func:`make_event`.
    """

    def __init__(
        self, model_name: str, model_version: str, track: str, environment: str, classes: tuple[str, ...],
        log_text: bool,
    ) -> None:
        """Encode the constant fields once."""
        constant = {"schema": REQUEST_SCHEMA, "model_name": model_name, "model_version": model_version,
                    "track": track, "environment": environment, "classes": list(classes)}
        self._prefix = orjson.dumps(constant)[:-1] + b","
        self._log_text = log_text

    def line(
        self, request_id: str, ts: float, protocol: str, texts: list[str], probs: np.ndarray, latency_ms: float,
        mirror_of: str | None = None,
    ) -> bytes:
        """The request record of one request (``probs``: its ``(len(texts), n_classes)`` probabilities;
        ``mirror_of``: the id of the request a shadow's request copies)."""
        fields: dict[str, Any] = {"request_id": request_id, "ts": ts, "protocol": protocol, "latency_ms": latency_ms,
                                  "probabilities": np.ascontiguousarray(probs, dtype=np.float64)}
        if mirror_of is not None:
            fields["mirror_of"] = mirror_of
        if self._log_text:
            fields["texts"] = texts
        else:
            fields["text_sha256"] = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
            fields["text_length"] = [len(t) for t in texts]
        return self._prefix + orjson.dumps(fields, option=orjson.OPT_SERIALIZE_NUMPY)[1:]


_RECORD_FIELDS = ("model_name", "model_version", "track", "environment", "classes", "request_id", "ts", "protocol",
                  "latency_ms", "probabilities")
_NUMBER = (float, int)


def _strings(obj: dict[str, Any], key: str, n: int) -> list[str]:
    value = obj.get(key)
    if type(value) is not list or len(value) != n:
        value = None
    else:
        for v in value:
            if type(v) is not str:
                value = None
                break
    if value is None:
        raise ValueError(f"request record field {key!r} must be an array of {n} strings (one per probability row)")
    return value


def _check_record(obj: dict[str, Any]) -> None:
    """``ValueError`` naming the first field of a request record that breaks the contract (plain loops: this runs
    once per request the sidecar ingests)."""
    for key in _RECORD_FIELDS:
        if key not in obj:
            raise ValueError(f"request record lacks field(s) {[k for k in _RECORD_FIELDS if k not in obj]}")
    classes, rows = obj["classes"], obj["probabilities"]
    ok = type(classes) is list and len(classes) > 0
    if ok:
        for c in classes:
            if type(c) is not str:
                ok = False
                break
    if not ok:
        raise ValueError("request record field 'classes' must be a non-empty array of strings")
    width = len(classes)
    ok = type(rows) is list
    if ok:
        for row in rows:
            if type(row) is not list or len(row) != width:
                ok = False
                break
            for p in row:
                if type(p) not in _NUMBER:
                    ok = False
                    break
            if not ok:
                break
    if not ok:
        raise ValueError(f"request record field 'probabilities' must be an array of rows of {width} numbers")
    for key in ("model_name", "model_version", "track", "environment", "request_id", "protocol"):
        if type(obj[key]) is not str:
            raise ValueError(f"request record field {key!r} must be a string")
    if type(obj["ts"]) not in _NUMBER or type(obj["latency_ms"]) not in _NUMBER:
        raise ValueError("request record fields 'ts' and 'latency_ms' must be numbers")


def expand_request(obj: dict[str, Any]) -> list[bytes]:
    """The events (JSON lines, equal to ``orjson.dumps(make_event(...))``) of one request record; ``ValueError``
    naming what is wrong when the record breaks the contract."""
    _check_record(obj)
    classes, rows = obj["classes"], obj["probabilities"]
    n = len(rows)
    mirror_of = obj.get("mirror_of")
    if mirror_of is not None and type(mirror_of) is not str:
        raise ValueError("request record field 'mirror_of' must be a string or null")
    texts: list[str | None]
    lengths: Any
    if "texts" in obj:
        logged = _strings(obj, "texts", n)
        texts = list(logged)
        hashes = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in logged]
        lengths = [len(t) for t in logged]
    else:
        texts, hashes, lengths = [None] * n, _strings(obj, "text_sha256", n), obj.get("text_length")
        if type(lengths) is not list or len(lengths) != n or any(type(v) is not int for v in lengths):
            raise ValueError(f"request record field 'text_length' must be an array of {n} integers")
    request_id = obj["request_id"]
    common = {"schema": SCHEMA, "request_id": request_id, "ts": obj["ts"], "model_name": obj["model_name"],
              "model_version": obj["model_version"], "track": obj["track"], "environment": obj["environment"],
              "protocol": obj["protocol"], "latency_ms": obj["latency_ms"], "mirror_of": mirror_of}
    lines = []
    for i, row in enumerate(rows):
        confidence = max(row)
        lines.append(orjson.dumps({
            **common, "id": f"{request_id}:{i}", "text": texts[i], "text_sha256": hashes[i],
            "text_length": lengths[i], "label": classes[row.index(confidence)],
            "probabilities": dict(zip(classes, row, strict=True)), "confidence": confidence,
        }))
    return lines


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
    if obj.get("mirror_of") is not None and not isinstance(obj["mirror_of"], str):
        raise ValueError("event field 'mirror_of' must be a string (the id of the mirrored request) or null")
    return obj  # type: ignore[return-value]
