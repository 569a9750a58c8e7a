"""Windows of the prediction log: durations (``30m``, ``24h``, ``7d``; the :data:`Duration` setting type) and the
``window`` / ``start`` / ``end`` settings that every command reading a window shares (the drift job, the feedback
snapshot, the rollout analysis)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, field_validator

from model.errors import ConfigError
from model.process import ProcessSettings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``"90m"``, ``"24h"``, ``"7d"``, ``"30s"`` as a timedelta; ``ValueError`` names the accepted form."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like '30s', '10m', '24h' or '7d'")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]
"""A setting that holds a duration (``30s``, ``10m``, ``24h``, ``7d``), refused with a clear message otherwise."""


class WindowSettings(ProcessSettings):
    """Base of the settings of a command that reads a window of the log. A subclass may give ``window`` another
    default and docstring, declared as a :data:`Duration` again (a plain ``str`` would drop the check)."""

    window: Duration = "24h"
    """Length of the window ending at ``end`` (``30m``, ``24h``, ``7d``); ignored when ``start`` is given."""
    start: datetime | None = None
    """Explicit window start (ISO 8601; UTC when no zone is given)."""
    end: datetime | None = None
    """Window end (default: now)."""

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Read a zone-less time as UTC."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def window_bounds(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """``(start, end)`` in UTC: ``end`` (default ``now``, default the current time) and ``start`` (default
        ``end`` minus ``window``); ``ConfigError`` when the start is not before the end."""
        end = self.end or now or datetime.now(UTC)
        start = self.start or end - parse_duration(self.window)
        if start >= end:
            raise ConfigError(f"window start {start.isoformat()} is not before its end {end.isoformat()}")
        return start, end
