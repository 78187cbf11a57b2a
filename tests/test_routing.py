from __future__ import annotations

from typing import Any

import pytest

from graphtrace import FakeLM, Graph, InputError, MaxStepsExceeded, Node, RunError
from tests.conftest import decide, run


class Finish(Node):
    """Close the case."""

    verdict: str

    async def __call__(self) -> None: ...


class Review(Node):
    """Review the request."""

    note: str

    async def __call__(self) -> Finish: ...


class Start(Node):
    request: str

    async def __call__(self) -> Review | Finish | None: ...


def test_make_fills_the_single_successor_with_the_lm() -> None:
    last = Graph(start=Review).run(lm=FakeLM(), note="n")
    assert isinstance(last, Finish)
    assert isinstance(last.verdict, str) and last.verdict


@pytest.mark.parametrize(
    "choice, expected", [("Review", Finish), ("Finish", Finish), ("END", Start)]
)
def test_decide_follows_the_lm_choice(choice: str, expected: type[Node]) -> None:
    graph = Graph(start=Start)
    r = graph.new_run(lm=FakeLM(respond=decide(choice)), request="r")
    last = run(r.execute())
    assert isinstance(last, expected)
    steps = [type(n).__name__ for n in r.history]
    assert (
        steps
        == {
            "Review": ["Start", "Review", "Finish"],
            "Finish": ["Start", "Finish"],
            "END": ["Start"],
        }[choice]
    )


def test_decision_outside_the_choices_is_retried_then_fails() -> None:
    from graphtrace import FillError

    graph = Graph(start=Start)
    with pytest.raises(FillError) as info:
        graph.run(lm=FakeLM(respond=decide("Nowhere")), request="r")
    assert len(info.value.errors) == 3
    assert all("next" in e for e in info.value.errors)


class Pay(Node):
    amount: int

    async def __call__(self) -> Receipt | None:
        if self.amount <= 0:
            return None
        return Receipt(paid=self.amount)  # `note` left to the LM


class Receipt(Node):
    paid: int
    note: str

    async def __call__(self) -> None: ...


def test_custom_body_returns_partial_node_completed_by_the_lm() -> None:
    last = Graph(start=Pay).run(lm=FakeLM(), amount=5)
    assert isinstance(last, Receipt)
    assert last.paid == 5 and isinstance(last.note, str)


def test_custom_body_may_end_with_none() -> None:
    last = Graph(start=Pay).run(lm=FakeLM(), amount=0)
    assert isinstance(last, Pay)


class Rogue(Node):
    async def __call__(self) -> Finish:
        return Review(note="x")  # type: ignore[return-value]


def test_returning_a_node_the_hint_does_not_name_fails_clearly() -> None:
    with pytest.raises(RunError, match="Rogue.__call__ returned Review, which its return hint"):
        Graph(start=Rogue).run(lm=FakeLM())


class Loop(Node):
    count: int = 0

    async def __call__(self) -> Loop | None:
        return Loop(count=self.count + 1)


def test_max_steps_guard() -> None:
    with pytest.raises(MaxStepsExceeded, match="more than 7 steps"):
        Graph(start=Loop).run(lm=FakeLM(), max_steps=7)


def test_missing_and_unknown_inputs_are_named() -> None:
    graph = Graph(start=Start)
    with pytest.raises(InputError, match="missing input.*'request'"):
        graph.new_run(lm=FakeLM())
    with pytest.raises(InputError, match="unknown input.*'colour'.*inputs are request"):
        graph.new_run(lm=FakeLM(), request="r", colour="red")
    with pytest.raises(InputError, match="input 'amount' of Pay"):
        Graph(start=Pay).new_run(lm=FakeLM(), amount="many")


def test_fill_retries_with_the_error_fed_back() -> None:
    seen: list[list[Any]] = []

    def respond(messages: Any, schema: Any) -> Any:
        seen.append(list(messages))
        return '{"verdict": 1}' if len(seen) == 1 else {"verdict": "fine"}

    last = Graph(start=Review).run(lm=FakeLM(respond=respond), note="n")
    assert last.verdict == "fine"  # type: ignore[attr-defined]
    assert len(seen) == 2
    retry = seen[1]
    assert retry[-2].role == "assistant" and retry[-2].content == '{"verdict": 1}'
    assert "verdict" in retry[-1].content and "not valid" in retry[-1].content


def test_fill_error_carries_every_attempt() -> None:
    from graphtrace import FillError

    with pytest.raises(FillError) as info:
        Graph(start=Review).run(lm=FakeLM(respond=lambda m, s: "not json"), note="n")
    assert info.value.node == "Finish"
    assert len(info.value.errors) == 3
    assert "attempt 3" in info.value.errors[-1]


def test_prompt_is_built_from_names_docstrings_and_descriptions() -> None:
    from pydantic import Field

    class Explain(Node):
        """Explain the answer to a child."""

        text: str = Field(description="two short sentences")

        async def __call__(self) -> None: ...

    class Ask(Node):
        q: str

        async def __call__(self) -> Explain: ...

    prompts: list[str] = []

    def respond(messages: Any, schema: Any) -> Any:
        prompts.append("\n".join(m.content for m in messages))
        return None

    Graph(start=Ask).run(lm=FakeLM(respond=respond), q="why is the sky blue")
    assert len(prompts) == 1
    for needle in (
        "Explain",
        "Explain the answer to a child.",
        "two short sentences",
        "why is the sky blue",
    ):
        assert needle in prompts[0]
