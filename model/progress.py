"""Progress for long steps: a live spinner on a terminal, plain start/finish log lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


@contextmanager
def stage(name: str, **fields: object) -> Iterator[None]:
    """Report a long step. On a TTY a transient spinner runs; always a log line with the elapsed seconds."""
    started = time.perf_counter()
    if sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status(f"{name} ..."):
            yield
    else:
        log.info("%s: started", name, extra={"stage": name, **fields})
        yield
    elapsed = time.perf_counter() - started
    log.info("%s: done in %.1fs", name, elapsed, extra={"stage": name, "seconds": round(elapsed, 3), **fields})
