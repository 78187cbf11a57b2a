from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest

from graphtrace import FakeLM, Gate, GateError, GateRefused, Graph, Node, PendingGate, RunState
from tests.conftest import run


class Approve(Node):
    amount: int
    approved: Annotated[bool, Gate("Approve the refund?", default=False)]

    async def __call__(self) -> None: ...


class TwoGates(Node):
    size: Annotated[int, Gate("How many?")]
    colour: Annotated[str, Gate("Which colour?", default="red")]

    async def __call__(self) -> None: ...


def test_gate_answered_in_process_after_an_invalid_answer() -> None:
    async def main() -> tuple[Node, list[str]]:
        r = Graph(start=Approve).new_run(lm=FakeLM(), amount=10)
        task = asyncio.create_task(r.execute())
        while not r.waiting_gates:
            await asyncio.sleep(0.001)
        assert r.state is RunState.WAITING
        gate = r.waiting_gates[0]
        assert gate.gate_id == "Approve.approved" and gate.expected_type == "bool"
        refusals = []
        with pytest.raises(GateRefused) as info:
            r.answer("Approve.approved", "perhaps")
        refusals.append(str(info.value))
        assert r.waiting_gates == [gate], "an invalid answer leaves the gate open"
        assert r.answer(None, "yes") is True  # pydantic's bool coercion
        with pytest.raises(GateRefused, match="already answered|no waiting gate"):
            r.answer("Approve.approved", False)
        return await task, refusals

    last, refusals = run(main())
    assert last.approved is True  # type: ignore[attr-defined]
    assert "'perhaps' is not a valid bool for Approve.approved" in refusals[0]


def test_unknown_gate_and_finished_run_are_refused() -> None:
    async def main() -> None:
        r = Graph(start=Approve).new_run(lm=FakeLM(), amount=1)
        task = asyncio.create_task(r.execute())
        while not r.waiting_gates:
            await asyncio.sleep(0.001)
        with pytest.raises(GateRefused, match="no waiting gate 'Approve.other'"):
            r.answer("Approve.other", True)
        r.answer("Approve.approved", False)
        await task
        with pytest.raises(GateRefused, match="has finished"):
            r.answer("Approve.approved", True)

    run(main())


def test_several_gates_are_answered_in_any_order() -> None:
    def on_gate(gate: PendingGate) -> None:
        # answer each as soon as it opens; colour first would also work
        gate.answer({"TwoGates.size": "4", "TwoGates.colour": "blue"}[gate.gate_id])

    last = Graph(start=TwoGates).run(lm=FakeLM(), on_gate=on_gate)
    assert (last.size, last.colour) == (4, "blue")  # type: ignore[attr-defined]


def test_several_gates_wait_together() -> None:
    async def main() -> Any:
        r = Graph(start=TwoGates).new_run(lm=FakeLM())
        task = asyncio.create_task(r.execute())
        while len(r.waiting_gates) < 2:
            await asyncio.sleep(0.001)
        with pytest.raises(GateRefused, match="waits at 2 gates"):
            r.answer(None, 1)
        r.answer("TwoGates.colour", "green")
        await asyncio.sleep(0.01)
        assert [g.gate_id for g in r.waiting_gates] == ["TwoGates.size"]
        r.answer("TwoGates.size", 2)
        return await task

    last = run(main())
    assert (last.size, last.colour) == (2, "green")


def test_auto_answer_uses_the_default_and_refuses_without_one() -> None:
    last = Graph(start=Approve).run(lm=FakeLM(), amount=3, auto_answer=True)
    assert last.approved is False  # type: ignore[attr-defined]
    with pytest.raises(GateError, match="TwoGates.size has no default"):
        Graph(start=TwoGates).run(lm=FakeLM(), auto_answer=True)


class Timed(Node):
    fallback: Annotated[str, Gate("Name?", default="anon", timeout=0.05)]

    async def __call__(self) -> None: ...


class TimedStrict(Node):
    must: Annotated[str, Gate("Name?", timeout=0.05)]

    async def __call__(self) -> None: ...


def test_gate_timeout_uses_default_or_fails() -> None:
    assert Graph(start=Timed).run(lm=FakeLM()).fallback == "anon"  # type: ignore[attr-defined]
    with pytest.raises(GateError, match="timed out after 0.05s and has no default"):
        Graph(start=TimedStrict).run(lm=FakeLM())
