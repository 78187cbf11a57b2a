"""LM specs: the short strings ``graphtrace run --lm`` takes, turned into backends."""

from __future__ import annotations

from graphtrace.lm.fake import FakeLM
from graphtrace.lm.protocol import LM

__all__ = ["SPEC_FORMS", "lm_from_spec"]

SPEC_FORMS = "'fake', 'fake:SEED' or 'openai:MODEL'"


def lm_from_spec(spec: str, *, seed: int = 0) -> LM:
    """The backend ``spec`` names.

    - ``fake``: :class:`FakeLM` with ``seed``;
    - ``fake:SEED``: :class:`FakeLM` with that integer seed (it replaces ``seed``);
    - ``openai:MODEL``: :class:`OpenAILM` for ``MODEL`` (everything after the first colon, so
      Ollama's ``openai:llama3.1:8b`` works), configured by ``OPENAI_BASE_URL`` and
      ``OPENAI_API_KEY``.

    Anything else raises ``ValueError`` naming the accepted forms.
    """
    if not isinstance(spec, str):
        raise TypeError(f"an LM spec must be a string such as {SPEC_FORMS}, got {spec!r}")
    kind, colon, arg = spec.strip().partition(":")
    kind = kind.strip().lower()
    arg = arg.strip()
    if kind == "fake" and not colon:
        return FakeLM(seed=seed)
    if kind == "fake" and arg:
        try:
            return FakeLM(seed=int(arg))
        except ValueError:
            raise ValueError(
                f"bad LM spec {spec!r}: the seed in 'fake:SEED' must be an integer"
            ) from None
    if kind == "openai" and arg:
        from graphtrace.lm.openai import OpenAILM  # httpx only when a real model is asked for

        return OpenAILM(arg)
    raise ValueError(f"unknown LM spec {spec!r}: use {SPEC_FORMS}")
