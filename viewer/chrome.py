"""``graphtrace export --format chrome``: the run as Chrome trace-event JSON.

Perfetto and chrome://tracing draw complete events (``"ph": "X"``) of one thread as a stack, so
each thread must hold properly nested events. Concurrent siblings (deps run together) would
break that, so spans are laid out on lanes (threads): a span goes on its parent's lane when it
fits inside what is open there, else on the first lane where it nests, else on a new one.
"""

from __future__ import annotations

from typing import Any

from exporters.reading.assemble import RunTrace, TreeSpan

__all__ = ["chrome_trace"]

_PID = 1


def chrome_trace(trace: RunTrace) -> dict[str, Any]:
    """``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}``."""
    origin = trace.root.start_ns
    spans = sorted(trace.spans, key=lambda s: (s.start_ns, -s.end_ns))
    lanes: list[list[int]] = []  # per lane, the end times of the events open on it
    lane_of: dict[str, int] = {}
    events: list[dict[str, Any]] = [
        {
            "name": "process_name",
            "ph": "M",
            "pid": _PID,
            "tid": 0,
            "args": {"name": f"{trace.graph} {trace.run_id}"},
        }
    ]
    for span in spans:
        lane = _place(span, lanes, lane_of.get(span.parent_id or ""))
        lane_of[span.span_id] = lane
        events.append(_complete(span, origin, lane + 1))
        for event in span.events:
            events.append(
                {
                    "name": event.name,
                    "ph": "i",
                    "s": "t",
                    "ts": _us(event.time_ns - origin),
                    "pid": _PID,
                    "tid": lane + 1,
                    "args": event.attributes,
                }
            )
    for index in range(len(lanes)):
        events.append(
            {
                "name": "thread_name",
                "ph": "M",
                "pid": _PID,
                "tid": index + 1,
                "args": {"name": f"lane {index + 1}"},
            }
        )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "run_id": trace.run_id,
            "trace_id": trace.trace_id,
            "graph": trace.graph,
            "status": trace.status,
        },
    }


def _place(span: TreeSpan, lanes: list[list[int]], preferred: int | None) -> int:
    order = range(len(lanes))
    if preferred is not None:
        order = [preferred, *(i for i in order if i != preferred)]  # type: ignore[assignment]
    for index in order:
        stack = lanes[index]
        while stack and stack[-1] <= span.start_ns:
            stack.pop()
        if not stack or stack[-1] >= span.end_ns:
            stack.append(span.end_ns)
            return index
    lanes.append([span.end_ns])
    return len(lanes) - 1


def _complete(span: TreeSpan, origin: int, tid: int) -> dict[str, Any]:
    kind = span.name.split(" ", 1)[0] if " " in span.name else span.name
    args: dict[str, Any] = {"span_id": span.span_id, "status": span.status}
    if span.record.status_message:
        args["status_message"] = span.record.status_message
    args.update(span.attributes)
    return {
        "name": span.name,
        "cat": kind,
        "ph": "X",
        "ts": _us(span.start_ns - origin),
        "dur": _us(span.duration_ns),
        "pid": _PID,
        "tid": tid,
        "args": args,
    }


def _us(ns: int) -> float:
    return round(ns / 1000, 3)
