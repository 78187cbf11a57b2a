"""The built-in demo: support-ticket triage with deps, LM fills, an LM decision and a gate.

Run it with no network and no keys::

    graphtrace run graphtrace.demo:graph --auto-answer --runs 20
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from graphtrace import Dep, Gate, Graph, Node, Recall


class Customer(BaseModel):
    id: str
    plan: Literal["free", "pro", "enterprise"]
    open_tickets: int


async def load_customer(customer: str) -> Customer:
    """Look the customer up (a short, simulated database call)."""
    await asyncio.sleep(0.01)
    plans: tuple[Literal["free", "pro", "enterprise"], ...] = ("free", "pro", "enterprise")
    return Customer(
        id=customer, plan=plans[sum(map(ord, customer)) % 3], open_tickets=len(customer) % 4
    )


async def load_history(profile: Annotated[Customer, Dep(load_customer)]) -> list[str]:
    """Earlier tickets of the customer: chained on ``load_customer``."""
    await asyncio.sleep(0.02)
    return [f"ticket #{profile.id}-{n}" for n in range(profile.open_tickets)]


async def search_knowledge_base(ticket: str) -> list[str]:
    """The slow dep: a simulated search over help-centre articles."""
    await asyncio.sleep(0.15)
    words = [w.strip(".,!?").lower() for w in ticket.split() if len(w) > 4]
    return [f"How to fix: {w}" for w in words[:3]] or ["Contacting support"]


def priority_for(profile: Annotated[Customer, Dep(load_customer)]) -> int:
    """A sync dep: enterprise tickets come first."""
    return {"enterprise": 1, "pro": 2, "free": 3}[profile.plan]


class Triage(Node):
    """Read the ticket and decide whether it can be answered automatically or needs a person."""

    ticket: str = "My invoice for March was charged twice, please refund the duplicate."
    customer: str = "c-1042"
    profile: Annotated[Customer, Dep(load_customer)]
    history: Annotated[list[str], Dep(load_history)]
    articles: Annotated[list[str], Dep(search_knowledge_base)]
    priority: Annotated[int, Dep(priority_for)]

    async def __call__(self) -> AutoReply | Escalate: ...


class AutoReply(Node):
    """Write a short, friendly reply that resolves the ticket from the help-centre articles."""

    ticket: Annotated[str, Recall()]
    reply: str = Field(description="the reply to send to the customer")
    confidence: float = Field(ge=0.0, le=1.0, description="how sure the reply resolves it")

    async def __call__(self) -> Done | Escalate:
        if self.confidence < 0.3:
            # a partial node: the runtime asks the gate for `approved`
            return Escalate(reason=f"low confidence ({self.confidence:.2f})")  # type: ignore[call-arg]
        return Done(summary=self.reply, resolution="auto")


class Escalate(Node):
    """Explain why the ticket needs a person; on-call decides whether to take it."""

    reason: str = Field(description="why a person must look at this ticket")
    approved: Annotated[bool, Gate("Escalate this ticket to on-call?", default=False)]

    async def __call__(self) -> Done | None:
        if self.approved:
            return Done(summary=self.reason, resolution="escalated")
        return None


class Done(Node):
    """Close the ticket with a one-line summary."""

    summary: str = Field(description="one line for the ticket log")
    resolution: Literal["auto", "escalated"]

    async def __call__(self) -> None: ...


graph = Graph(start=Triage, name="support-triage")
