"""The young GC threshold while runs are in flight (a RunPool, gathered aruns): raised, put back
after, never forced."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from graphtrace import FakeLM, Graph, Node, RunPool
from graphtrace.gc_threshold import YOUNG_THRESHOLD

OLD_DEFAULT = (700, 10, 10)


class Done(Node):
    text: str

    async def __call__(self) -> None: ...


graph = Graph(start=Done)


@pytest.fixture(autouse=True)
def python_311_thresholds() -> Iterator[None]:
    """Every test starts from CPython 3.11's defaults, whatever this Python's are."""
    before, enabled = gc.get_threshold(), gc.isenabled()
    gc.set_threshold(*OLD_DEFAULT)
    gc.enable()
    yield
    gc.set_threshold(*before)
    if enabled:
        gc.enable()
    else:
        gc.disable()


async def threshold_inside(**pool_options: bool) -> tuple[int, int, int]:
    async with RunPool(lm=FakeLM(), **pool_options) as pool:
        inside = gc.get_threshold()
        pool.submit(graph, text="x")
    return inside


def test_raised_while_the_pool_is_open_and_put_back_after() -> None:
    assert asyncio.run(threshold_inside()) == (YOUNG_THRESHOLD, 10, 10)
    assert gc.get_threshold() == OLD_DEFAULT


def test_put_back_when_the_pool_leaves_on_an_error() -> None:
    async def failing() -> None:
        async with RunPool(lm=FakeLM()):
            assert gc.get_threshold()[0] == YOUNG_THRESHOLD
            raise KeyError("body")

    with pytest.raises(KeyError):
        asyncio.run(failing())
    assert gc.get_threshold() == OLD_DEFAULT


def test_pools_open_together_put_it_back_when_the_last_closes() -> None:
    async def scenario() -> list[int]:
        seen = []
        first = RunPool(lm=FakeLM())
        second = RunPool(lm=FakeLM())
        await first.__aenter__()
        await second.__aenter__()
        await first.__aexit__(None, None, None)
        seen.append(gc.get_threshold()[0])  # the second pool is still open
        await second.__aexit__(None, None, None)
        seen.append(gc.get_threshold()[0])
        return seen

    assert asyncio.run(scenario()) == [YOUNG_THRESHOLD, OLD_DEFAULT[0]]


@pytest.mark.parametrize("chosen", [(100, 10, 10), (700, 5, 5), (50_000, 20, 20)])
def test_thresholds_the_application_chose_are_left_alone(chosen: tuple[int, int, int]) -> None:
    gc.set_threshold(*chosen)
    assert asyncio.run(threshold_inside()) == chosen
    assert gc.get_threshold() == chosen


def test_a_disabled_collector_is_left_alone() -> None:
    gc.disable()
    assert asyncio.run(threshold_inside()) == OLD_DEFAULT
    assert not gc.isenabled()


def test_a_change_made_while_the_pool_is_open_is_kept() -> None:
    async def scenario() -> None:
        async with RunPool(lm=FakeLM()):
            gc.set_threshold(1234, 10, 10)

    asyncio.run(scenario())
    assert gc.get_threshold() == (1234, 10, 10)


def test_tune_gc_false_opts_out() -> None:
    assert asyncio.run(threshold_inside(tune_gc=False)) == OLD_DEFAULT


class Watched(Node):
    """Records the threshold while the run is in flight."""

    text: str

    async def __call__(self) -> None:
        seen.append(gc.get_threshold())


seen: list[tuple[int, int, int]] = []
watched = Graph(start=Watched)


def test_raised_while_gathered_aruns_are_in_flight_and_put_back_after() -> None:
    async def gathered() -> None:
        await asyncio.gather(*(watched.arun(lm=FakeLM(), text=str(i)) for i in range(3)))

    seen.clear()
    asyncio.run(gathered())
    assert seen == [(YOUNG_THRESHOLD, 10, 10)] * 3
    assert gc.get_threshold() == OLD_DEFAULT


def test_put_back_when_an_arun_fails() -> None:
    class Broken(Node):
        text: str

        async def __call__(self) -> None:
            assert gc.get_threshold()[0] == YOUNG_THRESHOLD
            raise KeyError("node")

    with pytest.raises(KeyError):
        Graph(start=Broken).run(lm=FakeLM(), text="x")
    assert gc.get_threshold() == OLD_DEFAULT


def test_an_arun_inside_a_pool_that_opted_out_still_raises_it_for_its_own_time() -> None:
    async def scenario() -> list[int]:
        async with RunPool(lm=FakeLM(), tune_gc=False) as pool:
            before = gc.get_threshold()[0]
            await watched.arun(lm=FakeLM(), text="x")
            after = gc.get_threshold()[0]
            pool.submit(graph, text="y")
        return [before, seen[-1][0], after]

    seen.clear()
    assert asyncio.run(scenario()) == [OLD_DEFAULT[0], YOUNG_THRESHOLD, OLD_DEFAULT[0]]
