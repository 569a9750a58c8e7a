"""The feedback event: a ground-truth label for one logged prediction. This schema is a contract (``serving.eventlog``
owns it; its Parquet layout is :data:`serving.eventlog.parquet.FEEDBACK`).

Labels come from reviewers, users or support tools, late. Clients send items ``{id, label, source?, at?}``, where
``id`` is the prediction id they were given (the logged prediction event's ``id``, ``<request id>:<index>``), to
``POST /v1/feedback`` on the predictor, or import a file with ``kube-sentiment feedback import``; both check the
items with :func:`parse_items` and store :class:`FeedbackEvent` s through the shipper's durable path. Live quality
and retraining join them to the prediction log by ``prediction_id``.

Fields (all present in every event):

``schema``         ``"kube-sentiment.feedback/v1"``
``id``             the feedback event's own id: a digest of ``prediction_id``, ``source``, ``label`` and the ``at``
                   the client gave (none: the same item sent twice is one event, so retries store nothing twice)
``prediction_id``  the ``id`` of the prediction event this label is for
``label``          the true class, one of the model's classes
``source``         who gave the label (``api`` by default over HTTP, ``import`` for files): feedback is idempotent
                   per ``(prediction_id, source)``, and a later label (by ``at``) from the same source replaces an
                   earlier one
``at``             when the label was given, Unix epoch seconds (the client's ``at``, else when it was received)
``ts``             when it was received (by the predictor, or the importer), Unix epoch seconds: the log's time
``environment``    deployment environment of the receiver (a partition key, like the prediction log's)
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypedDict

import orjson

SCHEMA = "kube-sentiment.feedback/v1"
#: Source given to items that name none, by receiver.
SOURCE_API, SOURCE_IMPORT = "api", "import"
#: Longest prediction id accepted (request ids are bounded by the header and body limits anyway).
MAX_ID_CHARS = 256
#: How far in the future ``at`` may lie (clock skew between a client and the receiver).
MAX_FUTURE_S = 300.0
_SOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,63}$")
_PREDICTION_ID = re.compile(r"^(?P<request>.+):(?P<index>0|[1-9][0-9]{0,5})$", re.DOTALL)
_ITEM_KEYS = frozenset(("id", "label", "source", "at"))


class FeedbackEvent(TypedDict):
    """One stored label. See the module docstring for the meaning of each field."""

    schema: str
    id: str
    prediction_id: str
    label: str
    source: str
    at: float
    ts: float
    environment: str


REQUIRED_FIELDS: tuple[str, ...] = tuple(FeedbackEvent.__annotations__)


class BadFeedback(ValueError):
    """A feedback item breaks the contract; the message names the item, the field and what is accepted."""


def feedback_id(prediction_id: str, source: str, label: str, at: float | None) -> str:
    """The event id: the same item (same client ``at``, or none) always gets the same id."""
    key = "\x1f".join((prediction_id, source, label, "" if at is None else repr(float(at))))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def make_feedback(prediction_id: str, label: str, *, source: str, at: float | None, received: float,
                  environment: str) -> FeedbackEvent:
    """A feedback event (``at``: when the label was given, if the client said; else ``received``)."""
    return FeedbackEvent(schema=SCHEMA, id=feedback_id(prediction_id, source, label, at),
                         prediction_id=prediction_id, label=label, source=source,
                         at=received if at is None else float(at), ts=received, environment=environment)


def encode(event: FeedbackEvent) -> bytes:
    """The NDJSON line of a feedback event (without newline): its contract fields only, ``schema`` first, which is
    how the sidecar tells it from a prediction event."""
    return orjson.dumps({key: event[key] for key in REQUIRED_FIELDS})  # type: ignore[literal-required]


def parse_time(value: Any, where: str) -> float:
    """Unix epoch seconds from a number or an ISO 8601 string (UTC when it has no zone); ``BadFeedback`` else."""
    if type(value) in (int, float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as e:
            raise BadFeedback(f"{where} {value!r} is not a time: send Unix seconds or ISO 8601") from e
        seconds = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    else:
        raise BadFeedback(f"{where} is {type(value).__name__}; send Unix seconds or an ISO 8601 string")
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadFeedback(f"{where} {value!r} is not a time after 1970")
    return seconds


def check_prediction_id(value: Any, where: str) -> str:
    """A prediction id of the shape the predictor issues (``<request id>:<index>``); ``BadFeedback`` else."""
    if not isinstance(value, str) or not value:
        raise BadFeedback(f"{where} must be a non-empty string, the prediction id the predictor returned")
    if len(value) > MAX_ID_CHARS:
        raise BadFeedback(f"{where} has {len(value)} characters; prediction ids have at most {MAX_ID_CHARS}")
    if not _PREDICTION_ID.match(value):
        raise BadFeedback(f"{where} {value[:80]!r} is not a prediction id: ids look like '<request id>:<index>', "
                          "as returned in each prediction")
    return value


def parse_items(items: Sequence[Any], classes: Sequence[str], *, default_source: str, received: float,
                environment: str, max_items: int) -> list[FeedbackEvent]:
    """Check client items ``{id, label, source?, at?}`` and build their events; ``BadFeedback`` naming the first bad
    item (nothing of a batch is stored when one item is bad: a client fixes and resends the whole batch)."""
    if not items:
        raise BadFeedback("no feedback items; send {\"id\": ..., \"label\": ...} or a list of them")
    if len(items) > max_items:
        raise BadFeedback(f"{len(items)} feedback items in one request; at most {max_items} are accepted, send "
                          "smaller batches")
    known = set(classes)
    events = []
    for i, item in enumerate(items):
        where = f"item {i}"
        if not isinstance(item, dict):
            raise BadFeedback(f"{where} is {type(item).__name__}; each item is an object {{\"id\", \"label\"}}")
        unknown = sorted(set(item) - _ITEM_KEYS)
        if unknown:
            raise BadFeedback(f"{where} has unknown field(s) {unknown[:5]}; accepted: id, label, source, at")
        prediction_id = check_prediction_id(item.get("id"), f"{where}: 'id'")
        label = item.get("label")
        if not isinstance(label, str) or label not in known:
            raise BadFeedback(f"{where}: label {label!r} is not one of the model's classes {list(classes)}")
        source = item.get("source", default_source)
        if not isinstance(source, str) or not _SOURCE.match(source):
            raise BadFeedback(f"{where}: source {source!r} must be 1-64 characters of letters, digits and ._:@/- "
                              "starting with a letter or digit")
        at = None if item.get("at") is None else parse_time(item["at"], f"{where}: 'at'")
        if at is not None and at > received + MAX_FUTURE_S:
            raise BadFeedback(f"{where}: 'at' {item['at']!r} lies in the future")
        events.append(make_feedback(prediction_id, label, source=source, at=at, received=received,
                                    environment=environment))
    return events


def validate_feedback(obj: Any) -> FeedbackEvent:
    """Check a decoded stored event against the contract (the shipper's ingest); ``ValueError`` naming the problem."""
    if not isinstance(obj, dict):
        raise ValueError(f"a feedback event must be a JSON object, got {type(obj).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in obj]
    if missing:
        raise ValueError(f"feedback event lacks field(s) {missing}")
    if obj["schema"] != SCHEMA:
        raise ValueError(f"unknown feedback schema {obj['schema']!r}; expected {SCHEMA!r}")
    for key in ("id", "prediction_id", "label", "source", "environment"):
        if not isinstance(obj[key], str) or not obj[key]:
            raise ValueError(f"feedback event field {key!r} must be a non-empty string")
    for key in ("at", "ts"):
        if type(obj[key]) not in (int, float) or not math.isfinite(obj[key]):
            raise ValueError(f"feedback event field {key!r} must be a number (Unix seconds)")
    return obj  # type: ignore[return-value]
