"""Language models: the protocol, the offline ``FakeLM``, the OpenAI-compatible ``OpenAILM``, and
the traced call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphtrace.lm.fake import FakeLM
from graphtrace.lm.protocol import LM, Completion, Message, Usage

if TYPE_CHECKING:
    from graphtrace.lm.openai import OpenAILM

__all__ = ["LM", "Completion", "FakeLM", "Message", "OpenAILM", "Usage"]


def __getattr__(name: str) -> Any:
    # OpenAILM loads httpx; every CLI command imports this package, few of them call a model
    if name == "OpenAILM":
        from graphtrace.lm.openai import OpenAILM

        return OpenAILM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
