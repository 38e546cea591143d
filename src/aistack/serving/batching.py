"""Dynamic batching: requests that arrive close together run as one model call.

The batcher collects items until it has ``max_batch_size`` of them or ``max_wait_ms`` has
passed since the first one arrived, then calls ``fn(items) -> results`` once, in one worker
thread (so the event loop keeps answering health checks while the model computes).
``max_batch_size=1`` is plain one-request-at-a-time serving.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MAX_WAIT_MS = 10_000.0  # as BatchingConfig.max_wait_ms


@dataclass(kw_only=True)
class BatchStats:
    batches: int = 0
    items: int = 0
    errors: int = 0
    size_counts: collections.Counter[int] = field(default_factory=collections.Counter)
    recent_queue_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=512)
    )

    def as_dict(self) -> dict[str, Any]:
        q = sorted(self.recent_queue_ms)
        return {
            "batches": self.batches,
            "items": self.items,
            "errors": self.errors,
            "mean_batch_size": (self.items / self.batches) if self.batches else 0.0,
            "batch_size_counts": {str(k): v for k, v in sorted(self.size_counts.items())},
            "queue_delay_ms_p50": q[len(q) // 2] if q else 0.0,
        }


class DynamicBatcher:
    def __init__(
        self,
        fn: Callable[[list[Any]], Sequence[Any]],
        *,
        max_batch_size: int = 16,
        max_wait_ms: float = 5.0,
    ) -> None:
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int):
            raise ValueError(f"max_batch_size must be a whole number >= 1, got {max_batch_size!r}")
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        # a wait that is infinite held a lone request until the batch filled (forever, under
        # light load); NaN and negative waits became 0 without a word
        if not (isinstance(max_wait_ms, int | float) and 0 <= max_wait_ms <= MAX_WAIT_MS):
            raise ValueError(
                f"max_wait_ms must be a number of milliseconds from 0 to {MAX_WAIT_MS:g}, "
                f"got {max_wait_ms!r}"
            )
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.stats = BatchStats()
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future[Any], float]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")
        self.pending = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name="dynamic-batcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def submit(self, item: Any) -> Any:
        """Queue one item and wait for its result (exceptions from ``fn`` propagate)."""
        if self._queue is None:
            raise RuntimeError("batcher not started")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending += 1
        try:
            await self._queue.put((item, fut, time.perf_counter()))
            return await fut
        finally:
            self.pending -= 1

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            deadline = time.perf_counter() + self.max_wait_s
            while len(batch) < self.max_batch_size:
                # take whatever is already queued without waiting
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            batch = [b for b in batch if not b[1].cancelled()]
            if not batch:
                continue
            now = time.perf_counter()
            for _, _, t0 in batch:
                self.stats.recent_queue_ms.append((now - t0) * 1000.0)
            items = [b[0] for b in batch]
            try:
                results = await loop.run_in_executor(self._pool, self.fn, items)
                if len(results) != len(items):
                    raise RuntimeError(
                        f"model returned {len(results)} results for a batch of {len(items)}"
                    )
            except Exception as exc:  # the model failed: fail every request of the batch
                log.warning("batch of %d failed: %s", len(items), exc)
                self.stats.errors += len(items)
                for _, fut, _ in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.stats.batches += 1
            self.stats.items += len(items)
            self.stats.size_counts[len(items)] += 1
            for (_, fut, _), res in zip(batch, results, strict=True):
                if not fut.done():
                    if isinstance(res, BaseException):
                        fut.set_exception(res)
                    else:
                        fut.set_result(res)
