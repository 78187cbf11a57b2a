"""A small graph whose every run has each kind of span: run, node, dep, chat and gate.

``Triage`` resolves a dep (chained on another), then the LM fills ``Escalate.reason`` (a chat
span) and a person answers the ``approved`` gate (``--auto-answer`` takes its default). Used by
the forwarding tests, in process and as ``graphtrace run tests/forward_graph.py:graph``.
"""

from __future__ import annotations

from typing import Annotated

from graphtrace import Dep, Gate, Graph, Node


async def load_customer(customer: str) -> str:
    """The customer's plan (a stand-in for a database call)."""
    return f"{customer}: pro"


async def load_history(profile: Annotated[str, Dep(load_customer)]) -> list[str]:
    """Earlier tickets, chained on ``load_customer``."""
    return [f"{profile} #1"]


class Triage(Node):
    """Read the ticket and hand it to on-call."""

    ticket: str = "refund please"
    customer: str = "c-1"
    history: Annotated[list[str], Dep(load_history)]

    async def __call__(self) -> Escalate: ...


class Escalate(Node):
    """Say why on-call should take the ticket."""

    reason: str
    approved: Annotated[bool, Gate("Escalate to on-call?", default=True)]

    async def __call__(self) -> None:
        return None


graph = Graph(start=Triage, name="forward-check")
