from __future__ import annotations

from typing import Annotated, Optional

import pytest

from graphtrace import Dep, Gate, Graph, GraphDefinitionError, Node


class End(Node):
    text: str

    async def __call__(self) -> None: ...


class Begin(Node):
    question: str

    async def __call__(self) -> End: ...


def test_topology_is_discovered_from_return_hints() -> None:
    class Middle(Node):
        async def __call__(self) -> End | None: ...

    class First(Node):
        async def __call__(self) -> Middle | End: ...

    graph = Graph(start=First)
    assert graph.nodes == (First, Middle, End)
    assert graph.specs[First].decides
    assert graph.specs[Middle].may_end and graph.specs[Middle].decides
    assert graph.specs[End].may_end and not graph.specs[End].successors


def test_optional_and_annotated_return_hints_are_unwrapped() -> None:
    class A(Node):
        async def __call__(self) -> Annotated[Optional[End], "meta"]: ...  # noqa: UP045

    spec = Graph(start=A).specs[A]
    assert spec.successors == (End,) and spec.may_end


def test_instance_instead_of_class_is_refused() -> None:
    with pytest.raises(GraphDefinitionError, match=r"instance of Begin.*Graph\(start=Begin\)"):
        Graph(start=Begin(question="q"))  # type: ignore[arg-type]


def test_missing_return_hint_names_the_class() -> None:
    class NoHint(Node):
        async def __call__(self):  # type: ignore[no-untyped-def]
            return None

    with pytest.raises(GraphDefinitionError, match="NoHint.__call__ has no return type hint"):
        Graph(start=NoHint)


def test_non_node_in_return_hint_is_refused() -> None:
    class Bad(Node):
        async def __call__(self) -> int: ...  # type: ignore[empty-body]

    with pytest.raises(GraphDefinitionError, match="Bad.__call__ may return int"):
        Graph(start=Bad)


def test_node_without_path_to_an_end_is_refused() -> None:
    class Ping(Node):
        async def __call__(self) -> Pong: ...

    class Pong(Node):
        async def __call__(self) -> Ping: ...

    globals().update(Ping=Ping, Pong=Pong)
    try:
        with pytest.raises(GraphDefinitionError, match="Ping, Pong have no path to an end"):
            Graph(start=Ping)
    finally:
        del globals()["Ping"], globals()["Pong"]


def _no_annotation(question):  # type: ignore[no-untyped-def]
    return question


def test_dep_without_return_annotation_names_node_field_and_function() -> None:
    class NeedsDep(Node):
        question: str
        derived: Annotated[str, Dep(_no_annotation)]

        async def __call__(self) -> None: ...

    with pytest.raises(
        GraphDefinitionError, match="NeedsDep.derived: dep _no_annotation has no return annotation"
    ):
        Graph(start=NeedsDep)


def _returns_int() -> int:
    return 1


def test_dep_that_does_not_fit_its_field_is_refused() -> None:
    class Misfit(Node):
        words: Annotated[list[str], Dep(_returns_int)]

        async def __call__(self) -> None: ...

    with pytest.raises(
        GraphDefinitionError, match=r"Misfit.words: dep _returns_int returns int.*list"
    ):
        Graph(start=Misfit)


def test_dep_cycle_is_refused() -> None:
    def first(x: int) -> int:
        return x

    def second(y: int) -> int:
        return y

    first.__annotations__["x"] = Annotated[int, Dep(second)]
    second.__annotations__["y"] = Annotated[int, Dep(first)]

    class Cyclic(Node):
        value: Annotated[int, Dep(first)]

        async def __call__(self) -> None: ...

    with pytest.raises(
        GraphDefinitionError, match="Cyclic.value: dep cycle first -> second -> first"
    ):
        Graph(start=Cyclic)


def test_dep_parameter_that_names_nothing_is_refused() -> None:
    def lookup(account: str) -> str:
        return account

    class Lookup(Node):
        customer: str
        record: Annotated[str, Dep(lookup)]

        async def __call__(self) -> None: ...

    with pytest.raises(GraphDefinitionError, match="parameter 'account' of dep lookup"):
        Graph(start=Lookup)


def test_gate_default_must_fit_the_field() -> None:
    class Approve(Node):
        ok: Annotated[bool, Gate("ok?", default="maybe")]

        async def __call__(self) -> None: ...

    with pytest.raises(GraphDefinitionError, match="Approve.ok: Gate default 'maybe'"):
        Graph(start=Approve)


def test_mermaid_lists_every_edge() -> None:
    class Decide(Node):
        async def __call__(self) -> Begin | End | None: ...

    text = Graph(start=Decide).to_mermaid()
    assert text.splitlines()[0] == "flowchart TD"
    for edge in (
        "__start__([start]) --> Decide",
        "Decide -->|LM| Begin",
        "Decide -->|LM| End",
        "Begin --> End",
        "End --> __end__",
        "Decide --> __end__",
    ):
        assert edge in text


def test_mermaid_marks_only_lm_decisions() -> None:
    class Branch(Node):
        flag: bool

        async def __call__(self) -> Begin | End:
            return Begin(question="q") if self.flag else End(text="t")

    text = Graph(start=Branch).to_mermaid()
    assert "Branch --> Begin" in text and "Branch --> End" in text and "|LM|" not in text
