"""Finding the gates that wait, and the sockets that take their answers, from the trace files.

A waiting gate is a ``gate {Node}.{field}`` span whose pending record was written and whose final
span was not, in a file whose writer is alive. Its pending record carries what a client needs:
the gate id, prompt, JSON Schema and the control socket (``graphtrace.gate.socket``); the run id
comes from the trace it belongs to. The trace reader's index (:mod:`exporters.reading`) keeps
open spans, so this reads a few rows instead of the files.

Sockets can outlive their process (``kill -9``): one whose pid is gone, or that refuses
connections, is stale and is skipped; :func:`graphtrace.control.sockets.sweep_stale` removes them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.reading.source import RunSummary, TraceSource
from graphtrace.control.sockets import SUFFIX, control_dir, owner_pid, pid_alive
from tracing import names

__all__ = ["WaitingGate", "live_sockets", "schema_type", "socket_alive", "waiting_gates"]


@dataclass(frozen=True, slots=True)
class WaitingGate:
    """One gate waiting for an answer, as the trace files tell it."""

    run_id: str
    trace_id: str
    graph: str
    gate_id: str
    prompt: str
    schema: dict[str, Any] | None
    socket: Path | None  # None: its process takes no answers from outside
    started_ns: int  # epoch ns the gate started waiting

    @classmethod
    def from_pending(
        cls,
        run_id: str,
        trace_id: str,
        graph: str,
        span_name: str,
        started_ns: int,
        attributes: Mapping[str, object],
    ) -> WaitingGate:
        """The gate a ``gate ...`` span's pending record describes (its attributes)."""
        socket = attributes.get(names.GATE_SOCKET)
        return cls(
            run_id=run_id,
            trace_id=trace_id,
            graph=graph,
            gate_id=str(attributes.get(names.GATE_ID) or span_name.removeprefix("gate ")),
            prompt=str(attributes.get(names.GATE_PROMPT) or ""),
            schema=_schema(attributes.get(names.GATE_SCHEMA)),
            socket=Path(socket) if isinstance(socket, str) and socket else None,
            started_ns=started_ns,
        )

    @property
    def expected_type(self) -> str:
        """The answer's type, from the field's JSON Schema (``bool``, ``list[int]``…)."""
        return schema_type(self.schema) if self.schema is not None else "?"

    def waited_s(self, now_ns: int | None = None) -> float:
        """Seconds it has waited so far."""
        return max(0.0, ((now_ns or time.time_ns()) - self.started_ns) / 1e9)

    def as_json(self, now_ns: int | None = None) -> dict[str, Any]:
        """The stable shape of ``graphtrace gates --json``."""
        return {
            "run_id": self.run_id,
            "trace_id": self.trace_id,
            "graph": self.graph,
            "gate_id": self.gate_id,
            "prompt": self.prompt,
            "expected_type": self.expected_type,
            "schema": self.schema,
            "waited_s": round(self.waited_s(now_ns), 3),
            "socket": str(self.socket) if self.socket is not None else None,
        }


def waiting_gates(source: TraceSource, run: RunSummary | None = None) -> list[WaitingGate]:
    """The gates waiting now (their process alive), oldest first; only ``run``'s if given."""
    out: list[WaitingGate] = []
    for gate in source.open_gates():
        if not gate.alive:
            continue  # the process died: nobody waits there any more
        if run is not None and gate.run.trace_id != run.trace_id:
            continue
        out.append(
            WaitingGate.from_pending(
                gate.run.run_id,
                gate.run.trace_id,
                gate.run.graph,
                gate.span.name,
                gate.span.start_ns,
                gate.attributes,
            )
        )
    return out


def socket_alive(path: Path) -> bool:
    """Whether ``path`` may still be served: it exists and the pid in its name is alive.

    A recycled pid passes this test; connecting then fails and the client skips the socket.
    """
    pid = owner_pid(path)
    return pid is not None and pid_alive(pid) and path.exists()


def live_sockets(trace_dir: Path) -> list[Path]:
    """The sockets under ``trace_dir/control/`` whose process is alive, newest first."""
    try:
        paths = [p for p in control_dir(trace_dir).glob(f"*{SUFFIX}") if socket_alive(p)]
    except OSError:
        return []
    return sorted(paths, key=_mtime, reverse=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _schema(text: object) -> dict[str, Any] | None:
    if not isinstance(text, str):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


_SIMPLE = {
    "boolean": "bool",
    "integer": "int",
    "number": "float",
    "string": "str",
    "null": "None",
    "object": "dict",
}
_FORMATS = {"date-time": "datetime", "date": "date", "time": "time", "uuid": "UUID"}


def schema_type(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> str:
    """A short Python-like name for the values a JSON Schema accepts.

    Mirrors how the runtime names the field's type (``bool``, ``int | None``,
    ``list[str]``, ``Literal['low', 'high']``, a model's class name), as far as a schema tells.
    """
    defs = schema.get("$defs", defs)
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    if "const" in schema:
        return f"Literal[{schema['const']!r}]"
    if isinstance(schema.get("enum"), list):
        return f"Literal[{', '.join(repr(v) for v in schema['enum'])}]"
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return " | ".join(schema_type(o, defs) for o in options if isinstance(o, dict))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(_SIMPLE.get(k, str(k)) for k in kind)
    if kind == "array":
        items = schema.get("items")
        inner = schema_type(items, defs) if isinstance(items, dict) else "Any"
        return f"list[{inner}]"
    if kind == "object":
        if isinstance(schema.get("title"), str) and "properties" in schema:
            return str(schema["title"])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return f"dict[str, {schema_type(extra, defs)}]"
        return "dict"
    if kind == "string" and schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    if isinstance(kind, str):
        return _SIMPLE.get(kind, kind)
    return "Any"
