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


# The three records below are frozen dataclasses with hand-written ``__init__``s: a frozen
# dataclass's own sets each field through ``object.__setattr__``, and the runtime makes several
# of these for every LM call. The slots' descriptors store the same values at half the cost;
# everything else (eq, hash, repr, immutability, ``dataclasses.replace``) is the dataclass's.


@dataclass(frozen=True, slots=True, init=False)
class Message:
    """One chat message."""

    role: Role
    content: str

    def __init__(self, role: Role, content: str) -> None:
        _message_role(self, role)
        _message_content(self, content)


@dataclass(frozen=True, slots=True, init=False)
class Usage:
    """Tokens a call consumed, as the backend reports them."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __init__(self, input_tokens: int = 0, output_tokens: int = 0) -> None:
        _usage_input(self, input_tokens)
        _usage_output(self, output_tokens)


@dataclass(frozen=True, slots=True, init=False)
class Completion:
    """A backend's answer: the reply text (JSON for structured output) and what it cost."""

    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"
    response_model: str | None = None
    response_id: str | None = None

    def __init__(
        self,
        text: str,
        usage: Usage | None = None,
        finish_reason: str = "stop",
        response_model: str | None = None,
        response_id: str | None = None,
    ) -> None:
        _completion_text(self, text)
        _completion_usage(self, Usage() if usage is None else usage)
        _completion_finish_reason(self, finish_reason)
        _completion_response_model(self, response_model)
        _completion_response_id(self, response_id)


_message_role = Message.__dict__["role"].__set__
_message_content = Message.__dict__["content"].__set__
_usage_input = Usage.__dict__["input_tokens"].__set__
_usage_output = Usage.__dict__["output_tokens"].__set__
_completion_text = Completion.__dict__["text"].__set__
_completion_usage = Completion.__dict__["usage"].__set__
_completion_finish_reason = Completion.__dict__["finish_reason"].__set__
_completion_response_model = Completion.__dict__["response_model"].__set__
_completion_response_id = Completion.__dict__["response_id"].__set__


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
