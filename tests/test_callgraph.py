"""The async call graph capture: the same structure on 3.11–3.13 as 3.14's asyncio gives.

One program covers the ways a task comes to be awaited (a ``TaskGroup``, ``gather`` and nested
``gather``, ``shield``, ``wait``, ``wait_for``, a direct ``await task``) and the ways a stack goes
deep (helper coroutines, an async generator, ``async with`` an ``asynccontextmanager``). Each
task is captured from another task while it is suspended, as the watchdog does. Where Python has
``asyncio.capture_call_graph`` (3.14+), our equivalent is compared with it on the same program.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tracing import callgraph
from tracing.callgraph import FutureCallGraph, capture_call_graph, format_call_graph, graph_data

HAS_NATIVE = hasattr(asyncio, "capture_call_graph")
HERE = __file__


# -- the program ---------------------------------------------------------------------------------


async def helper2(event: asyncio.Event) -> None:
    await event.wait()


async def helper1(event: asyncio.Event) -> None:
    await helper2(event)


async def leaf(event: asyncio.Event) -> None:
    await helper1(event)


async def numbers(event: asyncio.Event) -> AsyncIterator[int]:
    await helper1(event)
    yield 1


async def use_generator(event: asyncio.Event) -> None:
    async for _ in numbers(event):
        pass


@contextlib.asynccontextmanager
async def opened(event: asyncio.Event) -> AsyncIterator[None]:
    await helper1(event)
    yield


async def use_context(event: asyncio.Event) -> None:
    async with opened(event):
        pass


async def shielding(target: asyncio.Task[None]) -> None:
    await asyncio.shield(target)


async def waiting(target: asyncio.Task[None]) -> None:
    await asyncio.wait([target])


async def waiting_for(target: asyncio.Task[None]) -> None:
    await asyncio.wait_for(target, 60)


async def awaiting(target: asyncio.Task[None]) -> None:
    await target


async def nested_gather(event: asyncio.Event) -> None:
    await asyncio.gather(asyncio.gather(leaf(event)), helper1(event))


async def group(event: asyncio.Event, tasks: dict[str, asyncio.Task[Any]]) -> None:
    def start(name: str, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        tasks[name] = task
        return task

    async with asyncio.TaskGroup() as tg:

        def child(name: str, coro: Any) -> None:
            tasks[name] = tg.create_task(coro, name=name)

        child("leaf", leaf(event))
        child("generator", use_generator(event))
        child("context", use_context(event))
        child("shielding", shielding(start("shielded", helper1(event))))
        child("waiting", waiting(start("waited", helper1(event))))
        child("waiting_for", waiting_for(start("waited_for", helper1(event))))
        child("awaiting", awaiting(start("awaited", helper1(event))))
        child("nested", nested_gather(event))


async def settle() -> None:
    """Let every task of the program reach its await (no I/O: a few loop turns suffice)."""
    for _ in range(20):
        await asyncio.sleep(0)


def run_program(probe: Callable[[dict[str, asyncio.Task[Any]]], Any]) -> Any:
    """Run the program; ``probe(tasks)`` runs in a sibling task while everything is suspended."""
    result: list[Any] = []

    async def main() -> None:
        asyncio.current_task().set_name("main")  # type: ignore[union-attr]
        event = asyncio.Event()
        tasks: dict[str, asyncio.Task[Any]] = {}

        async def prober() -> None:
            await settle()
            try:
                result.append(probe(tasks))
            finally:
                event.set()

        await asyncio.gather(group(event, tasks), prober())

    asyncio.run(main())
    return result[0]


# -- a compact form to compare ------------------------------------------------------------------


def _name(future: asyncio.Future[Any]) -> str:
    if isinstance(future, asyncio.Task):
        name = future.get_name()
        return name if not name.startswith("Task-") else "T"
    return "F"


def walk(graph: FutureCallGraph) -> list[Any]:
    """``[name, [this file's frames as 'kind function'], sorted awaited_by]``.

    Frames of asyncio itself are left out: they differ between versions (3.14's TaskGroup has an
    ``_aexit`` under ``__aexit__``); the tests check those separately.
    """
    frames = [
        f"{e.kind} {e.frame.f_code.co_name}"
        for e in graph.call_stack
        if e.frame.f_code.co_filename == HERE
    ]
    parents = sorted((walk(p) for p in graph.awaited_by), key=repr)
    return [_name(graph.future), frames, parents]


MAIN = ["main", ["async main"], []]
GROUP = ["T", ["async group"], [MAIN]]  # group() runs in a gather child of main


def captured(tasks: dict[str, asyncio.Task[Any]], **kwargs: Any) -> dict[str, list[Any]]:
    out = {}
    for name, task in tasks.items():
        graph = capture_call_graph(task, **kwargs)
        assert graph is not None
        out[name] = walk(graph)
    return out


# -- tests --------------------------------------------------------------------------------------


def test_call_stacks_innermost_first_and_who_awaits_whom() -> None:
    graphs = run_program(captured)
    helpers = ["async helper2", "async helper1"]
    assert graphs["leaf"] == ["leaf", [*helpers, "async leaf"], [GROUP]]
    # an async generator and an asynccontextmanager: the walk goes through asend
    assert graphs["generator"] == [
        "generator",
        [*helpers, "async generator numbers", "async use_generator"],
        [GROUP],
    ]
    assert graphs["context"] == [
        "context",
        [*helpers, "async generator opened", "async use_context"],
        [GROUP],
    ]
    # shield, wait, wait_for and a plain await: the caller's task awaits the target task
    for waiter, target, frame in [
        ("shielding", "shielded", "async shielding"),
        ("waiting", "waited", "async waiting"),
        ("waiting_for", "waited_for", "async waiting_for"),
        ("awaiting", "awaited", "async awaiting"),
    ]:
        assert graphs[target] == [target, helpers, [[waiter, [frame], [GROUP]]]], target


def test_nested_gather_children_are_awaited_by_the_gathering_task() -> None:
    def probe(tasks: dict[str, asyncio.Task[Any]]) -> list[list[Any]]:
        nested = tasks["nested"]
        loop = asyncio.get_running_loop()
        found = []
        for task in asyncio.all_tasks(loop):
            graph = capture_call_graph(task)
            assert graph is not None
            if any(p.future is nested for p in graph.awaited_by):
                found.append(walk(graph))
        return sorted(found, key=repr)

    nested = ["nested", ["async nested_gather"], [GROUP]]
    assert run_program(probe) == [
        ["T", ["async helper2", "async helper1", "async leaf"], [nested]],
        ["T", ["async helper2", "async helper1"], [nested]],
    ]


def test_asyncio_frames_are_there_too() -> None:
    def probe(tasks: dict[str, asyncio.Task[Any]]) -> list[list[str]]:
        leaf_graph = capture_call_graph(tasks["leaf"])
        assert leaf_graph is not None
        group_graph = leaf_graph.awaited_by[0]
        return [
            [e.frame.f_code.co_qualname for e in g.call_stack] for g in (leaf_graph, group_graph)
        ]

    leaf_frames, group_frames = run_program(probe)
    assert leaf_frames[0] == "Event.wait"  # the innermost frame: where it waits
    assert "TaskGroup.__aexit__" in group_frames  # the parent waits for its group to finish
    assert group_frames[-1] == "group"


def test_limit_keeps_the_ends_the_stdlib_keeps() -> None:
    def probe(tasks: dict[str, asyncio.Task[Any]]) -> list[list[str]]:
        out = []
        for limit in (0, 1, -1, 2):
            graph = capture_call_graph(tasks["leaf"], limit=limit)
            assert graph is not None
            assert len(graph.awaited_by) == 1  # "awaited by" is there whatever the limit
            out.append([e.frame.f_code.co_name for e in graph.call_stack])
        return out

    assert run_program(probe) == [[], ["leaf"], ["wait"], ["helper1", "leaf"]]


def test_the_current_task_includes_its_sync_frames() -> None:
    seen: list[Any] = []

    def sync_probe() -> None:
        graph = capture_call_graph()
        assert graph is not None
        seen.append(walk(graph))

    async def inner() -> None:
        sync_probe()

    async def outer() -> None:
        await inner()

    async def main() -> None:
        asyncio.current_task().set_name("main")  # type: ignore[union-attr]
        async with asyncio.TaskGroup() as tg:
            tg.create_task(outer(), name="child")

    asyncio.run(main())
    assert seen == [["child", ["sync sync_probe", "async inner", "async outer"], [MAIN]]]


def test_no_current_task_gives_none_and_no_loop_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="outside of a running event loop"):
        capture_call_graph()

    def in_callback() -> None:
        seen.append(capture_call_graph())

    async def main() -> None:
        asyncio.get_running_loop().call_soon(in_callback)
        await asyncio.sleep(0)

    seen: list[Any] = []
    asyncio.run(main())
    assert seen == [None]


def test_a_plain_future_is_awaited_by_every_task_waiting_on_it() -> None:
    async def main() -> list[Any]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def a() -> None:
            await future

        tasks = [asyncio.create_task(a(), name=n) for n in ("A", "B")]
        await settle()
        graph = capture_call_graph(future)
        future.set_result(None)
        await asyncio.gather(*tasks)
        assert graph is not None
        return walk(graph)

    assert asyncio.run(main()) == ["F", [], [["A", ["async a"], []], ["B", ["async a"], []]]]


# -- the text and the data ----------------------------------------------------------------------

_HEADER = r"\* Task\(name='(?P<name>[^']*)', id=0x[0-9a-f]+\)(?: \[(?P<label>[^\]]*)\])?"
_FRAME = r"  \|   File '(?P<file>[^']*)', line \d+, in (?P<where>.*)\(\)"


def test_text_has_the_layout_of_asyncio_format_call_graph() -> None:
    def probe(tasks: dict[str, asyncio.Task[Any]]) -> str:
        graph = capture_call_graph(tasks["generator"])
        assert graph is not None
        return format_call_graph(graph)

    lines = run_program(probe).split("\n")
    shape = []
    for line in lines:
        depth = (len(line) - len(line.lstrip(" "))) // 4
        body = line[depth * 4 :]
        if m := re.fullmatch(_HEADER, body):
            assert m["label"] is None
            shape.append(f"{depth} * {m['name'] if not m['name'].startswith('Task-') else 'T'}")
        elif m := re.fullmatch(_FRAME, body):
            if m["file"] == HERE:
                shape.append(f"{depth} | {m['where']}")
        else:
            shape.append(f"{depth} {body}")
    assert shape == [
        "0 * generator",
        "0   + Call stack:",
        "0 | async helper2",
        "0 | async helper1",
        "0 | async generator numbers",
        "0 | async use_generator",
        "0   + Awaited by:",
        "1 * T",
        "1   + Call stack:",
        "1 | async group",
        "1   + Awaited by:",
        "2 * main",
        "2   + Call stack:",
        "2 | async run_program.<locals>.main",
    ]


def test_labels_go_on_the_header_line_and_into_the_data() -> None:
    def probe(tasks: dict[str, asyncio.Task[Any]]) -> tuple[str, dict[str, Any]]:
        graph = capture_call_graph(tasks["leaf"])
        assert graph is not None
        labels = {id(tasks["leaf"]): "dep load"}

        def label(future: asyncio.Future[Any]) -> str | None:
            return labels.get(id(future))

        return format_call_graph(graph, label=label), graph_data(graph, label=label)

    text, data = run_program(probe)
    assert re.fullmatch(_HEADER, text.split("\n")[0])["label"] == "dep load"  # type: ignore[index]
    data = json.loads(json.dumps(data))  # JSON-ready as it is
    assert data["type"] == "Task" and data["name"] == "leaf" and data["label"] == "dep load"
    assert [f["function"] for f in data["call_stack"]][1:4] == ["helper2", "helper1", "leaf"]
    assert data["call_stack"][1]["kind"] == "async" and data["call_stack"][1]["file"] == HERE
    assert isinstance(data["call_stack"][1]["line"], int)
    parent = data["awaited_by"][0]
    assert "label" not in parent and parent["awaited_by"][0]["name"] == "main"


# -- against the standard library (3.14+) -------------------------------------------------------


def _same(ours: FutureCallGraph, theirs: Any) -> None:
    assert ours.future is theirs.future
    assert [e.frame for e in ours.call_stack] == [e.frame for e in theirs.call_stack]
    assert sorted(id(p.future) for p in ours.awaited_by) == sorted(
        id(p.future) for p in theirs.awaited_by
    )
    by_future = {id(p.future): p for p in theirs.awaited_by}
    for parent in ours.awaited_by:
        _same(parent, by_future[id(parent.future)])


@pytest.mark.skipif(
    not HAS_NATIVE, reason="asyncio.capture_call_graph needs Python 3.14+, not this Python"
)
def test_our_equivalent_agrees_with_asyncio_capture_call_graph() -> None:
    def probe(tasks: dict[str, asyncio.Task[Any]]) -> int:
        compared = 0
        for name, task in tasks.items():
            if name in ("generator", "context"):
                continue  # the stdlib stops at an async generator's asend; we go on
            ours = callgraph._capture_compat(task)
            theirs = asyncio.capture_call_graph(task)  # type: ignore[attr-defined]
            assert ours is not None and theirs is not None
            _same(ours, theirs)
            compared += 1
        return compared

    assert run_program(probe) > 5
