"""Asking the LM: fill a node's plain fields, or decide which node comes next.

Output that does not parse or validate is sent back with the error, up to ``retries`` more
times; then :class:`~graphtrace.errors.FillError` carries every attempt's error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError, create_model

from graphtrace.errors import FillError, LMError
from graphtrace.lm.caller import LMCaller
from graphtrace.lm.prompts import (
    END_CHOICE,
    decide_head,
    decide_messages,
    fill_head,
    fill_messages,
    retry_messages,
)
from graphtrace.lm.protocol import Message
from graphtrace.node import Node
from graphtrace.spec import FieldSpec, NodeSpec


@dataclass(frozen=True, slots=True)
class Shape:
    """What a reply must look like (its model and JSON Schema) and the fixed prompt around it."""

    model: type[BaseModel]
    schema: dict[str, Any]
    schema_text: str
    head: str


_fill_shapes: dict[tuple[type[Node], tuple[str, ...]], Shape] = {}
_decision_shapes: dict[type[Node], Shape] = {}


def _shape(model: type[BaseModel], head: str) -> Shape:
    schema = model.model_json_schema()
    return Shape(model, schema, json.dumps(schema), head)


def _fill_shape(node: NodeSpec, fields: Sequence[FieldSpec]) -> Shape:
    key = (node.cls, tuple(f.name for f in fields))
    shape = _fill_shapes.get(key)
    if shape is None:
        model_fields: dict[str, Any] = {f.name: (f.annotation, f.info) for f in fields}
        model = create_model(f"{node.name}Fields", **model_fields)
        shape = _fill_shapes[key] = _shape(model, fill_head(node, fields))
    return shape


def _decision_shape(node: NodeSpec) -> Shape:
    shape = _decision_shapes.get(node.cls)
    if shape is None:
        choices = tuple(c.__name__ for c in node.successors)
        choices += (END_CHOICE,) if node.may_end else ()
        model = create_model("NextStep", next=(Literal[choices], ...))  # type: ignore[call-overload, arg-type]
        shape = _decision_shapes[node.cls] = _shape(model, decide_head(node))
    return shape


def _describe_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
    return f"{type(exc).__name__}: {exc}"


class Filler:
    """The LM side of a run."""

    __slots__ = ("caller", "graph", "retries")

    def __init__(self, caller: LMCaller, graph: str, retries: int = 2) -> None:
        self.caller = caller
        self.graph = graph
        self.retries = retries

    async def fill(
        self,
        node: NodeSpec,
        fields: Sequence[FieldSpec],
        previous: tuple[str, str] | None,
        known: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Validated values for ``fields`` of ``node``; ``previous`` is (name, state JSON)."""
        shape = _fill_shape(node, fields)
        messages = fill_messages(self.graph, shape.head, shape.schema_text, previous, known)
        reply = await self._ask(node.name, messages, shape, purpose="fill")
        return {f.name: getattr(reply, f.name) for f in fields}

    async def decide(self, node: NodeSpec, state: str) -> type[Node] | None:
        """The node class that comes after ``node`` (state as JSON), or None to end the run."""
        shape = _decision_shape(node)
        messages = decide_messages(self.graph, shape.head, shape.schema_text, state)
        reply = await self._ask(node.name, messages, shape, purpose="decide")
        chosen: str = reply.next
        for cls in node.successors:
            if cls.__name__ == chosen:
                return cls
        return None

    async def _ask(
        self,
        node: str,
        messages: list[Message],
        shape: Shape,
        purpose: str,
    ) -> Any:
        errors: list[str] = []
        for attempt in range(1, self.retries + 2):
            try:
                completion = await self.caller.complete(
                    messages, shape.schema, purpose=purpose, attempt=attempt
                )
            except LMError as exc:
                errors.append(f"attempt {attempt}: {exc}")
                if exc.permanent:
                    break
                continue
            try:
                return shape.model.model_validate_json(completion.text)
            except ValidationError as exc:
                error = _describe_error(exc)
                errors.append(f"attempt {attempt}: {error}")
                messages = [*messages, *retry_messages(completion.text, error)]
        raise FillError(node, errors)
