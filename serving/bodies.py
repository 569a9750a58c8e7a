"""Request bodies read with a bound: the predictor's feedback route and the shipper's routes refuse a body above
their limit without holding more of it than the limit in memory."""

from __future__ import annotations

from starlette.requests import Request


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
