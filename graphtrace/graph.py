"""``Graph``: the nodes reachable from a start node, checked once, run many times."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from graphtrace import gc_threshold
from graphtrace.deps import check_node_deps
from graphtrace.errors import GraphDefinitionError, InputError
from graphtrace.lm.slots import CallSlots
from graphtrace.node import Node
from graphtrace.run import GateCallback, Run
from graphtrace.spec import DepSpec, FieldSpec, NodeSpec, inspect_node


class Graph:
    """A graph of :class:`Node` classes, discovered from ``start`` through return type hints.

    Construction checks the whole graph and raises :class:`GraphDefinitionError` naming the
    class and field at fault: an instance instead of a class, a hint that is not a node, a dep
    with no return annotation or one that does not fit its field, a dep cycle, a node with no
    path to an end.

    Example::

        graph = Graph(start=Triage)
        last = await graph.arun(lm=FakeLM(), ticket="refund please", customer="c1")
    """

    def __init__(self, start: type[Node], *, name: str | None = None, max_steps: int = 50) -> None:
        if not isinstance(start, type):
            raise GraphDefinitionError(
                f"Graph(start=...) takes a Node class, got an instance of {type(start).__name__}; "
                f"write Graph(start={type(start).__name__})"
            )
        self.start = start
        self.name = name or start.__name__
        self.max_steps = max_steps
        self.specs: dict[type[Node], NodeSpec] = {}
        self.dep_specs: dict[Callable[..., Any], DepSpec] = {}
        queue: deque[type[Node]] = deque([start])
        while queue:
            cls = queue.popleft()
            if cls in self.specs:
                continue
            spec = self.specs[cls] = inspect_node(cls)
            queue.extend(s for s in spec.successors if s not in self.specs)
        for spec in self.specs.values():
            check_node_deps(spec, self.dep_specs)
        self._check_ends()

    @property
    def nodes(self) -> tuple[type[Node], ...]:
        """Every node class of the graph, the start first."""
        return tuple(self.specs)

    @property
    def inputs(self) -> dict[str, FieldSpec]:
        """The start node's plain fields: what a run is started with."""
        return {f.name: f for f in self.specs[self.start].of_kind("plain")}

    def _check_ends(self) -> None:
        can_end = {cls for cls, spec in self.specs.items() if spec.may_end or not spec.successors}
        changed = True
        while changed:
            changed = False
            for cls, spec in self.specs.items():
                if cls not in can_end and any(s in can_end for s in spec.successors):
                    can_end.add(cls)
                    changed = True
        stuck = [cls.__name__ for cls in self.specs if cls not in can_end]
        if stuck:
            raise GraphDefinitionError(
                f"{', '.join(stuck)} {'has' if len(stuck) == 1 else 'have'} no path to an end: "
                f"every route from {stuck[0]} loops back; add `| None` to a __call__ return hint "
                f"on the way"
            )

    def check_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Validated start inputs; raises :class:`InputError` naming what is wrong."""
        start = self.specs[self.start]
        accepted = self.inputs
        unknown = [k for k in inputs if k not in accepted]
        if unknown:
            resolved = [k for k in unknown if k in start.fields]
            if resolved:
                kind = start.fields[resolved[0]].kind
                raise InputError(
                    f"{start.name}.{resolved[0]} is a {kind} field, resolved by the runtime, "
                    f"not a start input"
                )
            raise InputError(
                f"unknown input(s) {', '.join(map(repr, unknown))} for {start.name}; "
                f"its inputs are {', '.join(accepted) or 'none'}"
            )
        missing = [k for k, f in accepted.items() if k not in inputs and not f.has_default]
        if missing:
            raise InputError(f"missing input(s) {', '.join(map(repr, missing))} for {start.name}")
        checked: dict[str, Any] = {}
        for key, value in inputs.items():
            try:
                checked[key] = accepted[key].adapter.validate_python(value)
            except ValidationError as exc:
                msg = "; ".join(e["msg"] for e in exc.errors(include_url=False))
                raise InputError(f"input {key!r} of {start.name}: {msg} (got {value!r})") from None
        return checked

    def new_run(
        self,
        *,
        lm: Any,
        run_id: str | None = None,
        max_steps: int | None = None,
        auto_answer: bool = False,
        on_gate: GateCallback | None = None,
        lm_limiter: CallSlots | None = None,
        timeout: float | None = None,
        **inputs: Any,
    ) -> Run:
        """A :class:`Run` ready to ``execute()``; inputs are checked now."""
        return Run(
            self,
            lm=lm,
            inputs=self.check_inputs(inputs),
            run_id=run_id,
            max_steps=max_steps or self.max_steps,
            auto_answer=auto_answer,
            on_gate=on_gate,
            lm_limiter=lm_limiter,
            timeout=timeout,
        )

    async def arun(
        self,
        *,
        lm: Any,
        max_steps: int | None = None,
        auto_answer: bool = False,
        on_gate: GateCallback | None = None,
        **inputs: Any,
    ) -> Node:
        """Run once on the current event loop; returns the last node.

        Many of these at once (``asyncio.gather``) are many runs in flight, as in a
        :class:`~graphtrace.RunPool`: while any is, the young GC threshold is CPython 3.13's
        (see :mod:`graphtrace.gc_threshold`).
        """
        run = self.new_run(
            lm=lm, max_steps=max_steps, auto_answer=auto_answer, on_gate=on_gate, **inputs
        )
        gc_threshold.hold()
        try:
            return await run.execute()
        finally:
            gc_threshold.release()

    def run(
        self,
        *,
        lm: Any,
        max_steps: int | None = None,
        auto_answer: bool = False,
        on_gate: GateCallback | None = None,
        **inputs: Any,
    ) -> Node:
        """Run once in a new event loop (``asyncio.run``); returns the last node."""
        return asyncio.run(
            self.arun(
                lm=lm, max_steps=max_steps, auto_answer=auto_answer, on_gate=on_gate, **inputs
            )
        )

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart."""
        lines = ["flowchart TD", f"    __start__([start]) --> {self.start.__name__}"]
        ends = False
        for cls, spec in self.specs.items():
            for succ in spec.successors:
                label = "" if not spec.decides else "|LM|"
                lines.append(f"    {cls.__name__} -->{label} {succ.__name__}")
            if spec.may_end or not spec.successors:
                ends = True
                lines.append(f"    {cls.__name__} --> __end__")
        if ends:
            lines.append("    __end__([end])")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Graph(start={self.start.__name__}, nodes={len(self.specs)})"
