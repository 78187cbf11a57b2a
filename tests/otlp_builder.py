"""Hand-built OTLP JSON for reader tests: spans, pending records and whole documents as dicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from exporters.file import _hostname

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
MS = 1_000_000


def value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def attrs(**kv: Any) -> list[dict[str, Any]]:
    return [{"key": k.replace("__", "."), "value": value(v)} for k, v in kv.items()]


def span(
    trace: str,
    span_id: str,
    parent: str | None,
    name: str,
    start_ms: float,
    end_ms: float,
    attributes: dict[str, Any] | None = None,
    *,
    error: str | None = None,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(T0 + int(start_ms * MS)),
        "endTimeUnixNano": str(T0 + int(end_ms * MS)),
        "attributes": [{"key": k, "value": value(v)} for k, v in (attributes or {}).items()],
    }
    if parent:
        out["parentSpanId"] = parent
    if error is not None:
        out["status"] = {"code": 2, "message": error}
    if events:
        out["events"] = events
    return out


def pending(
    trace: str, started: str, name: str, start_ms: float, attributes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The zero-length record graphtrace writes when ``started`` starts."""
    record_id = f"{abs(hash((trace, started))) % 2**63 or 1:016x}"
    out = span(trace, record_id, started, name, start_ms, start_ms, attributes)
    out["attributes"].append({"key": "graphtrace.pending", "value": {"boolValue": True}})
    return out


def document(*spans: dict[str, Any], service: str = "graphtrace") -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attrs(service__name=service)},
                "scopeSpans": [{"scope": {"name": "graphtrace"}, "spans": list(spans)}],
            }
        ]
    }


def line(*spans: dict[str, Any]) -> str:
    return json.dumps(document(*spans), separators=(",", ":")) + "\n"


def run_spans(
    trace: str, run_id: str, *, start_ms: float = 0, status: str = "completed"
) -> list[dict[str, Any]]:
    """A finished two-step run: pending records and final spans, as graphtrace writes them."""
    root, node1, dep, chat, node2, gate = (f"{trace[:8]}{i:08x}" for i in range(1, 7))
    run_attrs = {"graphtrace.run.id": run_id, "graphtrace.graph": "g"}
    s = start_ms
    return [
        pending(trace, root, "run g", s, run_attrs),
        pending(trace, node1, "node A", s + 1, {"graphtrace.node.step": 1}),
        pending(trace, dep, "dep load", s + 2, {"graphtrace.dep.cached": False}),
        span(trace, dep, node1, "dep load", s + 2, s + 12, {"graphtrace.dep.cached": False}),
        span(
            trace,
            chat,
            node1,
            "chat fake",
            s + 12,
            s + 20,
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "fake",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 7,
            },
        ),
        span(trace, node1, root, "node A", s + 1, s + 21, {"graphtrace.node.step": 1}),
        pending(trace, node2, "node B", s + 21, {"graphtrace.node.step": 2}),
        span(
            trace,
            gate,
            node2,
            "gate B.ok",
            s + 22,
            s + 30,
            {
                "graphtrace.gate.id": "B.ok",
                "graphtrace.gate.answer": "true",
                "graphtrace.gate.wait_ms": 8.0,
                "graphtrace.gate.answered_by": "auto",
            },
        ),
        span(trace, node2, root, "node B", s + 21, s + 31, {"graphtrace.node.step": 2}),
        span(trace, root, None, "run g", s, s + 32, {**run_attrs, "graphtrace.run.status": status}),
    ]


def dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def writer_file(directory: Path, pid: int, *, host: str | None = None, seq: int = 0) -> Path:
    """A trace file named as graphtrace's writer names them, for process ``pid``."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"traces-20260101T000000-{host or _hostname()}-{pid}-{seq:03d}.jsonl"
    return directory / name


def own_pid_file(directory: Path) -> Path:
    """A trace file whose writer is this (alive) process, stamped now."""
    import time

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"traces-{stamp}-{_hostname()}-{os.getpid()}-000.jsonl"


__all__ = [
    "MS",
    "T0",
    "attrs",
    "dead_pid",
    "document",
    "line",
    "own_pid_file",
    "pending",
    "run_spans",
    "span",
    "writer_file",
]
