"""Every error graphtrace raises on purpose, in one place so callers can catch them by kind."""

from __future__ import annotations

from collections.abc import Sequence


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
    """A language-model backend could not answer."""


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


class MaxStepsExceeded(RunError):
    """A run took more steps than its ``max_steps`` guard allows."""
