"""Adaptive micro-batching of concurrent requests on the event loop.

Requests hand their texts to :meth:`MicroBatcher.submit` and await a future. One compute step is scheduled with
``loop.call_soon``: it runs after every callback that is already ready, so requests that arrived together are
computed together, and an idle server adds no waiting at all (no timer); a caller whose requests arrive one per loop
iteration (gRPC) can have them computed at once when nothing waits (``now_if_idle``). A step takes at most
``max_batch_texts`` texts (a large request is split over several steps), so the event loop is never held longer than
one bounded step and health checks, metrics and new connections get their turn between steps (the KServe #3950
failure mode is a predict that holds the loop for the whole request). The queue is bounded: beyond
``max_queued_texts`` waiting texts a request is refused at once with :class:`~serving.errors.Overloaded` instead of
growing latency without bound.

Why not a thread pool: the computation is mostly Python (tokenising), holds the GIL, and the predictor runs on one
core; a hand-off to a thread would add two context switches per batch and no parallelism.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from serving.errors import Overloaded


@dataclass(slots=True)
class _Job:
    texts: Sequence[str]
    future: asyncio.Future[np.ndarray]
    done: int = 0
    parts: list[np.ndarray] = field(default_factory=list)


class MicroBatcher:
    """Batches the texts of concurrent requests into bounded compute steps on the running event loop."""

    def __init__(
        self,
        compute: Callable[[list[str]], np.ndarray],
        model_name: str,
        max_batch_texts: int = 64,
        max_queued_texts: int = 4096,
        on_batch: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        """``compute`` maps texts to a probability matrix; ``on_batch`` sees every computed matrix (metrics)."""
        self._compute = compute
        self._model_name = model_name
        self.max_batch_texts = max_batch_texts
        self.max_queued_texts = max_queued_texts
        self._on_batch = on_batch
        self._jobs: deque[_Job] = deque()
        self._queued = 0
        self._scheduled = False

    @property
    def queued_texts(self) -> int:
        """Texts accepted and not yet computed."""
        return self._queued

    def submit(self, texts: Sequence[str], now_if_idle: bool = False) -> asyncio.Future[np.ndarray]:
        """Queue ``texts``; the returned future resolves to their ``(len(texts), n_classes)`` probabilities.

        ``now_if_idle``: when nothing is waiting and ``texts`` fit in one step, compute them now, as a step of their
        own (the future is done on return). For callers whose requests reach the loop one per iteration (gRPC:
        each call is handed over from gRPC's poller thread), whose steps would never hold more than one request:
        for them the round trip through the loop is all the batcher adds (docs/benchmarks.md)."""
        n = len(texts)
        if now_if_idle and not self._jobs and n <= self.max_batch_texts:
            future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
            try:
                probs = self._compute(list(texts))
                if self._on_batch is not None:
                    self._on_batch(probs)
            except Exception as e:
                future.set_exception(e)
            else:
                future.set_result(probs)
            return future
        if self._queued and self._queued + n > self.max_queued_texts:
            raise Overloaded(
                self._model_name,
                f"{self._queued} texts are already waiting (limit {self.max_queued_texts}); retry later",
            )
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.append(_Job(texts, future))
        self._queued += n
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._step)
        return future

    def _take(self) -> tuple[list[str], list[tuple[_Job, int]]]:
        """Up to ``max_batch_texts`` texts from the head of the queue, with the job and count each came from."""
        texts: list[str] = []
        taken: list[tuple[_Job, int]] = []
        room = self.max_batch_texts
        while self._jobs and room > 0:
            job = self._jobs[0]
            if job.future.done():  # cancelled by a client that went away
                self._jobs.popleft()
                self._queued -= len(job.texts) - job.done
                continue
            count = min(room, len(job.texts) - job.done)
            if job.done == 0 and count == len(job.texts):
                texts.extend(job.texts)
            else:
                texts.extend(job.texts[job.done : job.done + count])
            taken.append((job, count))
            room -= count
            job.done += count
            if job.done == len(job.texts):
                self._jobs.popleft()
        self._queued -= len(texts)
        return texts, taken

    def _step(self) -> None:
        """Compute one bounded batch, resolve the futures it completes, and schedule the next step if needed."""
        self._scheduled = False
        texts, taken = self._take()
        if texts:
            try:
                probs = self._compute(texts)
                if self._on_batch is not None:
                    self._on_batch(probs)
            except Exception as e:  # resolve every waiting request with the failure instead of hanging them
                for job, _ in taken:
                    if not job.future.done():
                        job.future.set_exception(e)
            else:
                start = 0
                for job, count in taken:
                    part = probs[start : start + count]
                    start += count
                    if job.future.done():
                        continue
                    if job.done < len(job.texts):
                        job.parts.append(part)
                    elif job.parts:
                        job.parts.append(part)
                        job.future.set_result(np.concatenate(job.parts))
                    else:
                        job.future.set_result(part)
        if self._jobs and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._step)
