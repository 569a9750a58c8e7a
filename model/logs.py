"""Logging, configured once per process from ``main()``: JSON lines off a terminal, plain text on one.

In JSON mode nothing else may reach the log stream: Python warnings go through the logging system
(``logging.captureWarnings``), uncaught exceptions of any thread are logged with their traceback, progress bars of
libraries (tqdm, MLflow's artifact downloads) are switched off, and :func:`captured_output` turns whatever a
library still prints into JSON log records while a process runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TextIO

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_NOISY = ("urllib3", "botocore", "alembic", "mlflow.store", "git", "numba", "httpx", "httpcore")
#: Environment switches that keep libraries' progress bars off a JSON log stream.
PROGRESS_BARS_OFF = {"TQDM_DISABLE": "1", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line with timestamp, level, logger, message and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def json_wanted(json_logs: bool | None) -> bool:
    """``json_logs`` as given, or JSON exactly when stderr is not a terminal."""
    return (not sys.stderr.isatty()) if json_logs is None else json_logs


def configure_logging(level: str = "INFO", json_logs: bool | None = None) -> None:
    """Configure the root logger once. ``json_logs=None`` means: JSON unless stderr is a terminal."""
    as_json = json_wanted(json_logs)
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter())
        for key, value in PROGRESS_BARS_OFF.items():
            os.environ.setdefault(key, value)
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(False)  # re-installed, in case something replaced warnings.showwarning meanwhile
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("uncaught").critical("uncaught %s: %s", kind.__name__, value, exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("uncaught").error(
        "uncaught %s in thread %s: %s", args.exc_type.__name__, name, args.exc_value,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )


class _LogLines(io.TextIOBase):
    """A text stream that turns each complete line written to it into a log record (``fallback`` when called
    again while logging, so a failing handler cannot recurse)."""

    def __init__(self, logger: logging.Logger, level: int, fallback: TextIO) -> None:
        self._logger = logger
        self._level = level
        self._fallback = fallback
        self._buffer = ""
        self._busy = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if getattr(self._busy, "on", False):
            return self._fallback.write(text)
        self._buffer += text.replace("\r", "\n")
        *lines, self._buffer = self._buffer.split("\n")
        self._busy.on = True
        try:
            for line in lines:
                if line.strip():
                    self._logger.log(self._level, "%s", line.rstrip())
        finally:
            self._busy.on = False
        return len(text)

    def flush(self) -> None:
        if self._buffer.strip():
            self.write("\n")
        self._buffer = ""


@contextlib.contextmanager
def captured_output(json_logs: bool) -> Iterator[TextIO]:
    """While a process runs: its stdout carries only what it writes to the stream yielded here (its result);
    what libraries print to stdout goes to the log (JSON mode) or to stderr (text mode), and in JSON mode what
    they print to stderr becomes JSON log records too. Restores both streams on exit."""
    out, err = sys.stdout, sys.stderr
    if json_logs:
        sys.stdout = _LogLines(logging.getLogger("stdout"), logging.INFO, err)  # type: ignore[assignment]
        sys.stderr = _LogLines(logging.getLogger("stderr"), logging.WARNING, err)  # type: ignore[assignment]
    else:
        sys.stdout = err
    try:
        yield out
    finally:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, _LogLines):
                stream.flush()
        sys.stdout, sys.stderr = out, err
