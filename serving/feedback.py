"""``POST /v1/feedback`` on the predictor's HTTP port: ground-truth labels for the predictions it returned.

The body is one item or an array of items ``{"id": "<prediction id>", "label": "<class>", "source"?: "...",
"at"?: <Unix seconds or ISO 8601>}`` (:func:`serving.eventlog.feedback.parse_items`: labels must be among the served
model's classes). The items become feedback events handed to the sidecar the way prediction events are: appended to
this process's journal on the volume it shares with the sidecar (:mod:`serving.eventlog.journal`), before the
answer ``202 {"accepted": n}``, so a 202 survives a crash of the predictor or of the sidecar. A retried item is the
same event (its id is a digest of the item), so retries store nothing twice. Refusals name what is wrong:

=====  =====================================================================================================
400    not UTF-8, not JSON, not an item or array of items, a bad item (unknown label, malformed id, bad
       ``at``/``source``, unknown field): nothing of the request is stored
413    more than ``feedback_max_items`` items or ``feedback_max_bytes`` bytes
415    a content type other than JSON
503    the model is not loaded (its classes are not known yet), or the journal cannot take the events now (its
       budget full: the sidecar has not been reading); ``Retry-After`` says when to retry
=====  =====================================================================================================
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from fastapi import Request

from serving.bodies import BodyTooLarge, JsonAnswer, read_body
from serving.eventlog.feedback import SOURCE_API, BadFeedback, FeedbackEvent, encode, parse_items
from serving.eventlog.journal import JournalFull

log = logging.getLogger(__name__)
ROUTE = "/v1/feedback"
JSON_TYPES = ("application/json", "")
RETRY_AFTER_S = 5


class FeedbackUnavailable(Exception):
    """The events could not be stored now; the message says why."""


def store(model: Any, events: list[FeedbackEvent]) -> None:
    """Append the events to this process's event journal, where the sidecar reads them; ``FeedbackUnavailable``
    when it cannot take them all (items written before the failure are stored: the client's retry stores them
    again under the same ids, which the readers drop)."""
    emitter = model.emitter
    if emitter is None:
        raise FeedbackUnavailable("this predictor records no events (events_dir is empty), so nothing stores labels")
    lines = [encode(e) for e in events]
    done = 0
    try:
        while done < len(lines):
            done += emitter.journal.append(lines[done:])
    except JournalFull as e:
        raise FeedbackUnavailable(f"the event journal is full ({e}); {done} of {len(lines)} stored") from e
    except OSError as e:
        raise FeedbackUnavailable(f"cannot write to the event journal: {e}; {done} of {len(lines)} stored") from e


def _refuse(status: int, message: str, outcome: str, metrics: Any, **headers: str) -> JsonAnswer:
    """A refusal: one log line, the outcome counted, ``{"error": message}``."""
    log.info("feedback refused (%d): %s", status, message, extra={"status": status, "outcome": outcome})
    if metrics is not None:
        metrics.feedback(outcome, 1)
    return JsonAnswer({"error": message}, status_code=status, headers=headers or None)


def install(model: Any) -> None:
    """Add ``POST /v1/feedback`` to KServe's FastAPI app (``kserve.model_server.app``) before the server starts."""
    from kserve.model_server import app

    settings = model.settings

    async def feedback(request: Request) -> JsonAnswer:
        metrics = getattr(model, "metrics", None)
        if not model.ready or not model.classes:
            return _refuse(503, "the model is not loaded yet: its classes are not known", "not_ready", metrics,
                           **{"Retry-After": str(RETRY_AFTER_S)})
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in JSON_TYPES:
            return _refuse(415, f"content type {content_type!r} is not supported; send application/json: "
                           '{"id": "<prediction id>", "label": "<class>"} or an array of them', "bad_request", metrics)
        try:
            raw = await read_body(request, settings.feedback_max_bytes)
        except BodyTooLarge:
            return _refuse(413, f"the body exceeds {settings.feedback_max_bytes} bytes; send smaller batches",
                           "too_large", metrics)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return _refuse(400, f"the body is not valid UTF-8 ({e.reason} at byte {e.start})", "bad_request", metrics)
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            return _refuse(400, f"the body is not valid JSON ({e}); send {{\"id\": ..., \"label\": ...}} or an array "
                           "of them", "bad_request", metrics)
        items = body if isinstance(body, list) else [body]
        if len(items) > settings.feedback_max_items:
            return _refuse(413, f"{len(items)} feedback items in one request; at most {settings.feedback_max_items} "
                           "are accepted, send smaller batches", "too_large", metrics)
        try:
            events = parse_items(items, model.classes, default_source=SOURCE_API, received=time.time(),
                                 environment=settings.environment, max_items=settings.feedback_max_items)
        except BadFeedback as e:
            return _refuse(400, str(e), "bad_request", metrics)
        try:
            store(model, events)
        except FeedbackUnavailable as e:
            log.warning("feedback not stored: %s", e)
            if metrics is not None:
                metrics.feedback("unavailable", len(events))
            return JsonAnswer({"error": f"feedback not stored: {e}; retry later"}, status_code=503,
                              headers={"Retry-After": str(RETRY_AFTER_S)})
        if metrics is not None:
            metrics.feedback("accepted", len(events))
        return JsonAnswer({"accepted": len(events)}, status_code=202)

    app.add_api_route(ROUTE, feedback, methods=["POST"], include_in_schema=False)
