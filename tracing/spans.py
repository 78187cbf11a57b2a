"""Opening the runtime's spans: one helper so every span records errors the same way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from tracing.names import TRACER_NAME
from tracing.provider import LeanTracer

try:  # the key the API keeps the current span under; the public path when it is not there
    from opentelemetry.trace.propagation import _SPAN_KEY
except ImportError:  # pragma: no cover - a future API that renames it
    _SPAN_KEY = None  # type: ignore[assignment]

log = logging.getLogger("graphtrace")


def _runtime_context_var() -> ContextVar[Context] | None:
    """The ContextVar behind the API's current context, when the runtime context is the stock
    contextvars one: setting it directly skips two layers of calls per span (None otherwise,
    and the public attach/detach are used)."""
    runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime).__name__ == "ContextVarsRuntimeContext" and isinstance(var, ContextVar):
        return var
    return None


_CURRENT_CONTEXT = _runtime_context_var() if _SPAN_KEY is not None else None

_tracer: trace.Tracer | None = None
_suspended = False
_UNKNOWN = object()


def tracer() -> trace.Tracer | None:
    """graphtrace's tracer from the global TracerProvider; None while none is installed.

    With no provider (nobody called ``configure()`` and the application installed none), the
    runtime opens no spans at all: not even the API's no-op ones, whose context switching would
    cost more than the rest of a step.
    """
    global _tracer
    if _suspended:
        return None
    if _tracer is None:
        # get_tracer_provider() reads the environment on every call while none is set; the
        # API module's global answers "is one set?" for free (public call as the fallback)
        if getattr(trace, "_TRACER_PROVIDER", _UNKNOWN) is None:
            return None
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider):
            return None
        _tracer = provider.get_tracer(TRACER_NAME)
    return _tracer


def tracing_on() -> bool:
    """Whether :class:`open_span` records anything now: callers skip building attributes
    nobody would read."""
    return tracer() is not None


@contextmanager
def suspended() -> Iterator[None]:
    """Open no graphtrace spans inside the block (process-wide): what the runtime costs untraced.

    For benchmarks that compare traced and untraced runs in one process.
    """
    global _suspended
    before, _suspended = _suspended, True
    try:
        yield
    finally:
        _suspended = before


class EndReason:
    """Why a run's open spans end when its task is cancelled: ``cancelled`` or ``timed out``.

    Set once per run (a context variable, so the run's child tasks see it too); the run's
    timeout changes the text before it cancels the task, so every span it closes says why.
    """

    __slots__ = ("text",)

    def __init__(self) -> None:
        self.text = "cancelled"


_end_reason: ContextVar[EndReason | None] = ContextVar("graphtrace_end_reason", default=None)


def enter_run_scope() -> tuple[EndReason, Token[EndReason | None]]:
    """A fresh :class:`EndReason` for the run starting in this context; reset with the token."""
    reason = EndReason()
    return reason, _end_reason.set(reason)


def leave_run_scope(token: Token[EndReason | None]) -> None:
    _end_reason.reset(token)


def close_as(span: Span, exc: BaseException) -> None:
    """Record why ``span`` ends early: status ERROR, and an exception event for real errors."""
    if isinstance(exc, asyncio.CancelledError):
        reason = _end_reason.get()
        span.set_status(Status(StatusCode.ERROR, reason.text if reason else "cancelled"))
    elif isinstance(exc, TimeoutError):
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"timed out: {exc}" if str(exc) else "timed out"))
    else:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


class open_span:  # lower case: used like a function, ``with open_span(name) as span``
    """Open ``name`` as the current span; an exception leaving the block marks it failed.

    An error is recorded once, on the innermost span it leaves; outer spans get the ERROR status
    without a second copy of the event. With no tracer provider installed the block gets the
    API's invalid span and nothing is recorded.

    A class rather than a ``@contextmanager`` generator: the runtime opens two or more spans per
    step, and a generator-based context manager costs as much again as the span itself.

    Example::

        with open_span("node Triage", {"graphtrace.node.step": 1}) as span:
            span.set_attribute("graphtrace.node.state", "{}")
    """

    __slots__ = ("_attributes", "_name", "_span", "_token")

    def __init__(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        self._name = name
        self._attributes = attributes
        self._span: Span | None = None
        self._token: Token[Context] | None = None

    def __enter__(self) -> Span:
        active = _tracer if _tracer is not None and not _suspended else tracer()
        if active is None:
            return trace.INVALID_SPAN
        if _CURRENT_CONTEXT is not None and type(active) is LeanTracer:
            # graphtrace's own provider: the parent from the current context, one context copy
            current = _CURRENT_CONTEXT.get()
            parent: Any = current.get(_SPAN_KEY)  # a Span, or None at the root
            span: Span = active.start_child(self._name, self._attributes, parent)
            self._token = _CURRENT_CONTEXT.set(Context({**current, _SPAN_KEY: span}))
        else:
            span = active.start_span(self._name, attributes=self._attributes)
            self._token = context_api.attach(trace.set_span_in_context(span))
        self._span = span
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self._span
        if span is None:
            return
        try:
            if exc is not None:
                _record_error(span, exc)
        finally:
            _detach(self._token)  # type: ignore[arg-type]  # set with the span
            span.end()


def _detach(token: Token[Context]) -> None:
    """``context_api.detach``: a token from another context is logged, never raised."""
    if _CURRENT_CONTEXT is None:
        context_api.detach(token)
        return
    try:
        _CURRENT_CONTEXT.reset(token)
    except (ValueError, RuntimeError):  # made in another context, or used already
        log.exception("Failed to detach context")


def _record_error(span: Span, exc: BaseException) -> None:
    if getattr(exc, "_graphtrace_recorded", False):
        span.set_status(Status(StatusCode.ERROR, _describe(exc)))
        return
    close_as(span, exc)
    try:
        exc._graphtrace_recorded = True  # type: ignore[attr-defined]
    except AttributeError:  # exceptions with __slots__
        pass


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        reason = _end_reason.get()
        return reason.text if reason else "cancelled"
    return f"{type(exc).__name__}: {exc}"
