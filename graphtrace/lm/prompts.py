"""Prompts built from the graph itself: class names, docstrings and field descriptions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from graphtrace.lm.protocol import Message
from graphtrace.spec import FieldSpec, NodeSpec, describe

END_CHOICE = "END"

_SYSTEM = (
    "You are one step of the agent graph {graph!r}. Reply with one JSON object that matches "
    "the JSON Schema given, and nothing else."
)


def _context(previous: tuple[str, Mapping[str, Any]] | None, known: Mapping[str, Any]) -> str:
    parts = []
    if previous is not None:
        parts.append(f"Previous step {previous[0]}: {_json(previous[1])}")
    if known:
        parts.append(f"Known so far: {_json(known)}")
    return "\n".join(parts) or "(none)"


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)[:4000]


def fill_messages(
    graph: str,
    node: NodeSpec,
    fields: Sequence[FieldSpec],
    schema_text: str,
    previous: tuple[str, Mapping[str, Any]] | None,
    known: Mapping[str, Any],
) -> list[Message]:
    """Ask for ``fields`` of ``node``, with the earlier state as context."""
    lines = [f"## Step: {node.name}"]
    if node.doc:
        lines.append(node.doc)
    lines.append("\n## Fields to fill")
    for f in fields:
        about = f" — {f.info.description}" if f.info.description else ""
        lines.append(f"- {f.name} ({describe(f.annotation)}){about}")
    lines += [
        "\n## Context",
        _context(previous, known),
        "\n## JSON Schema",
        schema_text,
    ]
    return [
        Message("system", _SYSTEM.format(graph=graph)),
        Message("user", "\n".join(lines)),
    ]


def decide_messages(
    graph: str,
    node: NodeSpec,
    state: Mapping[str, Any],
    schema_text: str,
) -> list[Message]:
    """Ask which node comes after ``node`` (or whether the run ends)."""
    lines = [f"## Step: {node.name}"]
    if node.doc:
        lines.append(node.doc)
    lines += ["\n## State", _json(state), "\n## Choose what comes next"]
    for succ in node.successors:
        doc = (succ.__doc__ or "").strip().splitlines()
        lines.append(f"- {succ.__name__}: {doc[0] if doc else ''}".rstrip(": "))
    if node.may_end:
        lines.append(f"- {END_CHOICE}: finish the run here")
    lines += ["\n## JSON Schema", schema_text]
    return [
        Message("system", _SYSTEM.format(graph=graph)),
        Message("user", "\n".join(lines)),
    ]


def retry_messages(reply: str, error: str) -> list[Message]:
    """What to append after a reply that did not validate, so the next attempt can fix it."""
    return [
        Message("assistant", reply),
        Message("user", f"That reply was not valid: {error}\nReply again with corrected JSON."),
    ]
