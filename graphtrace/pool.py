"""``RunPool``: many runs of one or more graphs on one event loop, isolated and capped.

Runs start in the order they were submitted, at most ``max_runs`` at a time; LM calls across all
runs share ``max_lm_calls`` slots (graph work is cheap, the model is the bottleneck). A run that
fails records ``failed`` and no other run notices. Leaving the ``async with`` block waits for
every run; cancelling the block (Ctrl-C) cancels them all, closing their spans as cancelled.

Example::

    async with RunPool(lm=FakeLM(), max_runs=100, max_lm_calls=8, run_timeout=60) as pool:
        for ticket in tickets:
            pool.submit(graph, ticket=ticket, customer="c1")
        async for handle in pool.as_completed():
            print(handle.run_id, handle.state)
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Generator
from types import TracebackType
from typing import Any

from graphtrace import gc_threshold
from graphtrace.control.server import ControlServer
from graphtrace.errors import RunCancelled
from graphtrace.gates import PendingGate
from graphtrace.graph import Graph
from graphtrace.lm.slots import CallSlots
from graphtrace.node import Node
from graphtrace.run import GateCallback, Run, RunState
from tracing.setup import current as current_tracing

_ENDED_KEPT = 4096  # final states remembered for the control socket's "run finished" refusal


class RunHandle:
    """A submitted run: its id and state now, its result once it ends.

    ``await handle`` returns the last node, or raises the run's error (``RunTimedOut`` for a
    timeout, ``RunCancelled`` for a cancel).
    """

    __slots__ = ("_done", "_pool", "_task", "run")

    def __init__(self, run: Run, pool: RunPool) -> None:
        self.run = run
        self._pool = pool
        self._task: asyncio.Task[None] | None = None
        self._done: asyncio.Future[Node] = asyncio.get_running_loop().create_future()

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def state(self) -> RunState:
        return self.run.state

    @property
    def waiting_gates(self) -> list[PendingGate]:
        return self.run.waiting_gates

    def done(self) -> bool:
        return self._done.done()

    def result(self) -> Node:
        """The last node of a finished run; raises its error, or InvalidStateError if running."""
        self._pool._taken(self)
        return self._done.result()

    def cancel(self) -> bool:
        """Cancel the run (queued or running); False if it had already finished."""
        if self._done.done():
            return False
        if self._task is None:  # still queued: it will never start
            self.run.state = RunState.CANCELLED
            self._settle_cancelled()
            self._pool._finished(self)
        else:
            self._task.cancel()
        return True

    def __await__(self) -> Generator[Any, None, Node]:
        result = yield from asyncio.shield(self._done).__await__()
        self._pool._taken(self)
        return result

    def _settle(self, result: Node | None, error: BaseException | None) -> None:
        if self._done.done():
            return
        if error is None:
            assert result is not None
            self._done.set_result(result)
        else:
            self._done.set_exception(error)
            self._done.exception()  # retrieved: awaiting the handle is optional

    def _settle_cancelled(self) -> None:
        self._settle(None, RunCancelled(f"run {self.run_id} was cancelled", node=self.run.node))

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id} {self.state.value}>"


class RunPool:
    """Runs graphs concurrently with isolation, caps, timeouts and bounded memory.

    Args:
        lm: the LM every run uses unless ``submit`` is given another.
        max_runs: runs in flight at once; more submissions wait in order.
        max_lm_calls: LM calls in flight at once across all runs (None: no cap).
        run_timeout: seconds a run may take before it is ``timed_out`` (None: no limit).
        history: finished handles kept for :meth:`as_completed` when nobody is iterating;
            older ones are dropped (their results are in the trace), so memory stays flat.
        auto_answer, on_gate: how gates are answered (see :meth:`Graph.new_run`).
        control: while any run waits at a gate, listen on ``TRACE_DIR/control/`` for answers
            from other processes (``graphtrace answer``, ``tail``); needs ``configure()``.
        tune_gc: while the pool is open, use the young-generation GC threshold of CPython 3.13
            (2,000) on 3.11 and 3.12, where it is 700 (see :mod:`graphtrace.gc_threshold`);
            False leaves the collector alone.
    """

    def __init__(
        self,
        *,
        lm: Any,
        max_runs: int = 100,
        max_lm_calls: int | None = None,
        run_timeout: float | None = None,
        history: int = 1000,
        max_steps: int | None = None,
        auto_answer: bool = False,
        on_gate: GateCallback | None = None,
        control: bool = True,
        tune_gc: bool = True,
    ) -> None:
        if max_runs < 1:
            raise ValueError(f"max_runs must be at least 1, got {max_runs}")
        if max_lm_calls is not None and max_lm_calls < 1:
            raise ValueError(f"max_lm_calls must be at least 1, got {max_lm_calls}")
        if run_timeout is not None and not run_timeout > 0:
            raise ValueError(f"run_timeout must be positive seconds, got {run_timeout!r}")
        self.lm = lm
        self.max_runs = max_runs
        self.max_lm_calls = max_lm_calls
        self.run_timeout = run_timeout
        self.max_steps = max_steps
        self.auto_answer = auto_answer
        self.on_gate = on_gate
        self.counts: dict[RunState, int] = dict.fromkeys(RunState, 0)
        """Finished runs by final state (pending/running/waiting are read from ``active``)."""
        self._group: asyncio.TaskGroup | None = None
        self._lm_limiter: CallSlots | None = None
        self._queue: deque[RunHandle] = deque()
        self._active: dict[str, RunHandle] = {}
        self._finished_handles: deque[RunHandle] = deque(maxlen=history)
        self._finished_event = asyncio.Event()
        self._dequeued = asyncio.Event()
        self._closing = False
        self._control_wanted = control
        self._tune_gc = tune_gc
        self._gc_held = False
        self.control: ControlServer | None = None
        """The control server (made on entering when tracing is configured; it listens only
        while a gate waits)."""
        self._ended: OrderedDict[str, RunState] = OrderedDict()
        self.dropped = 0
        """Finished handles that fell out of the bounded history before anyone took them."""

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> RunPool:
        if self._group is not None:
            raise RuntimeError("a RunPool can be entered once")
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        if self.max_lm_calls is not None:
            self._lm_limiter = CallSlots(self.max_lm_calls)
        tracing = current_tracing()
        if self._control_wanted and tracing is not None:
            # its serving task belongs to the pool's group, so it cannot outlive the pool
            self.control = ControlServer(tracing.trace_dir, self._lookup, self._group.create_task)
        if self._tune_gc:  # last: from here on, __aexit__ runs and gives it back
            gc_threshold.hold()
            self._gc_held = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._group is not None
        if exc_type is not None:
            # leaving on an error or a cancel: nothing queued may start, running runs end
            self.cancel_all()
        try:
            return await self._group.__aexit__(exc_type, exc, tb)  # type: ignore[func-returns-value]
        except BaseExceptionGroup as group:
            # runs never raise into the group, so this is the body's own error: let it leave
            # as itself rather than wrapped
            if exc is not None and list(group.exceptions) == [exc]:
                return None
            raise
        finally:
            self._closing = True
            self._cancel_queued()
            if self.control is not None:
                self.control.close()
            if self._gc_held:
                self._gc_held = False
                gc_threshold.release()

    # -- submitting -------------------------------------------------------------------------

    def submit(
        self, graph: Graph, *, lm: Any = None, run_id: str | None = None, **inputs: Any
    ) -> RunHandle:
        """Queue a run of ``graph`` with start ``inputs``; returns its handle at once.

        Inputs are checked now: bad ones raise :class:`InputError` and nothing is queued.
        """
        if self._group is None:
            raise RuntimeError("submit() needs the pool entered: `async with RunPool(...) as pool`")
        if self._closing:
            raise RuntimeError("the pool is closed")
        run = graph.new_run(
            lm=lm if lm is not None else self.lm,
            run_id=run_id,
            max_steps=self.max_steps,
            auto_answer=self.auto_answer,
            on_gate=self.on_gate,
            lm_limiter=self._lm_limiter,
            timeout=self.run_timeout,
            **inputs,
        )
        run.control = self.control
        handle = RunHandle(run, self)
        self._queue.append(handle)
        self._start_queued()
        return handle

    def _start_queued(self) -> None:
        assert self._group is not None
        while self._queue and len(self._active) < self.max_runs and not self._closing:
            handle = self._queue.popleft()
            self._dequeued.set()
            if handle.done():  # cancelled while queued
                continue
            self._active[handle.run_id] = handle
            handle._task = self._group.create_task(self._drive(handle), name=f"run {handle.run_id}")

    async def _drive(self, handle: RunHandle) -> None:
        try:
            result = await handle.run.execute()
        except asyncio.CancelledError:
            handle._settle_cancelled()
            raise
        except Exception as exc:  # isolation: the run's error is its own, the pool goes on
            handle._settle(None, exc)
        else:
            handle._settle(result, None)
        finally:
            self._active.pop(handle.run_id, None)
            self._finished(handle)
            self._start_queued()

    def _finished(self, handle: RunHandle) -> None:
        self.counts[handle.run.state] = self.counts.get(handle.run.state, 0) + 1
        self._ended[handle.run_id] = handle.run.state
        if len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)
        if len(self._finished_handles) == self._finished_handles.maxlen:
            self.dropped += 1
        self._finished_handles.append(handle)
        self._finished_event.set()

    def _taken(self, handle: RunHandle) -> None:
        """A handle whose result was taken no longer needs a place in the history."""
        try:
            self._finished_handles.remove(handle)
        except ValueError:
            pass

    # -- control ----------------------------------------------------------------------------

    def cancel_all(self) -> int:
        """Cancel every queued and running run; returns how many were cancelled."""
        cancelled = self._cancel_queued()
        for handle in list(self._active.values()):
            if handle.cancel():
                cancelled += 1
        return cancelled

    def _cancel_queued(self) -> int:
        cancelled = 0
        while self._queue:
            if self._queue.popleft().cancel():
                cancelled += 1
        return cancelled

    def get(self, run_id: str) -> RunHandle | None:
        """The handle of a queued or running run."""
        found = self._active.get(run_id)
        if found is None:
            found = next((h for h in self._queue if h.run_id == run_id), None)
        return found

    def _lookup(self, run_id: str) -> Run | RunState | None:
        """For the control server: the run, or how it ended if it ended recently."""
        handle = self.get(run_id)
        return handle.run if handle is not None else self._ended.get(run_id)

    @property
    def active(self) -> list[RunHandle]:
        """Runs in flight (running or waiting at a gate)."""
        return list(self._active.values())

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """True when nothing is queued or running."""
        return not self._queue and not self._active

    async def room(self, queued: int) -> None:
        """Wait until fewer than ``queued`` runs wait in the queue (for feeding huge inputs)."""
        while len(self._queue) >= queued:
            self._dequeued.clear()
            await self._dequeued.wait()

    async def as_completed(self) -> AsyncIterator[RunHandle]:
        """Handles as their runs finish, until the pool is idle and every one was yielded."""
        while True:
            while self._finished_handles:
                yield self._finished_handles.popleft()
            if self.idle:
                return
            self._finished_event.clear()
            await self._finished_event.wait()

    def __aiter__(self) -> AsyncIterator[RunHandle]:
        return self.as_completed()
