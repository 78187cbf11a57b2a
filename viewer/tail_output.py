"""How ``tail`` writes its events: a plain line, a JSON object, or a Rich row for the screen.

Plain lines (stdout not a terminal) are one per event and read left to right as *when, which run,
what*::

    18:28:58.724  3f9c0a1b2d4e  run    started  triage
    18:28:58.731  3f9c0a1b2d4e  end    node Triage  6.91 ms  ok
    18:28:59.102  3f9c0a1b2d4e  gate   Escalate.approved waits: Escalate to on-call? (bool) …
    18:29:03.550  3f9c0a1b2d4e  run    completed  triage  4.83 s

A stall's call graph and a blocked loop's stack follow their line, indented by four spaces, so
that the line itself stays one event. ``--json`` objects have the stable keys of
:func:`event_json`.
"""

from __future__ import annotations

import time
from typing import Any, Final, TextIO

import msgspec
from rich.console import Group, RenderableType
from rich.text import Text

from viewer import keys
from viewer.format import duration, iso_utc, ms
from viewer.summary import STATUS_STYLE
from viewer.tail import TailEvent

__all__ = [
    "LineSink",
    "answer_hint",
    "clock",
    "event_json",
    "event_line",
    "event_row",
    "notable",
]

_STACK_LINES: Final = 12  # lines of a blocked loop's stack shown on the screen (innermost)
_CALL_GRAPH_LINES: Final = 24
_encoder = msgspec.json.Encoder()


# The last second and the last millisecond formatted: events come many a millisecond.
_last_second: list[Any] = [None, ""]
_last_milli: list[int] = [-1]
_last_milli_text: list[str] = [""]


def clock(ns: int) -> str:
    """Local time of day to the millisecond."""
    milli = ns // 1_000_000
    if _last_milli[0] == milli:
        return _last_milli_text[0]
    seconds, rest = divmod(milli, 1000)
    if _last_second[0] != seconds:
        _last_second[:] = [seconds, time.strftime("%H:%M:%S", time.localtime(seconds))]
    text = f"{_last_second[1]}.{rest:03d}"
    _last_milli[0] = milli
    _last_milli_text[0] = text
    return text


def answer_hint(run_id: str, gate_id: str, trace_dir_option: str) -> str:
    """The command that answers a gate from a shell (``VALUE`` to fill in)."""
    return f"graphtrace answer {run_id} {gate_id} VALUE{trace_dir_option}"


def _seconds(value: Any) -> str:
    try:
        return duration(int(float(value) * 1e9))
    except (TypeError, ValueError):
        return "?"


def _indented(text: str) -> str:
    return "".join(f"\n    {line}" for line in text.splitlines() if line.strip())


def event_line(event: TailEvent, trace_dir_option: str = "") -> str:
    """The plain line of an event (with its call graph or stack indented below it)."""
    kind = event.kind
    # the two kinds nearly every line is, each in one f-string
    if kind == "span_end":
        error = event.error
        return (
            f"{clock(event.time_ns)}  {event.run_id or '-'}  end    {event.name}  "
            f"{duration(event.duration_ns or 0)}  {event.status}{'  ' if error else ''}{error}"
        )
    if kind == "span_start":
        return f"{clock(event.time_ns)}  {event.run_id or '-'}  start  {event.name}"
    head = f"{clock(event.time_ns)}  {event.run_id or '-'}  "
    if kind == "run_start":
        return f"{head}run    started  {event.graph}"
    if kind == "run_end":
        tail = f"  {event.error}" if event.error else ""
        return (
            f"{head}run    {event.status}  {event.graph}  {duration(event.duration_ns or 0)}{tail}"
        )
    if kind == "gate_waiting" and event.gate is not None:
        gate = event.gate
        hint = answer_hint(gate.run_id, gate.gate_id, trace_dir_option)
        return (
            f"{head}gate   {gate.gate_id} waits: {gate.prompt} ({gate.expected_type})  "
            f"answer with: {hint}"
        )
    if kind == "gate_answered" or kind == "gate_waiting":
        return f"{head}gate   {_gate_id(event)} {_answered(event)}"
    if kind == "stall":
        return f"{head}stall  {_stall_head(event)}{_indented(event.text)}"
    if kind == "loop_blocked":
        return f"{head}loop   {_blocked_head(event)}{_indented(event.text)}"
    return f"{head}loop   free again after {duration(event.duration_ns or 0)}"


def _gate_id(event: TailEvent) -> str:
    return str(event.attributes.get(keys.GATE_ID) or event.name.removeprefix("gate "))


def _answered(event: TailEvent) -> str:
    attributes = event.attributes
    took = duration(event.duration_ns or 0)
    if event.status == "error":
        return f"ended without an answer after {took}: {event.error or 'error'}"
    if keys.GATE_ANSWER not in attributes:
        return f"ended after {took}"
    by = attributes.get(keys.GATE_ANSWERED_BY)
    return (
        f"answered {attributes[keys.GATE_ANSWER]}" + (f" ({by})" if by else "") + f" after {took}"
    )


def _stall_head(event: TailEvent) -> str:
    attributes = event.attributes
    parts = [f"{event.name or 'a span'} open {_seconds(attributes.get(keys.STALL_ELAPSED_S))}"]
    if keys.STALL_THRESHOLD_S in attributes:
        parts.append(f"threshold {_seconds(attributes[keys.STALL_THRESHOLD_S])}")
    if keys.STALL_SNAPSHOT in attributes:
        parts.append(f"snapshot {attributes[keys.STALL_SNAPSHOT]}")
    return f"{parts[0]} ({', '.join(parts[1:])})" if len(parts) > 1 else parts[0]


