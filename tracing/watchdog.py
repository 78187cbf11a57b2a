"""The stall watchdog: where a stuck run is stuck, written to the trace while it is stuck.

Two detectors share one thread, owned by :func:`tracing.configure` (started with the pipeline,
stopped by ``Tracing.shutdown()``), which wakes every ``tick`` (a quarter of the smallest
threshold, at most 0.05 s):

- **Stalls.** A ``node``, ``dep`` or ``chat`` span open longer than its kind's threshold gets a
  ``stall`` record: a zero-length span under it with the async call graph of the task that
  opened it (:mod:`tracing.callgraph`), as text and as JSON. Snapshots repeat at 2×, 4×, 8×… the
  threshold while the span stays open, so a long stall shows how it evolves. Gates wait for a
  person by design and are never stalls; nor is a node while its run waits at a gate.
- **A blocked loop.** The thread sends each watched loop a heartbeat (``call_soon_threadsafe``);
  a heartbeat not answered within ``loop`` seconds (default 1) means a sync call holds the loop.
  The thread takes the loop thread's Python stack (``sys._current_frames``) and writes, at once,
  the pending record of a ``loop.blocked`` span: its parent is the innermost open span of the
  task that holds the loop, it links to every run open on the loop. When the heartbeat comes
  back, the final ``loop.blocked`` span is written, from the unanswered heartbeat to the answer:
  its duration (and ``graphtrace.loop.blocked_s``) is how long the loop was blocked, at least.
  A loop too busy to answer within the threshold (one pass over its ready callbacks taking
  that long) is reported the same way: to the runs on it, it is the same thing.

Records are appended to the trace file by the watchdog thread itself
(:meth:`LiveSpanProcessor.write_many`), ahead of the spans the writer thread has queued, and
handed to the OTLP forwarders; pending records stay in the file, as for every span.

Stalls are looked for on the thread, not on the loop: a loop busy with thousands of runs (or
blocked) would delay the snapshot by as long as it is busy. Reading a suspended task's coroutine
chain from another thread is safe under the GIL; a task that moves meanwhile could give a mixed
snapshot, but a task that has not moved for a threshold is the one being captured. A loop is
watched from its first graphtrace span until it closes (nothing to start by hand); with no loop
running, the thread only sleeps.

Cost when nothing stalls: :class:`~tracing.open_spans.OpenSpans` does a dict insert and pop per
span; every tick the loop runs one trivial heartbeat callback and the thread looks at the head of
three dicts per loop. A failure in the watchdog is logged once and counted; it goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from opentelemetry.util.types import AttributeValue

from tracing import names
from tracing.callgraph import AwaitIndex, capture_call_graph, format_call_graph, graph_data
from tracing.live import LiveSpanProcessor
from tracing.open_spans import GATE_KIND, NODE_KIND, RUN_KIND, LoopSpans, OpenSpan, OpenSpans

__all__ = [
    "DEFAULT_LOOP_BLOCKED_AFTER",
    "DEFAULT_STALL_AFTER",
    "LOOP_KEY",
    "STALL_AFTER_ENV",
    "StallPolicy",
    "Watchdog",
]

log = logging.getLogger("graphtrace")

STALL_AFTER_ENV = "GRAPHTRACE_STALL_AFTER"
# An LM call may legitimately take a minute; a dep is I/O that should answer in seconds; a node
# spans its deps, its LM calls and its body.
DEFAULT_STALL_AFTER: Mapping[str, float] = {"node": 30.0, "dep": 10.0, "chat": 60.0}
DEFAULT_LOOP_BLOCKED_AFTER = 1.0
LOOP_KEY = "loop"

_MAX_TICK = 0.05  # detection within threshold + 250 ms needs a scan at least this often
_MIN_TICK = 0.01
_SNAPSHOTS_PER_TICK = 200  # a mass stall is spread over ticks instead of holding the loop
_MAX_LINKS = 64  # links of a loop.blocked record; graphtrace.loop.open_runs has the count
_MAX_STACK = 64  # innermost frames of a blocked loop's stack
_MAX_TEXT = 32 * 1024  # a call graph beyond this is cut (an attribute, not a core dump)

_SCOPE = InstrumentationScope(names.TRACER_NAME)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


# -- thresholds -----------------------------------------------------------------------------------


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected seconds (a number), got {value!r}")
    if not value > 0:  # also refuses NaN
        raise ValueError(f"{where}: expected seconds > 0 (math.inf turns it off), got {value!r}")
    return float(value)


def _env_seconds(text: str) -> float:
    if text.strip().lower() in ("off", "inf", "none"):
        return math.inf
    try:
        return _seconds(float(text), STALL_AFTER_ENV)
    except ValueError:
        raise ValueError(f"{STALL_AFTER_ENV}={text!r}: expected seconds > 0, or 'off'") from None


@dataclass(frozen=True)
class StallPolicy:
    """Seconds after which an open span of each kind is a stall, and a silent loop is blocked.

    Kinds missing from ``thresholds`` are not watched; ``loop_blocked_after`` None turns the
    blocked-loop detector off.
    """

    thresholds: Mapping[str, float]
    loop_blocked_after: float | None

    @classmethod
    def resolve(
        cls,
        stall_after: float | Mapping[str, float] | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> StallPolicy:
        """The policy for ``configure(stall_after=...)``.

        None: ``$GRAPHTRACE_STALL_AFTER`` (one number for node, dep and chat) or the defaults.
        A number: that for node, dep and chat. A mapping: per kind (``node``, ``dep``, ``chat``,
        and ``loop`` for the blocked-loop detector) over the defaults (or the environment's
        number). ``math.inf`` turns a kind off.
        """
        values: dict[str, float] = dict(DEFAULT_STALL_AFTER)
        values[LOOP_KEY] = DEFAULT_LOOP_BLOCKED_AFTER
        env = environ.get(STALL_AFTER_ENV)
        if env and not isinstance(stall_after, int | float):
            every = _env_seconds(env)
            values.update(dict.fromkeys(DEFAULT_STALL_AFTER, every))
        if isinstance(stall_after, Mapping):
            allowed = [*DEFAULT_STALL_AFTER, LOOP_KEY]
            for kind, seconds in stall_after.items():
                if kind not in allowed:
                    raise ValueError(
                        f"stall_after: unknown kind {kind!r}; one of {', '.join(allowed)} "
                        f"(gates wait for a person and are never stalls)"
                    )
                values[kind] = _seconds(seconds, f"stall_after[{kind!r}]")
        elif stall_after is not None:
            every = _seconds(stall_after, "stall_after")
            values.update(dict.fromkeys(DEFAULT_STALL_AFTER, every))
        loop = values.pop(LOOP_KEY)
        return cls(
            thresholds={k: v for k, v in values.items() if math.isfinite(v)},
            loop_blocked_after=loop if math.isfinite(loop) else None,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.thresholds) or self.loop_blocked_after is not None

    @property
    def tick(self) -> float:
        """How often loops are pinged and scanned: a quarter of the smallest threshold."""
        smallest = min([*self.thresholds.values(), self.loop_blocked_after or math.inf])
        return min(_MAX_TICK, max(_MIN_TICK, smallest / 4))


# -- records --------------------------------------------------------------------------------------


def _new_id(bits: int) -> int:
    value = 0
    while not value:
        value = random.getrandbits(bits)
    return value


def _epoch_ns(monotonic: float) -> int:
    """A monotonic reading as nanoseconds since the epoch (what span timestamps are)."""
    return time.time_ns() - int((time.monotonic() - monotonic) * 1e9)


def _record(
    name: str,
    context: SpanContext,
    parent: SpanContext | None,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, AttributeValue],
    resource: Resource,
    links: Sequence[Link] = (),
) -> ReadableSpan:
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=dict(attributes),
        links=tuple(links),
        kind=SpanKind.INTERNAL,
        start_time=start_ns,
        end_time=end_ns,
        instrumentation_scope=_SCOPE,
    )


def _context(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED)


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "\n…"


def _frame_json(frame: traceback.FrameSummary) -> dict[str, Any]:
    return {"function": frame.name, "file": frame.filename, "line": frame.lineno}


def _labels(spans: list[OpenSpan]) -> dict[int, str]:
    """id(task) -> the task's open spans, outermost first: ``run triage > node Triage``."""
    by_task: dict[int, list[OpenSpan]] = {}
    for entry in spans:
        if entry.task is not None and not entry.ended:
            by_task.setdefault(id(entry.task), []).append(entry)
    return {
        task: " > ".join(e.name for e in sorted(entries, key=lambda e: e.started))
        for task, entries in by_task.items()
    }


