"""The spool's line format: what the shipper appends on ingest and reads back when it ships or recovers.

A spool line is one JSON object, of five kinds:

* a batch marker ``{"_t": received_at, "_s": source}`` written before the events of one request;
* a prediction event (:mod:`serving.eventlog.events` contract) exactly as received, or expanded from the
  predictor's request record; the marker before it gives its ``received_at`` and ``source``;
* a feedback event (:mod:`serving.eventlog.feedback` contract), re-encoded so that it starts with
  :data:`FEEDBACK_PREFIX` (its ``schema``), which is how the flusher tells it from a prediction event;
* a quarantine record ``{"_q": reason, "raw": <text>, "received_at": ...}`` for input that broke the contract;
* a CloudEvent half ``{"_h": "request"|"response", "ce": {ce-* headers}, "body": <text>, "received_at": ...}``
  (:mod:`serving.shipper.cloudevents`): KServe's payload logger sends request and response separately; halves are
  journalled until joined;
* a journal position ``{"_j": stem, "_o": offset}``: the lines before it include everything of the predictor's
  journal file ``stem`` (:mod:`serving.eventlog.journal`) up to byte ``offset``; it ends each batch read from a
  journal file and is carried into every new segment while the file exists, so a restarted shipper resumes each
  file where its spool says, neither losing nor repeating a line (:mod:`serving.shipper.tailer`).

Events never use the reserved keys, so the kind of a line is known from its first key. (On disk the spool also
frames each append with a header line, ``{"_g": size}``; :meth:`serving.shipper.spool.Segment.lines` drops them.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from serving.eventlog import feedback
from serving.eventlog.events import REQUEST_SCHEMA, expand_request, validate_event

SOURCE_PREDICTOR = "predictor"
SOURCE_KSERVE = "kserve-logger"
RESERVED_KEYS = ("_t", "_s", "_q", "_h", "_j", "_g")  # "_g": the spool's group headers (serving.shipper.spool)
MARKER_PREFIX, QUARANTINE_PREFIX, HALF_PREFIX, POSITION_PREFIX = b'{"_t"', b'{"_q"', b'{"_h"', b'{"_j"'
FEEDBACK_PREFIX = b'{"schema":"' + feedback.SCHEMA.encode() + b'"'


class MalformedInput(ValueError):
    """Input that cannot become a record; the message says why (it is stored with the quarantined input)."""


def marker_line(received_at: float, source: str) -> bytes:
    """The line that precedes the events of one request in the spool."""
    return orjson.dumps({"_t": received_at, "_s": source})


def position_line(stem: str, offset: int) -> bytes:
    """The line saying that the spool holds journal file ``stem`` up to byte ``offset``."""
    return orjson.dumps({"_j": stem, "_o": offset})


def journal_positions(lines: Iterable[bytes]) -> dict[str, int]:
    """The furthest position of each journal file recorded in spool ``lines``."""
    positions: dict[str, int] = {}
    for line in lines:
        if line.startswith(POSITION_PREFIX):
            try:
                record = orjson.loads(line)
                stem, offset = str(record["_j"]), int(record["_o"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a torn line was cut off at recovery; anything else is not ours
            positions[stem] = max(offset, positions.get(stem, 0))
    return positions


def quarantine_line(reason: str, raw: bytes | str, received_at: float | None) -> bytes:
    """A spool line holding input that broke the contract, with the reason."""
    return orjson.dumps(quarantine_record(reason, raw, received_at))


def quarantine_record(reason: str, raw: bytes | str, received_at: float | None) -> dict[str, Any]:
    """A quarantine record (what a quarantine line holds and the sink's quarantine objects list)."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return {"_q": reason[:500], "raw": text, "received_at": received_at}


def parse_ndjson(body: bytes, received_at: float) -> tuple[list[bytes], list[bytes], int]:
    """Split an NDJSON body into spool lines: ``(event_lines, quarantine_lines, n_events)``.

    Valid events are kept byte for byte behind one batch marker, request records (``REQUEST_SCHEMA``, what the
    predictor sends) are expanded into their events, feedback events are re-encoded
    (:func:`serving.eventlog.feedback.encode`); each invalid line becomes a quarantine record. ``n_events`` counts
    prediction and feedback events.
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
            if isinstance(obj, dict) and obj.get("schema") == feedback.SCHEMA:
                good.append(feedback.encode(feedback.validate_feedback(obj)))
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


def spooled_halves(lines: Iterable[bytes]) -> tuple[list[dict[str, Any]], set[str]]:
    """The CloudEvent halves journalled in spool ``lines``, and the request ids already joined there (events from
    the KServe logger): what a restarted shipper needs to rebuild the halves still waiting for their partner."""
    halves: list[dict[str, Any]] = []
    joined: set[str] = set()
    source = None
    for line in lines:
        try:
            if line.startswith(HALF_PREFIX):
                halves.append(orjson.loads(line))
            elif line.startswith(MARKER_PREFIX):
                source = orjson.loads(line).get("_s")
            elif (source == SOURCE_KSERVE and line.strip() and not line.startswith(QUARANTINE_PREFIX)
                  and not line.startswith(POSITION_PREFIX)):
                joined.add(orjson.loads(line)["request_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            continue  # an unreadable line is quarantined when its segment ships
    return halves, joined