def _blocked_head(event: TailEvent) -> str:
    attributes = event.attributes
    text = f"event loop blocked {_seconds(attributes.get(keys.LOOP_BLOCKED_S))}"
    held = attributes.get(keys.LOOP_HELD_BY)
    task = attributes.get(keys.LOOP_TASK)
    if held:
        text += f", held by {held}"
    if task:
        text += f" (task {task})"
    return text


def event_json(event: TailEvent) -> bytes:
    """One JSON object (no newline). Keys: ``event``, ``time`` (ISO 8601 UTC), ``run_id``,
    ``trace_id``, ``graph``; for spans ``name``, ``span_id``, ``attributes``, at the end
    ``duration_ms``, ``status``, ``error``; for gates ``gate`` (id, prompt, expected type,
    schema); for a stall ``call_graph``; for a blocked loop ``stack``."""
    doc: dict[str, Any] = {
        "event": event.kind,
        "time": iso_utc(event.time_ns),
        "run_id": event.run_id or None,
        "trace_id": event.trace_id or None,
        "graph": event.graph or None,
    }
    if event.name:
        doc["name"] = event.name
    if event.span_id:
        doc["span_id"] = event.span_id
    if event.duration_ns is not None:
        doc["duration_ms"] = ms(event.duration_ns)
    if event.status:
        doc["status"] = event.status
    if event.error:
        doc["error"] = event.error
    if event.gate is not None:
        gate = event.gate
        doc["gate"] = {
            "gate_id": gate.gate_id,
            "prompt": gate.prompt,
            "expected_type": gate.expected_type,
            "schema": gate.schema,
        }
    elif event.kind == "gate_answered":
        doc["gate"] = {"gate_id": _gate_id(event)}
    if event.kind == "stall":
        doc["call_graph"] = event.text
    if event.kind == "loop_blocked":
        doc["stack"] = event.text
    doc["attributes"] = dict(event.attributes)
    return _encoder.encode(doc)


def notable(event: TailEvent) -> bool:
    """Whether the screen prints the event above the live panel (span starts and ends that
    went well only show in the panel)."""
    kind = event.kind
    if kind == "span_start":
        return False
    return kind != "span_end" or event.status == "error"


def event_row(event: TailEvent) -> RenderableType:
    """The event as the screen prints it above the live panel."""
    kind = event.kind
    when = Text(f"{clock(event.time_ns)} ", style="dim")
    who = Text(f"{event.run_id} " if event.run_id else "", style="bold")
    if kind == "run_start":
        return Text.assemble(when, who, ("▶ ", "cyan"), event.graph, (" started", "dim"))
    if kind == "run_end":
        style = STATUS_STYLE.get(event.status, "")
        mark = "✓" if event.status == "completed" else "✗"
        line = Text.assemble(
            when, who, (f"{mark} ", style), event.graph, " ", (event.status, style),
            f" after {duration(event.duration_ns or 0)}",
        )  # fmt: skip
        if event.error:
            line.append(f" · {event.error}", style="red")
        return line
    if kind == "span_end":
        return Text.assemble(
            when, who, ("✗ ", "red"), event.name, (f" failed: {event.error or 'error'}", "red")
        )
    if kind == "gate_waiting" and event.gate is not None:
        gate = event.gate
        return Text.assemble(
            when, who, ("? ", "yellow"), (gate.gate_id, "bold yellow"), f" waits: {gate.prompt} ",
            (f"({gate.expected_type})", "cyan"),
        )  # fmt: skip
    if kind in ("gate_answered", "gate_waiting"):
        return Text.assemble(when, who, ("✓ ", "green"), _gate_id(event), f" {_answered(event)}")
    if kind == "stall":
        lines = event.text.splitlines()
        body = [Text(f"    {line}", style="dim") for line in lines[:_CALL_GRAPH_LINES]]
        if len(lines) > _CALL_GRAPH_LINES:
            body.append(Text(f"    … {len(lines) - _CALL_GRAPH_LINES} more lines", style="dim"))
        head = Text.assemble(when, who, ("⚠ stall ", "bold yellow"), _stall_head(event))
        return Group(head, *body)
    if kind == "loop_blocked":
        lines = [line for line in event.text.splitlines() if line.strip()]
        body = [Text(f"    {line}", style="dim") for line in lines[-_STACK_LINES:]]
        head = Text.assemble(when, ("⚠ ", "bold red"), (_blocked_head(event), "red"))
        return Group(head, *body)
    return Text.assemble(
        when, ("event loop free again", "green"), f" after {duration(event.duration_ns or 0)}"
    )


class LineSink:
    """Writes events to a stream that is not a terminal: plain lines, or JSON with ``as_json``.

    Each batch is one write and a flush, so a reader sees an event as soon as it is read.
    """

    def __init__(self, stream: TextIO, *, as_json: bool, trace_dir_option: str = "") -> None:
        self.stream = stream
        self.as_json = as_json
        self.trace_dir_option = trace_dir_option

    def __call__(self, events: list[TailEvent]) -> None:
        if self.as_json:
            text = b"\n".join(event_json(e) for e in events).decode() + "\n"
        else:
            option = self.trace_dir_option
            text = "\n".join([event_line(e, option) for e in events]) + "\n"
        self.stream.write(text)
        self.stream.flush()
