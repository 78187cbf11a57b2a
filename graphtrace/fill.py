"""Asking the LM: fill a node's plain fields, or decide which node comes next.

Output that does not parse or validate is sent back with the error, up to ``retries`` more
times; then :class:`~graphtrace.errors.FillError` carries every attempt's error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ValidationError, create_model

from graphtrace.errors import FillError, LMError
from graphtrace.lm.caller import LMCaller
from graphtrace.lm.prompts import END_CHOICE, decide_messages, fill_messages, retry_messages
from graphtrace.lm.protocol import Message
from graphtrace.node import Node
from graphtrace.spec import FieldSpec, NodeSpec


@cache
def _fill_model(cls: type[Node], names: tuple[str, ...]) -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (cls.model_fields[name].annotation, cls.model_fields[name]) for name in names
    }
    return create_model(f"{cls.__name__}Fields", **fields)


@cache
def _decision_model(choices: tuple[str, ...]) -> type[BaseModel]:
    return create_model("NextStep", next=(Literal[choices], ...))  # type: ignore[valid-type]


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
        model = _fill_model(node.cls, tuple(f.name for f in fields))
        schema = model.model_json_schema()
        messages = fill_messages(self.graph, node, fields, schema, previous, known)
        reply = await self._ask(node.name, messages, schema, model, purpose="fill")
        return {f.name: getattr(reply, f.name) for f in fields}

    async def decide(self, node: NodeSpec, state: Mapping[str, Any]) -> type[Node] | None:
        """The node class that comes after ``node``, or None to end the run."""
        by_name = {cls.__name__: cls for cls in node.successors}
        choices = tuple(by_name) + ((END_CHOICE,) if node.may_end else ())
        model = _decision_model(choices)
        schema = model.model_json_schema()
        messages = decide_messages(self.graph, node, state, schema)
        reply = await self._ask(node.name, messages, schema, model, purpose="decide")
        return by_name.get(reply.next)  # type: ignore[attr-defined]

    async def _ask(
        self,
        node: str,
        messages: list[Message],
        schema: Mapping[str, Any],
        model: type[BaseModel],
        purpose: str,
    ) -> Any:
        errors: list[str] = []
        for attempt in range(1, self.retries + 2):
            try:
                completion = await self.caller.complete(
                    messages, schema, purpose=purpose, attempt=attempt
                )
            except LMError as exc:
                errors.append(f"attempt {attempt}: {exc}")
                continue
            try:
                return model.model_validate_json(completion.text)
            except ValidationError as exc:
                error = _describe_error(exc)
                errors.append(f"attempt {attempt}: {error}")
                messages = [*messages, *retry_messages(completion.text, error)]
        raise FillError(node, errors)
