"""RunPool: isolation, both caps (measured from the trace), timeouts, cancellation, scale."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest

from graphtrace import (
    Dep,
    FakeLM,
    Graph,
    Node,
    RunCancelled,
    RunPool,
    RunState,
    RunTimedOut,
)
from tests.conftest import TraceDir, run
from tests.otlp_validator import attributes


class Finish(Node):
    summary: str

    async def __call__(self) -> None: ...


class Work(Node):
    n: int

    async def __call__(self) -> Finish:
        if self.n % 3 == 0:
            raise ValueError(f"bad input {self.n}")
        return Finish()  # type: ignore[call-arg]


work = Graph(start=Work)


def test_failures_are_isolated() -> None:
    async def main() -> RunPool:
        async with RunPool(lm=FakeLM(), max_runs=7) as pool:
            handles = [pool.submit(work, n=n) for n in range(30)]
        for n, handle in enumerate(handles):
            if n % 3 == 0:
                assert handle.state is RunState.FAILED
                with pytest.raises(ValueError, match=f"bad input {n}"):
                    await handle
            else:
                assert handle.state is RunState.COMPLETED
                assert isinstance(await handle, Finish)
        return pool

    pool = run(main())
    assert pool.counts[RunState.COMPLETED] == 20 and pool.counts[RunState.FAILED] == 10


def _max_overlap(spans: list[dict[str, Any]]) -> int:
    edges = []
    for s in spans:
        edges.append((int(s["startTimeUnixNano"]), 1))
        edges.append((int(s["endTimeUnixNano"]), -1))
    edges.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    most = current = 0
    for _, delta in edges:
        current += delta
        most = max(most, current)
    return most


class Chat3(Node):
    a: str

    async def __call__(self) -> Chat3b: ...


class Chat3b(Node):
    b: str

    async def __call__(self) -> None: ...


def test_both_caps_hold_in_the_trace(traces: TraceDir) -> None:
    graph = Graph(start=Chat3, name="caps")

    async def main() -> None:
        async with RunPool(lm=FakeLM(latency=0.01), max_runs=8, max_lm_calls=3) as pool:
            for i in range(40):
                pool.submit(graph, a=f"x{i}")

    run(main())
    spans = traces.finished()
    chats = [s for s in spans if s["name"] == "chat fake"]
    runs = [s for s in spans if s["name"] == "run caps"]
    assert len(chats) == 40 and len(runs) == 40
    assert _max_overlap(chats) == 3, "the LM cap is reached and never exceeded"
    assert _max_overlap(runs) <= 8
    waits = [attributes(c)["graphtrace.lm.queue_ms"] for c in chats]
    assert max(waits) > 0 and min(waits) >= 0


def test_queued_runs_start_in_submission_order(traces: TraceDir) -> None:
    async def main() -> list[str]:
        async with RunPool(lm=FakeLM(), max_runs=1) as pool:
            handles = [pool.submit(work, n=n) for n in (1, 2, 4, 5, 7)]
        return [h.run_id for h in handles]

    ids = run(main())
    roots = sorted(
        (s for s in traces.finished() if s["name"] == "run Work"),
        key=lambda s: int(s["startTimeUnixNano"]),
    )
    assert [attributes(s)["graphtrace.run.id"] for s in roots] == ids


async def sleepy() -> int:
    await asyncio.sleep(30)
    return 1


class Sleeper(Node):
    value: Annotated[int, Dep(sleepy)]

    async def __call__(self) -> None: ...


class Quick(Node):
    async def __call__(self) -> None: ...


def test_timeout_closes_every_open_span_as_timed_out(traces: TraceDir) -> None:
    async def main() -> tuple[Any, Any]:
        async with RunPool(lm=FakeLM(), run_timeout=0.2) as pool:
            slow = pool.submit(Graph(start=Sleeper))
            fast = pool.submit(Graph(start=Quick))
        with pytest.raises(RunTimedOut, match="timed out after 0.2s"):
            await slow
        return slow, fast

    slow, fast = run(main())
    assert slow.state is RunState.TIMED_OUT and fast.state is RunState.COMPLETED
    spans = {s["name"]: s for s in traces.finished() if s["traceId"] == slow.run.trace_id}
    assert attributes(spans["run Sleeper"])["graphtrace.run.status"] == "timed_out"
    for name in ("node Sleeper", "dep sleepy"):
        assert spans[name]["status"] == {"code": 2, "message": "timed out"}, name
    assert spans["run Sleeper"]["status"]["code"] == 2
    assert "timed out" in spans["run Sleeper"]["status"]["message"]


def test_cancel_one_running_and_one_queued(traces: TraceDir) -> None:
    async def main() -> list[Any]:
        async with RunPool(lm=FakeLM(), max_runs=2) as pool:
            sleeping = pool.submit(Graph(start=Sleeper))
            other = pool.submit(work, n=1)
            queued = pool.submit(Graph(start=Sleeper))
            last = pool.submit(work, n=2)
            assert queued.state is RunState.PENDING
            assert queued.cancel()
            while sleeping.run.node is None:
                await asyncio.sleep(0.005)
            assert sleeping.cancel()
        with pytest.raises(RunCancelled):
            await sleeping
        return [sleeping, other, queued, last]

    sleeping, other, queued, last = run(main())
    assert sleeping.state is RunState.CANCELLED and queued.state is RunState.CANCELLED
    assert other.state is RunState.COMPLETED and last.state is RunState.COMPLETED
    assert queued.run.trace_id is None, "a run cancelled in the queue never started"
    spans = {s["name"]: s for s in traces.finished() if s["traceId"] == sleeping.run.trace_id}
    assert attributes(spans["run Sleeper"])["graphtrace.run.status"] == "cancelled"
    assert spans["dep sleepy"]["status"] == {"code": 2, "message": "cancelled"}


def test_cancel_all() -> None:
    async def main() -> list[Any]:
        async with RunPool(lm=FakeLM(), max_runs=3) as pool:
            handles = [pool.submit(Graph(start=Sleeper)) for _ in range(6)]
            await asyncio.sleep(0.05)
            assert pool.cancel_all() == 6
        return handles

    handles = run(main())
    assert all(h.state is RunState.CANCELLED for h in handles)


def test_leaving_on_an_error_cancels_the_runs() -> None:
    handles: list[Any] = []

    async def main() -> None:
        async with RunPool(lm=FakeLM(), max_runs=2) as pool:
            handles.extend(pool.submit(Graph(start=Sleeper)) for _ in range(4))
            await asyncio.sleep(0.02)
            raise KeyError("caller bug")

    with pytest.raises(KeyError):
        run(main())
    assert [h.state for h in handles] == [RunState.CANCELLED] * 4


def test_as_completed_and_bounded_history() -> None:
    async def main() -> tuple[int, RunPool]:
        async with RunPool(lm=FakeLM(), max_runs=50, history=10) as pool:
            for n in range(300):
                pool.submit(work, n=3 * n + 1)
        assert len(pool._finished_handles) == 10 and pool.dropped == 290
        seen = 0
        async for _ in pool:
            seen += 1
        return seen, pool

    seen, pool = run(main())
    assert seen == 10 and pool.counts[RunState.COMPLETED] == 300


def test_two_thousand_runs_smoke(traces: TraceDir) -> None:
    async def main() -> int:
        done = 0
        async with RunPool(lm=FakeLM(), max_runs=200, max_lm_calls=50) as pool:
            for n in range(2000):
                pool.submit(work, n=3 * n + 1)
            async for handle in pool.as_completed():
                assert handle.state is RunState.COMPLETED
                done += 1
        return done

    assert run(main()) == 2000
    roots = [s for s in traces.finished() if s["name"] == "run Work"]
    assert len(roots) == 2000
    assert {attributes(r)["graphtrace.run.status"] for r in roots} == {"completed"}
