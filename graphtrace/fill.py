"""Asking the LM: fill a node's plain fields, or decide which node comes next.

Output that does not parse or validate is sent back with the error, up to ``retries`` more
times; then :class:`~graphtrace.errors.FillError` carries every attempt's error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ValidationError, create_model

from graphtrace.errors import FillError, LMError
from graphtrace.lm.caller import LMCaller
from graphtrace.lm.prompts import END_CHOICE, decide_messages, fill_messages, retry_messages
from graphtrace.lm.protocol import Message
from graphtrace.node import Node
from graphtrace.spec import FieldSpec, NodeSpec


@dataclass(frozen=True, slots=True)
class Shape:
    """What a reply must look like: the model that validates it and its JSON Schema."""

    model: type[BaseModel]
    schema: dict[str, Any]
    schema_text: str


def _shape(model: type[BaseModel]) -> Shape:
    schema = model.model_json_schema()
    return Shape(model, schema, json.dumps(schema))


@cache
def _fill_shape(cls: type[Node], names: tuple[str, ...]) -> Shape:
    fields: dict[str, Any] = {
        name: (cls.model_fields[name].annotation, cls.model_fields[name]) for name in names
    }
    return _shape(create_model(f"{cls.__name__}Fields", **fields))


@cache
def _decision_shape(choices: tuple[str, ...]) -> Shape:
    return _shape(create_model("NextStep", next=(Literal[choices], ...)))  # type: ignore[valid-type, arg-type]


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
        previous: tuple[str, Mapping[str, Any]] | None,
        known: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Validated values for ``fields`` of ``node``."""
        shape = _fill_shape(node.cls, tuple(f.name for f in fields))
        messages = fill_messages(self.graph, node, fields, shape.schema_text, previous, known)
        reply = await self._ask(node.name, messages, shape, purpose="fill")
        return {f.name: getattr(reply, f.name) for f in fields}

    async def decide(self, node: NodeSpec, state: Mapping[str, Any]) -> type[Node] | None:
        """The node class that comes after ``node``, or None to end the run."""
        by_name = {cls.__name__: cls for cls in node.successors}
        choices = tuple(by_name) + ((END_CHOICE,) if node.may_end else ())
        shape = _decision_shape(choices)
        messages = decide_messages(self.graph, node, state, shape.schema_text)
        reply = await self._ask(node.name, messages, shape, purpose="decide")
        return by_name.get(reply.next)  # type: ignore[attr-defined]

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
                continue
            try:
                return shape.model.model_validate_json(completion.text)
            except ValidationError as exc:
                error = _describe_error(exc)
                errors.append(f"attempt {attempt}: {error}")
                messages = [*messages, *retry_messages(completion.text, error)]
        raise FillError(node, errors)
