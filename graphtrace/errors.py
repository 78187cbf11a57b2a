"""Every error graphtrace raises on purpose, in one place so callers can catch them by kind."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graphtrace.lm.protocol import Completion


class GraphtraceError(Exception):
    """Base of every error graphtrace raises on purpose."""


class GraphDefinitionError(GraphtraceError, TypeError):
    """A graph that cannot be built: the message names the class and field at fault."""


class InputError(GraphtraceError, ValueError):
    """Start inputs that are missing, unknown or invalid."""


class RunError(GraphtraceError):
    """A run that could not go on; carries the node it stopped in."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class DepError(RunError):
    """A dependency function failed while a node was being resolved."""

    def __init__(self, node: str, field: str, function: str, cause: BaseException) -> None:
        super().__init__(
            f"dep {function} for {node}.{field} failed: {type(cause).__name__}: {cause}",
            node=node,
        )
        self.field = field
        self.function = function
        self.cause = cause


class RecallError(RunError):
    """A ``Recall()`` field found no earlier value and has no default."""


class LMError(GraphtraceError):
    """A language-model backend could not answer.

    ``permanent`` errors (a bad key, an unknown model) are not worth asking again: the runtime
    stops its fill retries at once.
    """

    permanent = False


class FillError(RunError):
    """The LM's output did not validate after every retry; ``errors`` holds each attempt's."""

    def __init__(self, node: str, errors: Sequence[str]) -> None:
        last = errors[-1] if errors else "no attempt"
        super().__init__(f"could not fill {node} after {len(errors)} attempt(s): {last}", node=node)
        self.errors = list(errors)


class GateError(RunError):
    """A gate that could not be answered: timed out with no default, or no way to ask."""


class GateRefused(GraphtraceError, ValueError):
    """An answer to a gate that was not accepted; the run keeps waiting."""


class RunTimedOut(RunError, TimeoutError):
    """A run that took longer than its timeout; its open spans were closed as timed out."""


class RunCancelled(RunError):
    """A run that was cancelled (awaiting its handle raises this, not CancelledError)."""


class MaxStepsExceeded(RunError):
    """A run took more steps than its ``max_steps`` guard allows."""


# -- what an LM backend reports when it cannot answer; messages never hold an API key -----------


class LMConnectionError(LMError):
    """The model's server could not be reached, or dropped the connection, on every attempt."""


class LMTimeoutError(LMError):
    """The model's server did not answer in time on every attempt.

    Deliberately not a ``TimeoutError``: a run's own timeout must not be mistaken for it.
    """


class LMStatusError(LMError):
    """The model's server answered with an HTTP error; ``status_code`` says which."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class LMAuthenticationError(LMStatusError):
    """The server refused the API key (HTTP 401 or 403)."""

    permanent = True


class LMNotFoundError(LMStatusError):
    """The server does not know the model, or the base URL is wrong (HTTP 404)."""

    permanent = True


class LMRateLimitError(LMStatusError):
    """The server kept answering HTTP 429 until the attempts ran out."""


class LMResponseError(LMError):
    """The server answered, but not with a usable chat completion (e.g. a body that is not JSON).

    ``completion`` holds what the answer did say (tokens, ids, the partial text) when it was a
    chat completion at all, so the span still records what the call cost.
    """

    def __init__(self, message: str, *, completion: Completion | None = None) -> None:
        super().__init__(message)
        self.completion = completion


class LMRefusalError(LMResponseError):
    """The model refused to answer, or a content filter stopped it."""


class LMTruncatedError(LMResponseError):
    """The reply was cut off at the token limit (``finish_reason`` ``length``)."""
