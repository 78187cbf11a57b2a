"""One run of a graph: the step loop, each step a ``node`` span under the ``run`` span.

A step resolves the node's fields in a fixed order — provided values, ``Recall``, ``Dep``
(concurrently), LM fill of the plain fields still missing, then ``Gate`` — validates the node,
records its state on the span, and routes: the custom body's return value, the single
successor, or the LM's decision.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from graphtrace.concurrently import all_of
from graphtrace.deps import DepResolver
from graphtrace.errors import (
    GateError,
    GateRefused,
    MaxStepsExceeded,
    RecallError,
    RunError,
    RunTimedOut,
)
from graphtrace.fields import Gate
from graphtrace.fill import Filler
from graphtrace.gates import PendingGate, encode_answer
from graphtrace.lm.caller import LMCaller
from graphtrace.lm.slots import CallSlots
from graphtrace.node import Node
from graphtrace.spec import FieldSpec, NodeSpec
from tracing import names
from tracing.spans import EndReason, enter_run_scope, leave_run_scope, open_span

if TYPE_CHECKING:
    from graphtrace.graph import Graph

GateCallback = Callable[[PendingGate], None]


class GateControl(Protocol):
    """Takes answers for a run's gates from other processes (the control socket's server)."""

    def gate_opened(self) -> str | None:
        """A gate starts waiting; returns the socket path its pending record names, if any."""

    def gate_closed(self) -> None:
        """That gate stopped waiting."""


_STATE_LIMIT = 64 * 1024


class RunState(StrEnum):
    """Where a run is.

    ``pending → running ⇄ waiting → completed | failed | cancelled | timed_out``
    """

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def finished(self) -> bool:
        return self not in (RunState.PENDING, RunState.RUNNING, RunState.WAITING)


def new_run_id() -> str:
    """A random 12-hex-digit run id: short to type, unique enough to prefix-match.

    Not a secret, so the fast PRNG: os.urandom releases the GIL, and a loop thread that does
    so hands it to the trace writer for a whole switch interval.
    """
    return f"{random.getrandbits(48):012x}"


def state_json(node: Node) -> str:
    """The node as JSON for ``graphtrace.node.state`` (types JSON cannot hold become text)."""
    try:
        text = node.model_dump_json()
    except Exception:  # a field pydantic cannot serialise: fall back to its repr
        text = json.dumps(node.model_dump(), default=repr)
    return text if len(text) <= _STATE_LIMIT else text[:_STATE_LIMIT] + "…"


class Run:
    """A single execution of a :class:`~graphtrace.graph.Graph`.

    Made by :meth:`Graph.new_run`; ``await run.execute()`` runs it and returns the last node.
    While it waits at gates, :attr:`waiting_gates` lists them and :meth:`answer` answers one.
    """

    def __init__(
        self,
        graph: Graph,
        *,
        lm: Any,
        inputs: Mapping[str, Any],
        run_id: str | None = None,
        max_steps: int = 50,
        auto_answer: bool = False,
        on_gate: GateCallback | None = None,
        lm_limiter: CallSlots | None = None,
        fill_retries: int = 2,
        timeout: float | None = None,
        control: GateControl | None = None,
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
        self.timeout = timeout
        self.graph = graph
        self.run_id = run_id or new_run_id()
        self.inputs = dict(inputs)
        self.max_steps = max_steps
        self.auto_answer = auto_answer
        self.on_gate = on_gate
        self.control = control
        """Where answers from other processes come in while a gate waits (None: nowhere)."""
        self.state = RunState.PENDING
        self.trace_id: str | None = None
        self.history: list[Node] = []
        self.result: Node | None = None
        self.error: BaseException | None = None
        self.timed_out = False
        self.node: str | None = None
        """The node the run is in (or ended in)."""
        self.started_at: float | None = None
        self.ended_at: float | None = None
        """``time.monotonic()`` when the run started and ended."""
        self._filler = Filler(LMCaller(lm, lm_limiter), graph.name, retries=fill_retries)
        self._deps = DepResolver(graph.dep_specs)
        self._gates: dict[str, PendingGate] = {}
        self.answered: dict[str, str] = {}
        """Gates answered so far, oldest first: gate id → who answered (``prompt``, ``socket``…),
        so a late second answer is told "already answered" rather than "no such gate"."""

    # -- gates -----------------------------------------------------------------------------

    @property
    def waiting_gates(self) -> list[PendingGate]:
        """The gates this run waits at now."""
        return list(self._gates.values())

    def answer(self, gate_id: str | None, value: Any, *, by: str = "api") -> Any:
        """Answer a waiting gate (``gate_id`` may be None when exactly one waits).

        Returns the validated value; raises :class:`GateRefused` with the reason otherwise.
        """
        if self.state.finished:
            raise GateRefused(f"run {self.run_id} has finished ({self.state})")
        if gate_id is None:
            if len(self._gates) != 1:
                waiting = ", ".join(self._gates) or "none"
                raise GateRefused(
                    f"run {self.run_id} waits at {len(self._gates)} gates ({waiting}); name one"
                )
            gate_id = next(iter(self._gates))
        gate = self._gates.get(gate_id)
        if gate is None and gate_id in self.answered:
            raise GateRefused(
                f"gate {gate_id} of run {self.run_id} was already answered "
                f"({self.answered[gate_id]})"
            )
        if gate is None:
            waiting = ", ".join(self._gates) or "none"
            raise GateRefused(
                f"run {self.run_id} has no waiting gate {gate_id!r} (waiting: {waiting})"
            )
        return gate.answer(value, by=by)

    # -- the run ---------------------------------------------------------------------------

    async def execute(self) -> Node:
        """Run to the end; returns the last node. Errors propagate after being recorded.

        With a ``timeout``, a run still going when it expires is cancelled: every open span is
        closed with status ``timed out`` and :class:`RunTimedOut` is raised.
        """
        if self.state is not RunState.PENDING:
            raise RuntimeError(f"run {self.run_id} was already started")
        self.state = RunState.RUNNING
        self.started_at = time.monotonic()
        reason, token = enter_run_scope()
        task = asyncio.current_task()
        expiry = None
        if self.timeout is not None and task is not None:
            expiry = asyncio.get_running_loop().call_later(self.timeout, self._expire, task, reason)
        try:
            return await self._traced(task)
        finally:
            self.ended_at = time.monotonic()
            if expiry is not None:
                expiry.cancel()
            leave_run_scope(token)

    @property
    def duration(self) -> float | None:
        """Seconds the run took (so far, while it runs); None before it starts."""
        if self.started_at is None:
            return None
        return (self.ended_at or time.monotonic()) - self.started_at

    def _expire(self, task: asyncio.Task[Any], reason: EndReason) -> None:
        self.timed_out = True
        reason.text = "timed out"
        task.cancel()

    async def _traced(self, task: asyncio.Task[Any] | None) -> Node:
        attributes = {names.RUN_ID: self.run_id, names.GRAPH: self.graph.name}
        with open_span(names.run_span(self.graph.name), attributes) as span:
            trace_id = span.get_span_context().trace_id
            self.trace_id = format(trace_id, "032x") if trace_id else None
            status = RunState.FAILED
            try:
                self.result = await self._steps()
                status = RunState.COMPLETED
                return self.result
            except asyncio.CancelledError as exc:
                self.error = exc
                if self.timed_out and task is not None and task.uncancel() == 0:
                    # our own timeout, and nobody else asked for a cancel: a timeout, not a cancel
                    status = RunState.TIMED_OUT
                    self.error = RunTimedOut(
                        f"run {self.run_id} timed out after {self.timeout}s", node=self.node
                    )
                    raise self.error from None
                status = RunState.CANCELLED
                raise
            except BaseException as exc:
                self.error = exc
                raise
            finally:
                self.state = status
                for gate in self._gates.values():
                    gate.close()
                span.set_attribute(names.RUN_STATUS, status.value)

    async def _steps(self) -> Node:
        spec = self.graph.specs[self.graph.start]
        provided: dict[str, Any] = dict(self.inputs)
        previous: tuple[str, str] | None = None
        for step in range(1, self.max_steps + 1):
            node, state, following = await self._step(step, spec, provided, previous)
            if following is None:
                return node
            previous = (spec.name, state)
            spec = self.graph.specs[following[0]]
            provided = following[1]
        raise MaxStepsExceeded(
            f"run {self.run_id} of {self.graph.name} took more than {self.max_steps} steps "
            f"(last node {spec.name}); raise max_steps or check for a loop",
            node=spec.name,
        )

    async def _step(
        self,
        step: int,
        spec: NodeSpec,
        provided: dict[str, Any],
        previous: tuple[str, str] | None,
    ) -> tuple[Node, str, tuple[type[Node], dict[str, Any]] | None]:
        self.node = spec.name
        with open_span(names.node_span(spec.name), {names.NODE_STEP: step}) as span:
            values = dict(provided)
            for f in spec.of_kind("recall"):
                if f.name not in values:
                    values[f.name] = self._recall(spec, f)
            missing = []
            for f in spec.of_kind("plain"):
                if f.name not in values:
                    if f.has_default:
                        values[f.name] = f.default_value()
                    else:
                        missing.append(f)
            if spec.of_kind("dep"):
                values.update(await self._deps.resolve(spec, values))
            if missing:
                values.update(await self._filler.fill(spec, missing, previous, values))
            gates = [f for f in spec.of_kind("gate") if f.name not in values]
            if gates:
                values.update(await self._wait_gates(spec, gates))
            try:
                node = spec.cls.model_validate(values)
            except ValidationError as exc:
                raise RunError(
                    f"{spec.name} is not valid: {_errors(exc)}", node=spec.name
                ) from None
            state = state_json(node)
            if span.is_recording():
                span.set_attribute(names.NODE_STATE, state)
            self.history.append(node)
            return node, state, await self._route(spec, node, state)

    async def _route(
        self, spec: NodeSpec, node: Node, state: str
    ) -> tuple[type[Node], dict[str, Any]] | None:
        if spec.custom_body:
            returned = await node()
            return self._check_returned(spec, returned)
        if spec.decides:
            chosen = await self._filler.decide(spec, state)
            return (chosen, {}) if chosen is not None else None
        return (spec.successors[0], {}) if spec.successors else None

    def _check_returned(
        self, spec: NodeSpec, returned: Any
    ) -> tuple[type[Node], dict[str, Any]] | None:
        if returned is None:
            if spec.may_end:
                return None
            raise RunError(
                f"{spec.name}.__call__ returned None, but its return hint does not allow None",
                node=spec.name,
            )
        cls = returned if isinstance(returned, type) else type(returned)
        if not (isinstance(cls, type) and issubclass(cls, Node)):
            raise RunError(
                f"{spec.name}.__call__ returned {returned!r}, which is not a Node", node=spec.name
            )
        if cls not in spec.successors:
            allowed = ", ".join(c.__name__ for c in spec.successors) or "nothing but None"
            raise RunError(
                f"{spec.name}.__call__ returned {cls.__name__}, which its return hint does not "
                f"name (allowed: {allowed})",
                node=spec.name,
            )
        return cls, (returned.provided_values() if isinstance(returned, Node) else {})

    def _recall(self, spec: NodeSpec, f: FieldSpec) -> Any:
        source = getattr(f.marker, "name", None) or f.name
        for earlier in reversed(self.history):
            if source in type(earlier).model_fields and source in earlier.__dict__:
                value = earlier.__dict__[source]
                try:
                    return f.adapter.validate_python(value)
                except ValidationError:
                    continue
        if f.has_default:
            return f.default_value()
        raise RecallError(
            f"{spec.name}.{f.name}: no earlier node of run {self.run_id} has a {source!r} value "
            f"that fits, and the field has no default",
            node=spec.name,
        )

    async def _wait_gates(self, spec: NodeSpec, gates: list[FieldSpec]) -> dict[str, Any]:
        return await all_of({f.name: self._wait_gate(spec, f) for f in gates})

    async def _wait_gate(self, spec: NodeSpec, f: FieldSpec) -> Any:
        gate_id = f"{spec.name}.{f.name}"
        assert isinstance(f.marker, Gate)
        pending = PendingGate(self.run_id, gate_id, spec.name, f.name, f.marker.prompt, f)
        attributes = {
            names.GATE_ID: gate_id,
            names.GATE_PROMPT: pending.prompt,
            names.GATE_SCHEMA: json.dumps(pending.schema),
        }
        # listening before the span opens, so the pending record can name the socket
        control = None if self.auto_answer else self.control
        if control is not None and (socket_path := control.gate_opened()) is not None:
            attributes[names.GATE_SOCKET] = socket_path
        try:
            with open_span(names.gate_span(spec.name, f.name), attributes) as span:
                self._gates[gate_id] = pending
                self.state = RunState.WAITING
                try:
                    value = await self._answer_of(pending)
                finally:
                    del self._gates[gate_id]
                    pending.close()
                    if not self._gates and self.state is RunState.WAITING:
                        self.state = RunState.RUNNING
                answered_by = pending.answered_by or "unknown"
                self.answered.pop(gate_id, None)  # re-inserted: the newest answer comes last
                self.answered[gate_id] = answered_by
                span.set_attributes(
                    {
                        names.GATE_ANSWER: encode_answer(value),
                        names.GATE_WAIT_MS: round((time.monotonic() - pending.started) * 1000.0, 3),
                        names.GATE_ANSWERED_BY: answered_by,
                    }
                )
                return value
        finally:
            if control is not None:
                control.gate_closed()

    async def _answer_of(self, pending: PendingGate) -> Any:
        gate = pending.gate
        if self.auto_answer:
            if not gate.has_default:
                raise GateError(
                    f"gate {pending.gate_id} has no default, so --auto-answer cannot answer it",
                    node=pending.node,
                )
            return pending.answer(gate.default, by="auto")
        if self.on_gate is not None:
            try:
                self.on_gate(pending)
            except GateRefused:
                pass  # the callback's answer was invalid: keep waiting for a valid one
        try:
            return await pending.wait()
        except TimeoutError:
            if gate.has_default:
                pending.answered_by = "timeout"
                return pending.validate(gate.default)
            raise GateError(
                f"gate {pending.gate_id} of run {self.run_id} timed out after {gate.timeout}s "
                f"and has no default",
                node=pending.node,
            ) from None


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
    )
