"""Which graphtrace spans are open right now, on which event loop, owned by which task.

The stall watchdog needs, for every open ``node``, ``dep`` and ``chat`` span, when it started and
the task that opened it (the task whose call graph explains a stall), and for a blocked loop the
runs that were open on it. :class:`OpenSpans` is a span processor that keeps exactly that, with
O(1) work per span: one dict insert at start and one pop at end, per loop and per span kind.

Each kind's dict is in start order, and a kind has one threshold, so the spans due for a stall
snapshot are always at the head of the dict: a scan stops at the first span that is not due,
however many are open.

Spans start and end on the loop's thread; the watchdog thread reads the dicts (a changed size
mid-iteration only makes it look again at its next tick) and moves the spans it takes snapshots
of to ``stalled``. An open span is a plain tuple ``(span, task, start)`` until the watchdog takes
an interest in it: the tuple is the cheapest record there is, and ``start`` is the span's own
start time, so nothing is measured twice.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from asyncio import AbstractEventLoop
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext

from tracing import names

__all__ = [
    "GATE_KIND",
    "KINDS",
    "NODE_KIND",
    "RUN_KIND",
    "LoopSpans",
    "OpenSpan",
    "OpenSpans",
    "kind_of",
]

# The first word of each graphtrace span name (names.py builds them): the kinds tracked here.
KINDS: tuple[str, ...] = tuple(
    name.partition(" ")[0]
    for name in (
        names.run_span("g"),
        names.node_span("n"),
        names.dep_span("d"),
        names.chat_span("m"),
        names.gate_span("n", "f"),
    )
)
RUN_KIND, NODE_KIND, GATE_KIND = KINDS[0], KINDS[1], KINDS[4]

_get_running_loop = asyncio._get_running_loop  # the C function, None outside a loop
if sys.version_info >= (3, 12):
    _current_task = asyncio.current_task  # C since 3.12
else:  # 3.11's current_task is Python around this dict (loop -> running task): skip the wrapper
    _current_task = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]

# span name -> kind ("" for a span not tracked): a graph has a handful of distinct names, and a
# dict hit is cheaper than splitting the name on every span
_KIND_OF: dict[str, str] = {}
_KIND_CACHE_MAX = 4096

Entry = tuple[Span, "asyncio.Task[Any] | None", int]
"""An open span as tracked: the span, the task that opened it, its start (ns since the epoch)."""


def kind_of(span_name: str) -> str:
    """``node`` for ``node Triage``; ``""`` for a span graphtrace does not track."""
    kind = _KIND_OF.get(span_name)
    if kind is None:
        first = span_name.partition(" ")[0]
        kind = first if first in KINDS else ""
        if len(_KIND_OF) >= _KIND_CACHE_MAX:  # names made up per span: do not grow forever
            _KIND_OF.clear()
        _KIND_OF[span_name] = kind
    return kind


class OpenSpan:
    """An open span the watchdog looks at: its kind, the task that opened it, when it started.

    ``next_due`` and ``snapshots`` belong to the watchdog: when the next stall snapshot is due
    and how many were taken.
    """

    __slots__ = ("kind", "next_due", "snapshots", "span", "started", "task")

    def __init__(self, kind: str, entry: Entry) -> None:
        self.kind = kind
        self.span, self.task, start_ns = entry
        self.started = start_ns / 1e9  # seconds since the epoch, as time.time()
        self.next_due = 0.0
        self.snapshots = 0

    @property
    def span_id(self) -> int:
        return self.span.get_span_context().span_id

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def ended(self) -> bool:
        return not self.span.is_recording()


class LoopSpans:
    """The open spans of one event loop: a start-ordered dict per kind, plus stalled ones.

    ``stalled`` holds spans the watchdog has taken a snapshot of (moved out of their kind's dict
    so the head of that dict moves on); a span that ends is popped from either.
    """

    __slots__ = ("loop", "open", "stalled", "thread_id")

    def __init__(self, loop: AbstractEventLoop, thread_id: int) -> None:
        self.loop = loop
        self.thread_id = thread_id
        self.open: dict[str, dict[int, Entry]] = {kind: {} for kind in KINDS}
        self.stalled: dict[int, OpenSpan] = {}

    def snapshot(self) -> list[OpenSpan]:
        """Every open span (safe from another thread: each dict is copied in one C call)."""
        for _ in range(5):
            try:
                spans = [
                    OpenSpan(kind, entry)
                    for kind, entries in self.open.items()
                    for entry in list(entries.values())
                ]
                return spans + list(self.stalled.values())
            except RuntimeError:  # a dict changed size while copied (free-threaded builds)
                continue
        return []


class OpenSpans(SpanProcessor):
    """Tracks graphtrace's open spans per event loop, with the task that opened each.

    Spans started outside a running loop are not tracked (no task to explain them). A loop is
    tracked from its first span until :meth:`forget` (the watchdog forgets closed loops).
    """

    def __init__(self) -> None:
        self._loops: dict[AbstractEventLoop, LoopSpans] = {}
        self._lock = threading.Lock()
        # the loop of the last span: almost every span starts on the same loop as the previous
        self._last_loop: AbstractEventLoop | None = None
        self._last: LoopSpans | None = None
        # the one loop, while there is exactly one: a span's end then needs no loop lookup
        self._only: LoopSpans | None = None

    def loops(self) -> list[LoopSpans]:
        with self._lock:
            return list(self._loops.values())

    def forget(self, state: LoopSpans) -> None:
        with self._lock:
            if self._loops.get(state.loop) is state:
                del self._loops[state.loop]
            if self._last is state:
                self._last_loop = self._last = None
            self._only = next(iter(self._loops.values())) if len(self._loops) == 1 else None

    def _state(self, loop: AbstractEventLoop) -> LoopSpans:
        with self._lock:
            state = self._loops.get(loop)
            if state is None:
                state = self._loops[loop] = LoopSpans(loop, threading.get_ident())
            self._last_loop, self._last = loop, state
            self._only = state if len(self._loops) == 1 else None
        return state

    @classmethod
    def create(cls) -> OpenSpans:
        """The processor for this SDK: reading span fields directly where they are there."""
        return cls() if SPAN_FIELDS else PortableOpenSpans()

    # The two methods below run for every span: they read ReadableSpan's fields (_name,
    # _context, _start_time) rather than its properties, a third of their cost on 3.11, as the
    # encoder does; PortableOpenSpans is the same through the public properties.

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        name = span._name
        kind = _KIND_OF.get(name)
        if kind is None:
            kind = kind_of(name)
        if not kind:
            return
        loop = _get_running_loop()
        if loop is None:
            return
        state = self._last
        if loop is not self._last_loop or state is None:
            state = self._state(loop)
        context: Any = span._context  # a tuple: [1] is the span id
        start: int = span._start_time  # type: ignore[assignment]  # set before on_start
        state.open[kind][context[1]] = (span, _current_task(loop), start)

    def on_end(self, span: ReadableSpan) -> None:
        kind = _KIND_OF.get(span._name)
        if not kind:
            return
        state = self._only
        if state is not None:  # the usual case, inline: a call is a tenth of this method's cost
            span_id = span._context[1]  # type: ignore[index]
            if state.open[kind].pop(span_id, None) is None and state.stalled:
                state.stalled.pop(span_id, None)
        else:
            self._ended(kind, span._context[1])  # type: ignore[index]

    def _ended(self, kind: str, span_id: int) -> None:
        state = self._only
        if state is None:
            loop = _get_running_loop()
            state = self._loops.get(loop) if loop is not None else None  # type: ignore[arg-type]
            if state is None:
                return  # ended off its loop: the watchdog drops it when it finds it ended
        if state.open[kind].pop(span_id, None) is None and state.stalled:
            state.stalled.pop(span_id, None)

    def shutdown(self) -> None:
        with self._lock:
            self._loops.clear()
            self._last_loop = self._last = self._only = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class PortableOpenSpans(OpenSpans):
    """:class:`OpenSpans` through ReadableSpan's public properties, for an SDK whose spans do
    not keep the fields the fast path reads."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        kind = kind_of(span.name)
        loop = _get_running_loop()
        if kind and loop is not None and span.context is not None:
            state = self._state(loop)
            start = span.start_time or 0
            state.open[kind][span.context.span_id] = (span, _current_task(loop), start)

    def on_end(self, span: ReadableSpan) -> None:
        kind = kind_of(span.name)
        if kind and span.context is not None:
            self._ended(kind, span.context.span_id)


def _span_fields_present() -> bool:
    """Whether this SDK's spans keep the fields OpenSpans reads (checked once, at import)."""
    try:
        probe = ReadableSpan("probe", context=SpanContext(1, 2, is_remote=False), start_time=3)
        fields: tuple[Any, ...] = (probe._name, probe._context, probe._start_time)
        return fields == ("probe", probe.context, 3) and fields[1][1] == 2
    except Exception:
        return False


SPAN_FIELDS = _span_fields_present()
