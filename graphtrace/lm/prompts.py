"""Prompts built from the graph itself: class names, docstrings and field descriptions.

The parts that depend only on the graph (instructions, field list, schema) are built once per
node and field set; a call adds only the run's context.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from pydantic_core import to_json

from graphtrace.lm.protocol import Message
from graphtrace.spec import FieldSpec, NodeSpec, describe

END_CHOICE = "END"
_CONTEXT_LIMIT = 4000

_SYSTEM = (
    "You are one step of the agent graph {graph!r}. Reply with one JSON object that matches "
    "the JSON Schema given, and nothing else."
)


@cache
def system_message(graph: str) -> Message:
    return Message("system", _SYSTEM.format(graph=graph))


def context_json(value: Any) -> str:
    """Values as compact JSON for a prompt (anything JSON cannot hold becomes its repr)."""
    try:
        text = to_json(value, fallback=repr).decode()
    except Exception:  # a value pydantic cannot walk at all: the stdlib with repr
        text = json.dumps(value, default=repr, ensure_ascii=False)
    return text if len(text) <= _CONTEXT_LIMIT else text[:_CONTEXT_LIMIT] + "…"


def fill_head(node: NodeSpec, fields: Sequence[FieldSpec]) -> str:
    """The fixed part of a fill prompt: what to fill and what each field means."""
    lines = [f"## Step: {node.name}"]
    if node.doc:
        lines.append(node.doc)
    lines.append("\n## Fields to fill")
    for f in fields:
        about = f" — {f.info.description}" if f.info.description else ""
        lines.append(f"- {f.name} ({describe(f.annotation)}){about}")
    return "\n".join(lines)


def fill_messages(
    graph: str,
    head: str,
    schema_text: str,
    previous: tuple[str, str] | None,
    known: Mapping[str, Any],
) -> list[Message]:
    """Ask for the fields ``head`` names; ``previous`` is (node name, state JSON)."""
    context = []
    if previous is not None:
        context.append(f"Previous step {previous[0]}: {previous[1][:_CONTEXT_LIMIT]}")
    if known:
        context.append(f"Known so far: {context_json(known)}")
    user = (
        f"{head}\n\n## Context\n{chr(10).join(context) or '(none)'}\n\n"
        f"## JSON Schema\n{schema_text}"
    )
    return [system_message(graph), Message("user", user)]


def decide_head(node: NodeSpec) -> str:
    """The fixed part of a decision prompt: the choices and what each one is for."""
    lines = [f"## Step: {node.name}"]
    if node.doc:
        lines.append(node.doc)
    lines.append("\n## Choose what comes next")
    for succ in node.successors:
        doc = (succ.__doc__ or "").strip().splitlines()
        lines.append(f"- {succ.__name__}: {doc[0] if doc else ''}".rstrip(": "))
    if node.may_end:
        lines.append(f"- {END_CHOICE}: finish the run here")
    return "\n".join(lines)


def decide_messages(graph: str, head: str, schema_text: str, state: str) -> list[Message]:
    """Ask which node comes next, given the deciding node's state (JSON)."""
    user = f"{head}\n\n## State\n{state[:_CONTEXT_LIMIT]}\n\n## JSON Schema\n{schema_text}"
    return [system_message(graph), Message("user", user)]


def retry_messages(reply: str, error: str) -> list[Message]:
    """What to append after a reply that did not validate, so the next attempt can fix it."""
    return [
        Message("assistant", reply),
        Message("user", f"That reply was not valid: {error}\nReply again with corrected JSON."),
    ]
