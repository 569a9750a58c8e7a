"""HTTP bodies of our own routes. Requests are read with a bound: the predictor's feedback route and the shipper's
routes refuse a body above their limit without holding more of it than the limit in memory. Answers are JSON
encoded with orjson (:class:`JsonAnswer`; FastAPI deprecated its own ``ORJSONResponse``)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response


class JsonAnswer(Response):
    """A JSON answer, encoded with orjson (numpy values included)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class BodyTooLarge(Exception):
    """The request body exceeds the limit."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (by ``content-length``, or while streaming)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)
