"""The language-model protocol every backend implements.

A backend is any object with a ``model`` name, a ``provider`` name and one async method,
``complete``, that takes chat messages and the JSON Schema the reply must follow and returns a
:class:`Completion`. The runtime builds the prompt, opens the ``chat {model}`` span, parses and
validates the reply; a backend only talks to its model.

Example::

    class EchoLM:
        model = "echo"
        provider = "example"

        async def complete(self, messages, schema):
            return Completion(text="{}", usage=Usage(input_tokens=1, output_tokens=1))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call consumed, as the backend reports them."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Completion:
    """A backend's answer: the reply text (JSON for structured output) and what it cost."""

    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"
    response_model: str | None = None
    response_id: str | None = None


@runtime_checkable
class LM(Protocol):
    """What the runtime needs from a language model."""

    model: str
    provider: str

    async def complete(self, messages: Sequence[Message], schema: Mapping[str, Any]) -> Completion:
        """Answer ``messages`` with text that should validate against ``schema``."""
        ...


def role_and_content(message: Message | Mapping[str, Any]) -> tuple[str, str]:
    """A message's role and content; plain ``{"role": ..., "content": ...}`` dicts work too."""
    if isinstance(message, Mapping):
        role, content = message.get("role"), message.get("content")
    else:
        role, content = getattr(message, "role", None), getattr(message, "content", None)
    if not isinstance(role, str) or not isinstance(content, str):
        raise TypeError(f"a message needs a str 'role' and 'content', got {message!r:.200}")
    return role, content
