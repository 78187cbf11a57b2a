"""Answering gates from ``tail``'s prompt: which gate a typed line is for, and sending it.

Each waiting gate has a number. With several waiting, a line starts with the number or the gate
id: ``2 true``, ``Escalate.approved true``. With one, the whole line is the answer (``true``,
``{"a": 1}``, ``some text``), and a leading number or id of that gate is allowed too (the last of
several left waits with the number it had). A number is a gate's for as long as it waits and is
never given to another gate in the same session, so a number read a moment ago never answers a
gate that appeared since.

Answers go through the control client (:func:`graphtrace.control.client.answer`), in a thread:
the process that runs the gate validates the value; a refusal is shown and the gate stays.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from graphtrace.control.client import Outcome, answer
from graphtrace.control.discovery import WaitingGate
from graphtrace.control.protocol import Refusal

__all__ = ["GateBoard", "Pick", "Problem", "gate_key", "pick", "send_answer"]

GateKey = tuple[str, str, int]
# refusals after which the gate does not wait any more (answered elsewhere, run over)
GONE: Final = frozenset({Refusal.ANSWERED, Refusal.FINISHED, Refusal.UNKNOWN_GATE})


def gate_key(gate: WaitingGate) -> GateKey:
    """What tells one waiting of a gate from another (a gate id repeats across runs)."""
    return (gate.trace_id, gate.gate_id, gate.started_ns)


class GateBoard:
    """The numbers of the waiting gates (see the module doc)."""

    def __init__(self) -> None:
        self._numbers: dict[GateKey, int] = {}
        self._next = 1

    def number(self, gates: Sequence[WaitingGate]) -> list[tuple[int, WaitingGate]]:
        """``gates`` with their numbers; gates seen for the first time get the next ones."""
        out: list[tuple[int, WaitingGate]] = []
        live: set[GateKey] = set()
        for gate in gates:
            key = gate_key(gate)
            live.add(key)
            number = self._numbers.get(key)
            if number is None:
                number = self._numbers[key] = self._next
                self._next += 1
            out.append((number, gate))
        for key in [k for k in self._numbers if k not in live]:
            del self._numbers[key]  # its number is not given out again (_next only grows)
        return out


@dataclass(frozen=True, slots=True)
class Pick:
    """A typed line resolved: this gate, this value."""

    gate: WaitingGate
    value: Any


@dataclass(frozen=True, slots=True)
class Problem:
    """A typed line that answers nothing, and what to type instead."""

    message: str


def pick(
    text: str, numbered: Sequence[tuple[int, WaitingGate]], parse: Callable[[str], Any]
) -> Pick | Problem:
    """The gate and value a typed line means (``parse`` turns the value's text into a value)."""
    line = text.strip()
    if not numbered:
        return Problem("no gate is waiting")
    first, _, rest = line.partition(" ")
    rest = rest.strip()
    if len(numbered) == 1:
        number, gate = numbered[0]
        if first in (str(number), gate.gate_id) and rest:
            return Pick(gate, parse(rest))  # picked as if several waited: the habit carries over
        if not line:
            return _default(gate)
        return Pick(gate, parse(line))
    by_number = {str(number): gate for number, gate in numbered}
    chosen = by_number.get(first)
    if chosen is None:
        same_id = [gate for _, gate in numbered if gate.gate_id == first]
        if len(same_id) > 1:
            return Problem(
                f"{first} waits in {len(same_id)} runs: pick one by its number (e.g. "
                f"`{_number_of(numbered, same_id[0])} true`)"
            )
        if not same_id:
            example = numbered[0][0]
            return Problem(
                f"{len(numbered)} gates wait: start with a gate's number or id, e.g. "
                f"`{example} VALUE`"
            )
        chosen = same_id[0]
    if not rest:
        return _default(chosen, f"type the answer after `{first}`, e.g. `{first} VALUE`")
    return Pick(chosen, parse(rest))


def _default(gate: WaitingGate, problem: str = "type an answer, then Enter") -> Pick | Problem:
    """Enter alone takes the gate's default, when its schema has one."""
    if gate.schema is not None and "default" in gate.schema:
        return Pick(gate, gate.schema["default"])
    return Problem(problem)


def _number_of(numbered: Sequence[tuple[int, WaitingGate]], gate: WaitingGate) -> int:
    return next(number for number, g in numbered if g is gate)


async def send_answer(trace_dir: Path, choice: Pick) -> Outcome:
    """Send the answer to the process that runs the gate (blocking I/O, so in a thread)."""
    gate = choice.gate
    return await asyncio.to_thread(answer, trace_dir, gate.run_id, gate.gate_id, choice.value)


def gone(outcome: Outcome) -> bool:
    """Whether a refusal says the gate waits no more (so the prompt stops offering it)."""
    return outcome.reason in GONE
