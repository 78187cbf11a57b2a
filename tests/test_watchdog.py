"""The stall watchdog: stall snapshots and blocked-loop records, read back from the trace file.

Every assertion is about what the file holds and in which order; none is about how fast. Waits
poll the file with a generous deadline (a liveness bound, not a measurement).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest

from graphtrace import Dep, FakeLM, Gate, Graph, Node, PendingGate, configure
from tests.otlp_validator import attributes, read_spans
from tracing import names, setup
from tracing.setup import Tracing
from tracing.watchdog import DEFAULT_STALL_AFTER, STALL_AFTER_ENV, StallPolicy

Span = dict[str, Any]
INF = math.inf
ALL_OFF = {"node": INF, "dep": INF, "chat": INF, "loop": INF}

# -- programs ------------------------------------------------------------------------------------

RELEASE: dict[str, asyncio.Event] = {}


async def helper2(event: asyncio.Event) -> None:
    await event.wait()


async def helper1(event: asyncio.Event) -> None:
    await helper2(event)


async def stuck_dep() -> str:
    await helper1(RELEASE["stuck"])
    return "released"


async def quick_dep() -> str:
    return "quick"


class Stuck(Node):
    """Two deps, so they run under a TaskGroup; one waits on an event."""

    stuck: Annotated[str, Dep(stuck_dep)]
    quick: Annotated[str, Dep(quick_dep)]

    async def __call__(self) -> None: ...


def sleepy_dep() -> str:
    time.sleep(1.5)  # a sync call that holds the event loop
    return "rested"


class Sleepy(Node):
    rest: Annotated[str, Dep(sleepy_dep)]

    async def __call__(self) -> None: ...


class Gated(Node):
    go: Annotated[bool, Gate("Go on?")]

    async def __call__(self) -> None: ...


class Quick(Node):
    note: str

    async def __call__(self) -> None: ...


async def _quick_run() -> None:
    await Graph(start=Quick, name="quick").arun(lm=FakeLM(), note="n")
    await asyncio.sleep(0.05)  # a few heartbeats while running


stuck_graph = Graph(start=Stuck, name="stuck")
sleepy_graph = Graph(start=Sleepy, name="sleepy")
gated_graph = Graph(start=Gated, name="gated")


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def trace_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "traces"
    yield path
    current = setup.current()
    if current is not None:
        current.shutdown()


def watch(path: Path, stall_after: Any) -> Tracing:
    return configure(path, flush_interval=0.01, stall_after=stall_after)


def pending(span: Span) -> bool:
    return bool(attributes(span).get(names.PENDING))


def finals(spans: list[Span], name: str) -> list[Span]:
    return [s for s in spans if s["name"] == name and not pending(s)]


def stalls_of(spans: list[Span], stalled: str) -> list[Span]:
    return [
        s
        for s in spans
        if s["name"] == names.STALL_SPAN_NAME and attributes(s)[names.STALLED_SPAN] == stalled
    ]


def _read(path: Path) -> list[Span]:
    return read_spans(path, allow_torn_tail=True) if path.exists() else []


async def until(
    path: Path,
    found: Callable[[list[Span]], Any],
    what: str,
    *,
    running: asyncio.Future[Any] | None = None,
) -> tuple[Any, list[Span]]:
    """Poll the trace file until ``found(spans)`` is truthy; its value and the spans then.

    ``running``: a run that must not end first (its error is raised instead of waiting on).
    """
    deadline = time.monotonic() + 15.0
    while True:
        spans = _read(path)
        value = found(spans)
        if value:
            return value, spans
        if running is not None and running.done():
            running.result()
            raise AssertionError(f"the run ended before the trace showed {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the trace never showed {what}")
        await asyncio.sleep(0.02)


def snapshot(spans: list[Span], stalled: str, number: int) -> Span | None:
    for s in stalls_of(spans, stalled):
        if attributes(s)[names.STALL_SNAPSHOT] == number:
            return s
    return None


def functions(node: dict[str, Any]) -> list[str]:
    return [frame["function"] for frame in node["call_stack"]]


# -- stalls -------------------------------------------------------------------------------------


def test_a_stuck_dep_gets_its_call_graph_written_while_it_is_stuck(trace_dir: Path) -> None:
    tracing = watch(trace_dir, 0.2)

    async def main() -> tuple[Span, list[Span], Span]:
        asyncio.current_task().set_name("main")  # type: ignore[union-attr]
        RELEASE["stuck"] = asyncio.Event()

        async def watcher() -> tuple[Span, list[Span], Span]:
            first, then = await until(
                trace_dir, lambda s: snapshot(s, "dep stuck_dep", 1), "a dep stall"
            )
            second, _ = await until(
                trace_dir, lambda s: snapshot(s, "dep stuck_dep", 2), "a second dep stall"
            )
            RELEASE["stuck"].set()
            return first, then, second

        _, watched = await asyncio.gather(stuck_graph.arun(lm=FakeLM()), watcher())
        return watched

    first, spans_then, second = asyncio.run(main())
    assert tracing.flush()
    spans = read_spans(trace_dir)

    # written while stuck: neither the dep nor the run had ended when the record was read
    assert finals(spans_then, "dep stuck_dep") == []
    assert finals(spans_then, "run stuck") == []
    # a zero-length record under the stalled dep span, in its trace
    (dep,) = finals(spans, "dep stuck_dep")
    assert first["parentSpanId"] == dep["spanId"] and first["traceId"] == dep["traceId"]
    assert first["startTimeUnixNano"] == first["endTimeUnixNano"]
    a = attributes(first)
    assert a[names.STALL_KIND] == "dep" and a[names.STALL_THRESHOLD_S] == 0.2
    assert a[names.STALL_ELAPSED_S] >= 0.2
    # back-off: the second snapshot is due at twice the threshold
    assert attributes(second)[names.STALL_ELAPSED_S] >= 0.4

    # the text names the helpers, the dep, then the node, then whoever awaits the run
    text = a[names.STALL_CALL_GRAPH]
    marks = [
        "async helper2()",
        "async helper1()",
        "async stuck_dep()",
        "[run stuck > node Stuck]",
        "TaskGroup.__aexit__()",
        "Run._step()",
        "* Task(name='main'",
    ]
    positions = [text.find(mark) for mark in marks]
    assert -1 not in positions, text
    assert positions == sorted(positions), text

    # the same as data: dep task -> (TaskGroup) run task -> (gather) main task
    graph = json.loads(a[names.STALL_FRAMES])
    assert graph["label"] == "dep stuck_dep" and graph["name"] == a[names.STALL_TASK]
    calls = functions(graph)
    assert calls.index("helper2") < calls.index("helper1") < calls.index("stuck_dep")
    (run_task,) = graph["awaited_by"]
    assert run_task["label"] == "run stuck > node Stuck"
    assert "TaskGroup.__aexit__" in functions(run_task)
    (main_task,) = run_task["awaited_by"]
    assert main_task["name"] == "main" and functions(main_task)[-1].endswith("main")

    # the node is stuck too, and says so under its own span
    (node,) = finals(spans, "node Stuck")
    node_stall = snapshot(spans, "node Stuck", 1)
    assert node_stall is not None and node_stall["parentSpanId"] == node["spanId"]
    # no snapshot after the span ended
    ended = int(dep["endTimeUnixNano"])
    assert all(int(s["startTimeUnixNano"]) <= ended for s in stalls_of(spans, "dep stuck_dep"))
    assert tracing.watchdog is not None and tracing.watchdog.failures == 0


def test_a_slow_lm_call_is_a_chat_stall(trace_dir: Path) -> None:
    watch(trace_dir, {"chat": 0.2, "node": INF})

    class Reply(Node):
        answer: str  # filled by the (slow) LM

        async def __call__(self) -> None: ...

    class Ask(Node):
        question: str

        async def __call__(self) -> Reply: ...

    async def main() -> Span:
        graph = Graph(start=Ask)
        run = asyncio.ensure_future(graph.arun(lm=FakeLM(latency=30), question="why?"))
        found, _ = await until(
            trace_dir, lambda s: stalls_of(s, "chat fake"), "a chat stall", running=run
        )
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        return found[0]

    stall = asyncio.run(main())
    a = attributes(stall)
    assert a[names.STALL_KIND] == "chat"
    assert "FakeLM.complete" in a[names.STALL_CALL_GRAPH]
    assert "[run Ask > node Reply > chat fake]" in a[names.STALL_CALL_GRAPH]


def test_a_node_waiting_at_a_gate_is_not_a_stall(trace_dir: Path) -> None:
    tracing = watch(trace_dir, 0.2)

    async def main() -> None:
        RELEASE["stuck"] = asyncio.Event()
        gates: list[PendingGate] = []
        gated = asyncio.ensure_future(gated_graph.arun(lm=FakeLM(), on_gate=gates.append))
        await until(trace_dir, lambda s: [x for x in s if x["name"] == "gate Gated.go"], "a gate")
        control = asyncio.ensure_future(stuck_graph.arun(lm=FakeLM()))
        # by the control's second snapshot, the gated node has been open twice as long
        await until(trace_dir, lambda s: snapshot(s, "dep stuck_dep", 2), "the control stall")
        gates[0].answer(True)
        RELEASE["stuck"].set()
        await asyncio.gather(gated, control)

    asyncio.run(main())
    assert tracing.flush()
    spans = read_spans(trace_dir)
    assert stalls_of(spans, "node Gated") == []
    assert stalls_of(spans, "gate Gated.go") == []
    assert stalls_of(spans, "node Stuck") != []  # the scan did run meanwhile


def test_a_failure_inside_the_watchdog_is_logged_once_and_it_goes_on(
    trace_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import tracing.watchdog as watchdog_module

    real = watchdog_module.capture_call_graph
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise RuntimeError("capture broke")
        return real(*args, **kwargs)

    monkeypatch.setattr(watchdog_module, "capture_call_graph", flaky)
    tracing = watch(trace_dir, {"dep": 0.1, "node": INF})

    async def main() -> None:
        RELEASE["stuck"] = asyncio.Event()
        run = asyncio.ensure_future(stuck_graph.arun(lm=FakeLM()))
        await until(trace_dir, lambda s: stalls_of(s, "dep stuck_dep"), "a stall after failures")
        RELEASE["stuck"].set()
        await run

    with caplog.at_level(logging.ERROR, logger="graphtrace"):
        asyncio.run(main())
    assert tracing.watchdog is not None and tracing.watchdog.failures == 3
    logged = [r for r in caplog.records if "watchdog" in r.getMessage()]
    assert len(logged) == 1 and "capture broke" in (logged[0].exc_text or str(logged[0].exc_info))


# -- a blocked loop -----------------------------------------------------------------------------


def test_a_sync_dep_that_blocks_the_loop_is_named_while_it_blocks(trace_dir: Path) -> None:
    tracing = watch(trace_dir, {"loop": 0.5})
    asyncio.run(sleepy_graph.arun(lm=FakeLM()))
    assert tracing.flush()
    spans = read_spans(trace_dir)

    records = [s for s in spans if s["name"] == names.LOOP_BLOCKED_SPAN_NAME]
    (early,) = [s for s in records if pending(s)]
    (final,) = [s for s in records if not pending(s)]
    (dep,) = finals(spans, "dep sleepy_dep")
    (run,) = finals(spans, "run sleepy")

    # written at once: before the dep (which held the loop) ended
    assert spans.index(early) < spans.index(dep)
    # the stack of the loop thread names the dep, innermost last
    a = attributes(early)
    assert "in sleepy_dep" in a[names.LOOP_STACK]
    assert json.loads(a[names.LOOP_FRAMES])[-1]["function"] == "sleepy_dep"
    assert a[names.LOOP_HELD_BY] == "dep sleepy_dep" and a[names.LOOP_OPEN_RUNS] == 1
    # the pending record of a loop.blocked span under the dep, linked to the open run
    assert early["parentSpanId"] == final["spanId"]
    assert final["parentSpanId"] == dep["spanId"] and final["traceId"] == dep["traceId"]
    for record in (early, final):
        assert [link["spanId"] for link in record["links"]] == [run["spanId"]]
    # when the loop answered again: how long it was blocked (at least the threshold, which is
    # when it was found blocked)
    blocked_s = attributes(final)[names.LOOP_BLOCKED_S]
    assert blocked_s >= 0.5
    assert int(final["endTimeUnixNano"]) - int(final["startTimeUnixNano"]) >= 0.5e9
    assert tracing.watchdog is not None and tracing.watchdog.blocks == 1


def test_a_stopped_loop_is_not_a_blocked_one(trace_dir: Path) -> None:
    tracing = watch(trace_dir, {"loop": 0.3})
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_quick_run())
        time.sleep(0.8)  # the loop is not running: nothing to answer heartbeats, nothing blocked
        loop.run_until_complete(_quick_run())
    finally:
        loop.close()
    assert tracing.flush()
    spans = read_spans(trace_dir)
    assert len(finals(spans, "run quick")) == 2
    assert [s for s in spans if s["name"] == names.LOOP_BLOCKED_SPAN_NAME] == []


# -- lifecycle and policy -----------------------------------------------------------------------


def _watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "graphtrace-watchdog"]


def test_configure_owns_the_watchdog_thread(trace_dir: Path) -> None:
    before = len(_watchdog_threads())
    first = watch(trace_dir, None)
    assert first.watchdog is not None and first.watchdog.running
    second = watch(trace_dir / "again", 5)
    assert not first.watchdog.running  # reconfiguring stops the previous one
    assert second.watchdog is not None and second.watchdog.running
    second.shutdown()
    assert not second.watchdog.running
    assert len(_watchdog_threads()) == before
    off = watch(trace_dir, ALL_OFF)
    assert off.watchdog is None


def test_policy_from_arguments_and_environment() -> None:
    defaults = StallPolicy.resolve(None, environ={})
    assert defaults.thresholds == DEFAULT_STALL_AFTER and defaults.loop_blocked_after == 1.0
    every = StallPolicy.resolve(2, environ={STALL_AFTER_ENV: "9"})  # the argument wins
    assert every.thresholds == {"node": 2.0, "dep": 2.0, "chat": 2.0}
    env = StallPolicy.resolve(None, environ={STALL_AFTER_ENV: "0.5"})
    assert env.thresholds == {"node": 0.5, "dep": 0.5, "chat": 0.5}
    assert env.loop_blocked_after == 1.0  # the loop detector has its own threshold
    mixed = StallPolicy.resolve({"dep": 3, "loop": INF}, environ={STALL_AFTER_ENV: "7"})
    assert mixed.thresholds == {"node": 7.0, "dep": 3.0, "chat": 7.0}
    assert mixed.loop_blocked_after is None
    assert StallPolicy.resolve({"chat": INF}, environ={}).thresholds == {"node": 30.0, "dep": 10.0}
    assert not StallPolicy.resolve(ALL_OFF, environ={}).enabled
    assert StallPolicy.resolve(None, environ={STALL_AFTER_ENV: "off"}).thresholds == {}
    assert StallPolicy.resolve(0.1, environ={}).tick == 0.025  # a quarter of the smallest
    assert StallPolicy.resolve(None, environ={}).tick == 0.05  # at most


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"gate": 1}, "gates wait for a person"),
        ({"run": 1}, "unknown kind 'run'"),
        (0, "expected seconds > 0"),
        (-1, "expected seconds > 0"),
        (True, "expected seconds"),
        ({"dep": "soon"}, "expected seconds"),
    ],
)
def test_policy_refuses_what_it_cannot_mean(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StallPolicy.resolve(value, environ={})


def test_a_bad_environment_value_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STALL_AFTER_ENV, "soon")
    with pytest.raises(ValueError, match=STALL_AFTER_ENV):
        configure(Path("unused"), stall_after=None)


# -- the open-span bookkeeping ------------------------------------------------------------------


@pytest.mark.parametrize("portable", [False, True], ids=["span fields", "public properties"])
def test_open_spans_are_tracked_per_loop_with_their_task(portable: bool) -> None:
    from tracing.open_spans import OpenSpans, PortableOpenSpans
    from tracing.provider import LeanTracerProvider

    tracker = PortableOpenSpans() if portable else OpenSpans()
    provider = LeanTracerProvider()
    provider.add_span_processor(tracker)
    tracer = provider.get_tracer("graphtrace")
    tracer.start_span("node Outside").end()  # no running loop: not tracked (no task)

    async def main() -> None:
        node = tracer.start_span("node Triage")
        other = tracer.start_span("some.other.span")  # not graphtrace's: not tracked
        (state,) = tracker.loops()
        assert state.loop is asyncio.get_running_loop()
        (entry,) = state.open["node"].values()
        assert entry[0] is node and entry[1] is asyncio.current_task()
        assert sum(len(spans) for spans in state.open.values()) == 1
        node.end()
        other.end()
        assert all(not spans for spans in state.open.values())

    asyncio.run(main())
