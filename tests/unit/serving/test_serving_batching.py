from __future__ import annotations

import asyncio
import time

import pytest

from aistack.serving.batching import DynamicBatcher


def test_batches_up_to_max_and_keeps_order() -> None:
    calls: list[int] = []

    def fn(items: list[int]) -> list[int]:
        calls.append(len(items))
        time.sleep(0.01)
        return [x * 10 for x in items]

    async def main() -> list[int]:
        b = DynamicBatcher(fn, max_batch_size=4, max_wait_ms=20)
        await b.start()
        res = await asyncio.gather(*(b.submit(i) for i in range(10)))
        await b.stop()
        assert b.stats.items == 10
        return list(res)

    assert asyncio.run(main()) == [i * 10 for i in range(10)]
    assert max(calls) == 4
    assert sum(calls) == 10
    assert len(calls) <= 4  # 10 items in batches of at most 4: 3 batches (4 when timing splits one)


def test_batch_size_one_never_batches() -> None:
    calls: list[int] = []

    def fn(items: list[int]) -> list[int]:
        calls.append(len(items))
        return items

    async def main() -> None:
        b = DynamicBatcher(fn, max_batch_size=1, max_wait_ms=50)
        await b.start()
        await asyncio.gather(*(b.submit(i) for i in range(5)))
        await b.stop()

    asyncio.run(main())
    assert calls == [1] * 5


def test_waits_at_most_max_wait_for_a_lone_request() -> None:
    async def main() -> float:
        b = DynamicBatcher(lambda items: items, max_batch_size=64, max_wait_ms=30)
        await b.start()
        t0 = time.perf_counter()
        await b.submit(1)
        dt = time.perf_counter() - t0
        await b.stop()
        return dt

    dt = asyncio.run(main())
    assert 0.025 <= dt < 1.0


def test_model_error_fails_only_that_batch() -> None:
    def fn(items: list[int]) -> list[object]:
        if 13 in items:
            raise ValueError("unlucky")
        return [ValueError("bad item") if x < 0 else x for x in items]

    async def main() -> None:
        b = DynamicBatcher(fn, max_batch_size=1, max_wait_ms=0)
        await b.start()
        with pytest.raises(ValueError, match="unlucky"):
            await b.submit(13)
        with pytest.raises(ValueError, match="bad item"):
            await b.submit(-1)
        assert await b.submit(7) == 7
        await b.stop()
        assert b.stats.errors == 1

    asyncio.run(main())


def test_wrong_result_count_is_an_error() -> None:
    async def main() -> None:
        b = DynamicBatcher(lambda items: [], max_batch_size=2, max_wait_ms=0)
        await b.start()
        with pytest.raises(RuntimeError, match="returned 0 results"):
            await b.submit(1)
        await b.stop()

    asyncio.run(main())