# -- the watchdog ---------------------------------------------------------------------------------


class _Heartbeat:
    """One loop's heartbeat: sent by the watchdog thread, answered on the loop.

    ``lock`` makes "found blocked" (thread) and "answered" (loop) exclusive, so a block that
    ends just as it is found is still closed exactly once.
    """

    __slots__ = ("blocked", "lock", "outstanding", "sent_at")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outstanding = False  # a heartbeat was sent and not answered yet
        self.sent_at = 0.0
        self.blocked: _Blocked | None = None


@dataclass
class _Blocked:
    """The ``loop.blocked`` span written as pending, waiting for the loop to answer."""

    context: SpanContext
    parent: SpanContext | None
    since: float  # monotonic: when the unanswered heartbeat was sent
    since_ns: int  # the same, since the epoch (the span's start)
    attributes: dict[str, AttributeValue]
    links: list[Link]
    resource: Resource


class Watchdog:
    """Stall snapshots and blocked-loop records for the loops :class:`OpenSpans` has seen.

    Example (what :func:`tracing.configure` does)::

        spans = OpenSpans()                       # added as a span processor
        watchdog = Watchdog(StallPolicy.resolve(0.5), spans, live, [], provider.resource)
        watchdog.start()
        ...
        watchdog.stop()
    """

    def __init__(
        self,
        policy: StallPolicy,
        spans: OpenSpans,
        live: LiveSpanProcessor,
        forwarders: Sequence[SpanProcessor],
        resource: Resource,
    ) -> None:
        self.policy = policy
        self.spans = spans
        self.live = live
        self.forwarders = tuple(forwarders)
        self.resource = resource
        self.failures = 0
        self.stalls = 0  # stall records written
        self.blocks = 0  # loop.blocked records written
        self.ticks = 0  # times the thread woke to look (what the watchdog costs is per tick)
        self._thresholds = dict(policy.thresholds)
        self._beats: dict[LoopSpans, _Heartbeat] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="graphtrace-watchdog", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; heartbeats still queued on a loop do nothing when they run."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.failures == 1:
            log.error("graphtrace: the stall watchdog failed; it goes on", exc_info=exc)

    def _emit(self, records: Sequence[ReadableSpan]) -> None:
        """Finished records: to the trace file at once, and to the OTLP forwarders."""
        self.live.write_many(records)
        for forwarder in self.forwarders:
            for record in records:
                forwarder.on_end(record)

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        tick = self.policy.tick
        while not self._stop.wait(tick):
            self.ticks += 1
            for state in self.spans.loops():
                try:
                    if self._check(state, time.monotonic()) and self._thresholds:
                        self._scan(state, time.time())
                except Exception as exc:  # log once, keep watching
                    self._failed(exc)

    def _check(self, state: LoopSpans, now: float) -> bool:
        """The heartbeat of one loop; False once the loop is closed (and forgotten)."""
        loop = state.loop
        beat = self._beats.get(state)
        if beat is None:
            beat = self._beats[state] = _Heartbeat()
        if loop.is_closed():
            self.spans.forget(state)
            del self._beats[state]
            return False
        if not loop.is_running():
            beat.sent_at = now  # a stopped loop is not a blocked one: count running time only
            return True
        with beat.lock:
            if beat.outstanding:
                after = self.policy.loop_blocked_after
                if beat.blocked is None and after is not None and now - beat.sent_at >= after:
                    beat.blocked = self._blocked(state, beat, now)
                return True
            beat.outstanding = True
            beat.sent_at = now
        try:
            loop.call_soon_threadsafe(self._heartbeat, beat)
        except RuntimeError:  # closed in the meantime
            beat.outstanding = False
        return True

    def _heartbeat(self, beat: _Heartbeat) -> None:
        """On the loop: it answers; if it had been found blocked, that span ends now."""
        now = time.monotonic()
        with beat.lock:
            beat.outstanding = False
            blocked, beat.blocked = beat.blocked, None
        if blocked is not None and not self._stop.is_set():
            try:
                self._recovered(blocked, now)
            except Exception as exc:  # never into the loop's exception handler, never twice
                self._failed(exc)

    # -- stalls -------------------------------------------------------------------------------

    def _scan(self, state: LoopSpans, now: float) -> None:
        due = self._due(state, now)
        for entry in due:
            span_id = entry.span_id
            if entry.ended:  # ended off the loop, so on_end could not remove it
                state.stalled.pop(span_id, None)
            else:
                state.stalled[span_id] = entry
        due = [entry for entry in due if not entry.ended]
        if due and state.open[GATE_KIND]:
            due = self._not_at_gates(due, state, now)
        if due:
            index = AwaitIndex(state.loop) if not hasattr(asyncio, "capture_call_graph") else None
            labels = _labels(state.snapshot())
            records = []
            try:
                for entry in due:
                    records.append(self._snapshot(entry, now, index, labels))
            finally:  # what was taken before a failure is written all the same
                self._emit(records)
                self.stalls += len(records)

    def _due(self, state: LoopSpans, now: float) -> list[OpenSpan]:
        """Spans due for a snapshot at ``now`` (``time.time()``); first-time ones leave their
        kind's dict for ``stalled``."""
        due: list[OpenSpan] = []
        for kind, threshold in self._thresholds.items():
            spans = state.open[kind]
            if not spans:
                continue
            horizon = int((now - threshold) * 1e9)  # start times are ns since the epoch
            found: list[tuple[int, OpenSpan]] = []
            try:
                for span_id, (span, task, start) in spans.items():  # start order = due order
                    if start > horizon or len(due) + len(found) >= _SNAPSHOTS_PER_TICK:
                        break  # the first one not due: none after it is
                    found.append((span_id, OpenSpan(kind, (span, task, start))))
            except RuntimeError:  # the loop started or ended a span of this kind: next tick
                continue
            for span_id, entry in found:
                spans.pop(span_id, None)
                due.append(entry)
        for entry in list(state.stalled.values()):
            if entry.next_due <= now and len(due) < _SNAPSHOTS_PER_TICK:
                due.append(entry)
        return due

    def _not_at_gates(self, due: list[OpenSpan], state: LoopSpans, now: float) -> list[OpenSpan]:
        """Leave out nodes whose run waits at a gate: waiting for a person is not a stall.

        Such a node is looked at again a threshold later (its count of snapshots unchanged), so
        a node that hangs after its gate is answered still gets its snapshot.
        """
        gates = state.open[GATE_KIND].values()
        waiting = {span.get_span_context().trace_id for span, _, _ in gates}
        kept = []
        for entry in due:
            if entry.kind == NODE_KIND and entry.span.get_span_context().trace_id in waiting:
                entry.next_due = now + self._thresholds[entry.kind]
            else:
                kept.append(entry)
        return kept

    def _snapshot(
        self, entry: OpenSpan, now: float, index: AwaitIndex | None, labels: dict[int, str]
    ) -> ReadableSpan:
        """The ``stall`` record of ``entry`` now; when the next one is due."""
        threshold = self._thresholds[entry.kind]
        entry.snapshots += 1
        factor = 2.0**entry.snapshots
        while entry.started + threshold * factor <= now:  # the scan was late: skip ahead
            factor *= 2
        entry.next_due = entry.started + threshold * factor

        attributes: dict[str, AttributeValue] = {
            names.STALL_KIND: entry.kind,
            names.STALLED_SPAN: entry.name,
            names.STALL_ELAPSED_S: round(now - entry.started, 3),
            names.STALL_THRESHOLD_S: threshold,
            names.STALL_SNAPSHOT: entry.snapshots,
        }
        task = entry.task
        if task is None:
            attributes[names.STALL_CALL_GRAPH] = "(the span was opened outside an asyncio task)"
        else:
            graph = capture_call_graph(task, index=index)
            if graph is not None:
                label = lambda future: labels.get(id(future))  # noqa: E731
                attributes[names.STALL_TASK] = task.get_name()
                attributes[names.STALL_CALL_GRAPH] = _cut(format_call_graph(graph, label=label))
                attributes[names.STALL_FRAMES] = _cut(json.dumps(graph_data(graph, label=label)))
            del graph  # it holds frames
        stalled = entry.span.get_span_context()
        at = time.time_ns()
        return _record(
            names.STALL_SPAN_NAME,
            _context(stalled.trace_id, _new_id(64)),
            stalled,
            at,
            at,
            attributes,
            getattr(entry.span, "resource", None) or self.resource,
        )

    # -- a blocked loop: found on the thread, closed on the loop -------------------------------

    def _blocked(self, state: LoopSpans, beat: _Heartbeat, now: float) -> _Blocked:
        frame = sys._current_frames().get(state.thread_id)
        try:
            stack = traceback.extract_stack(frame, limit=_MAX_STACK) if frame is not None else []
        finally:
            del frame
        task = asyncio.current_task(state.loop)  # safe from another thread on 3.11–3.14
        spans = [entry for entry in state.snapshot() if not entry.ended]
        holder = max(
            (entry for entry in spans if task is not None and entry.task is task),
            key=lambda entry: entry.started,
            default=None,
        )
        runs = sorted((e for e in spans if e.kind == RUN_KIND), key=lambda e: e.started)
        links = [Link(run.span.get_span_context()) for run in runs[:_MAX_LINKS]]
        parent = holder.span.get_span_context() if holder is not None else None
        context = _context(parent.trace_id if parent else _new_id(128), _new_id(64))
        attributes: dict[str, AttributeValue] = {
            names.LOOP_BLOCKED_S: round(now - beat.sent_at, 3),
            names.LOOP_THRESHOLD_S: self.policy.loop_blocked_after or 0.0,
            names.LOOP_STACK: _cut("".join(traceback.format_list(stack))),
            names.LOOP_FRAMES: _cut(json.dumps([_frame_json(f) for f in stack])),
            names.LOOP_THREAD: state.thread_id,
            names.LOOP_OPEN_RUNS: len(runs),
        }
        if task is not None:
            attributes[names.LOOP_TASK] = task.get_name()
        if holder is not None:
            attributes[names.LOOP_HELD_BY] = holder.name
        resource = getattr(holder.span, "resource", None) if holder else None
        since_ns = _epoch_ns(beat.sent_at)
        blocked = _Blocked(
            context, parent, beat.sent_at, since_ns, attributes, links, resource or self.resource
        )
        # The pending record of the loop.blocked span, as the live processor writes one for any
        # span that starts, plus the links (the stack is an attribute of the span from its start).
        pending = _record(
            names.LOOP_BLOCKED_SPAN_NAME,
            _context(context.trace_id, _new_id(64)),
            context,
            since_ns,
            since_ns,
            {**attributes, names.PENDING: True},
            blocked.resource,
            links,
        )
        self.live.write(pending)  # a pending record is for the file only, like the others
        self.blocks += 1
        return blocked

    def _recovered(self, blocked: _Blocked, answered_at: float) -> None:
        attributes = dict(blocked.attributes)
        attributes[names.LOOP_BLOCKED_S] = round(answered_at - blocked.since, 3)
        record = _record(
            names.LOOP_BLOCKED_SPAN_NAME,
            blocked.context,
            blocked.parent,
            blocked.since_ns,
            _epoch_ns(answered_at),
            attributes,
            blocked.resource,
            blocked.links,
        )
        self._emit([record])
