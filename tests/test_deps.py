from __future__ import annotations

import asyncio
from typing import Annotated

import pytest

from graphtrace import Dep, DepError, FakeLM, Graph, Node, Recall, RecallError
from tests.conftest import run

calls: dict[str, int] = {}


def _count(name: str) -> None:
    calls[name] = calls.get(name, 0) + 1


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


# -- concurrency: two deps that can only finish if they run at the same time ---------------

both_started: dict[str, asyncio.Event] = {}


async def left() -> str:
    both_started["left"].set()
    await asyncio.wait_for(both_started["right"].wait(), 2)
    return "L"


async def right() -> str:
    both_started["right"].set()
    await asyncio.wait_for(both_started["left"].wait(), 2)
    return "R"


class Pair(Node):
    a: Annotated[str, Dep(left)]
    b: Annotated[str, Dep(right)]

    async def __call__(self) -> None: ...


def test_independent_deps_run_concurrently() -> None:
    async def main() -> Node:
        both_started.update(left=asyncio.Event(), right=asyncio.Event())
        return await Graph(start=Pair).arun(lm=FakeLM())

    last = run(main())
    assert (last.a, last.b) == ("L", "R")  # type: ignore[attr-defined]


# -- chains and caching --------------------------------------------------------------------


async def fetch_user(user: str) -> dict[str, str]:
    _count("fetch_user")
    await asyncio.sleep(0)
    return {"name": user.upper()}


def greeting(profile: Annotated[dict[str, str], Dep(fetch_user)]) -> str:
    _count("greeting")
    return f"hello {profile['name']}"


class Greet(Node):
    user: str
    profile: Annotated[dict[str, str], Dep(fetch_user)]
    text: Annotated[str, Dep(greeting)]

    async def __call__(self) -> Again: ...


class Again(Node):
    profile: Annotated[dict[str, str], Dep(fetch_user)]
    user: Annotated[str, Recall()]

    async def __call__(self) -> None: ...


def test_chained_deps_sync_and_async_each_called_once_per_run() -> None:
    graph = Graph(start=Greet)
    last = graph.run(lm=FakeLM(), user="ada")
    assert last.profile == {"name": "ADA"}  # type: ignore[attr-defined]
    # fetch_user is needed by two fields of Greet (directly and through greeting) and by Again
    assert calls == {"fetch_user": 1, "greeting": 1}
    graph.run(lm=FakeLM(), user="bob")
    assert calls == {"fetch_user": 2, "greeting": 2}, "a new run must not reuse the cache"


def test_dep_results_are_not_shared_between_concurrent_runs() -> None:
    graph = Graph(start=Greet)

    async def main() -> list[Node]:
        return await asyncio.gather(*(graph.arun(lm=FakeLM(), user=u) for u in ("x", "y", "z")))

    lasts = run(main())
    assert [n.profile["name"] for n in lasts] == ["X", "Y", "Z"]  # type: ignore[attr-defined]
    assert calls["fetch_user"] == 3


# -- failures --------------------------------------------------------------------------------

sibling_cancelled: list[bool] = []


async def slow_sibling() -> str:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        sibling_cancelled.append(True)
        raise
    return "never"


async def broken(key: str) -> str:
    await asyncio.sleep(0.01)
    raise KeyError(key)


class Fragile(Node):
    key: str
    slow: Annotated[str, Dep(slow_sibling)]
    value: Annotated[str, Dep(broken)]

    async def __call__(self) -> None: ...


def test_failing_dep_cancels_siblings_and_names_node_field_function() -> None:
    sibling_cancelled.clear()
    with pytest.raises(DepError) as info:
        Graph(start=Fragile).run(lm=FakeLM(), key="k1")
    err = info.value
    assert (err.node, err.field, err.function) == ("Fragile", "value", "broken")
    assert isinstance(err.cause, KeyError)
    assert "Fragile.value" in str(err) and "broken" in str(err)
    assert sibling_cancelled == [True]


def inner_fails() -> int:
    raise ValueError("bad inner")


def outer(n: Annotated[int, Dep(inner_fails)]) -> int:
    return n


class Chain(Node):
    total: Annotated[int, Dep(outer)]

    async def __call__(self) -> None: ...


def test_failure_deep_in_a_chain_names_the_failing_function() -> None:
    with pytest.raises(DepError) as info:
        Graph(start=Chain).run(lm=FakeLM())
    assert info.value.function == "inner_fails" and info.value.field == "total"


# -- recall ----------------------------------------------------------------------------------


class Second(Node):
    topic: Annotated[str, Recall()]
    size: Annotated[int, Recall(name="count")]
    missing: Annotated[str, Recall()] = "fallback"

    async def __call__(self) -> None: ...


class First(Node):
    topic: str
    count: int

    async def __call__(self) -> Second: ...


def test_recall_takes_the_latest_earlier_value() -> None:
    last = Graph(start=First).run(lm=FakeLM(), topic="owls", count=3)
    assert (last.topic, last.size, last.missing) == ("owls", 3, "fallback")  # type: ignore[attr-defined]


class Orphan(Node):
    needed: Annotated[str, Recall()]

    async def __call__(self) -> None: ...


def test_recall_without_a_value_or_default_fails_clearly() -> None:
    with pytest.raises(RecallError, match=r"Orphan.needed: no earlier node"):
        Graph(start=Orphan).run(lm=FakeLM())
