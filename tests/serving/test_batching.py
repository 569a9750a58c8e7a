"""Micro-batching of concurrent requests: bounded batches and queue, failures reach every waiter."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from serving.batching import MicroBatcher
from serving.errors import Overloaded


def test_batcher_bounds_batches_and_queue() -> None:
    sizes: list[int] = []

    def compute(texts: list[str]) -> np.ndarray:
        sizes.append(len(texts))
        return np.array([[float(len(t))] for t in texts])

    batcher = MicroBatcher(compute, "m", max_batch_texts=4, max_queued_texts=10)

    async def run() -> list[np.ndarray]:
        futures = [batcher.submit(["a" * i]) for i in range(1, 4)] + [batcher.submit(["bb"] * 6)]
        with pytest.raises(Overloaded, match="9 texts are already waiting"):
            batcher.submit(["x", "y"])
        return await asyncio.gather(*futures)

    results = asyncio.run(run())
    assert [r[:, 0].tolist() for r in results] == [[1.0], [2.0], [3.0], [2.0] * 6]
    assert sizes == [4, 4, 1]
    assert batcher.queued_texts == 0


def test_batcher_failure_reaches_every_waiting_request() -> None:
    def compute(texts: list[str]) -> np.ndarray:
        raise RuntimeError("boom")

    batcher = MicroBatcher(compute, "m")

    async def run() -> list:
        return await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True)

    assert [str(e) for e in asyncio.run(run())] == ["boom", "boom"]


def test_now_if_idle_computes_at_once_only_when_nothing_waits() -> None:
    sizes: list[int] = []

    def compute(texts: list[str]) -> np.ndarray:
        sizes.append(len(texts))
        if "boom" in texts:
            raise RuntimeError("boom")
        return np.array([[float(len(t))] for t in texts])

    batcher = MicroBatcher(compute, "m", max_batch_texts=4)

    async def run() -> None:
        alone = batcher.submit(["abc"], now_if_idle=True)
        assert alone.done() and alone.result()[:, 0].tolist() == [3.0] and sizes == [1]  # no loop round trip
        failed = batcher.submit(["boom"], now_if_idle=True)
        assert failed.done() and isinstance(failed.exception(), RuntimeError)
        too_big = batcher.submit(["a"] * 5, now_if_idle=True)  # more than one step: queued as usual
        queued = batcher.submit(["z"])
        behind = batcher.submit(["xy"], now_if_idle=True)  # others wait: it takes its turn behind them
        assert not (too_big.done() or queued.done() or behind.done())
        await asyncio.gather(too_big, queued, behind)
        assert behind.result()[:, 0].tolist() == [2.0]

    asyncio.run(run())
    assert sizes == [1, 1, 4, 3]  # the queued texts in steps of at most 4, in their order
    assert batcher.queued_texts == 0
