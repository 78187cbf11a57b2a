"""The reader's errors: each message is one clear line (or a short list) for the person."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["AmbiguousRun", "ReaderError", "RunNotFound"]


class ReaderError(Exception):
    """Trace files or the trace directory cannot be read as asked; ``str()`` says why."""


class RunNotFound(ReaderError):
    """No run matches the given id, prefix or ``last``."""


class AmbiguousRun(ReaderError):
    """A prefix matches several runs; ``candidates`` holds (some of) them."""

    def __init__(self, message: str, candidates: Sequence[object]) -> None:
        super().__init__(message)
        self.candidates = list(candidates)
