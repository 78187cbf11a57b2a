"""``graphtrace show``: a run's timing tree as a Rich table, one row per span."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from exporters.reading.assemble import RunTrace, TreeSpan
from exporters.reading.source import gc_paused
from viewer.critical import critical_path
from viewer.details import details, is_snapshot, snapshot_text
from viewer.fold import Folded, visible_children
from viewer.format import duration, iso_utc
from viewer.summary import STATUS_STYLE, run_counts

__all__ = ["WATERFALL_WIDTH", "render_run"]

WATERFALL_WIDTH: Final = 32
MAX_SNAPSHOT_LINES: Final = 40
_BAR: Final = {"ok": "█", "error": "█", "running": "▒", "interrupted": "░"}


@dataclass(slots=True)
class _Row:
    item: TreeSpan | Folded
    prefix: str  # guides of the ancestors
    connector: str  # this row's own guide


def render_run(trace: RunTrace) -> RenderableType:
    """The header, the tree table and a legend for one run."""
    with gc_paused():  # a pass or two over every span of a big run, and many small objects
        return _render_run(trace)


def _render_run(trace: RunTrace) -> RenderableType:
    critical = critical_path(trace.root)
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    table.add_column("", width=1, no_wrap=True)
    table.add_column("span", no_wrap=True, overflow="ellipsis", max_width=64)
    table.add_column("start", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("waterfall", width=WATERFALL_WIDTH, no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("details", overflow="fold", ratio=1)
    origin = trace.root.start_ns
    total = max(1, trace.root.duration_ns)
    stack = [_Row(trace.root, "", "")]
    while stack:
        row = stack.pop()
        item = row.item
        if isinstance(item, Folded):
            _add_fold(table, row, item)
            continue
        if is_snapshot(item):
            _add_snapshot(table, row, item, origin)
            continue
        on_path = id(item) in critical
        offset = item.start_ns - origin
        style = STATUS_STYLE.get(item.status, "")
        table.add_row(
            Text("●", style="bold yellow") if on_path else "",
            Text(row.prefix + row.connector + item.name, style="bold" if on_path else ""),
            duration(offset),
            duration(item.duration_ns),
            Text(_bar(offset, item.duration_ns, total, item.status), style=style),
            Text(item.status, style=style),
            details(item),
        )
        children = visible_children(item, critical)
        child_prefix = row.prefix + (
            "" if not row.connector else ("   " if row.connector.startswith("└") else "│  ")
        )
        for index in range(len(children) - 1, -1, -1):
            last = index == len(children) - 1
            stack.append(_Row(children[index], child_prefix, "└─ " if last else "├─ "))
    return Group(_header(trace), table, Text("● critical path", style="dim"))


def _header(trace: RunTrace) -> Text:
    counts = run_counts(trace)
    style = STATUS_STYLE.get(trace.status, "")
    head = Text()
    head.append(trace.graph, style="bold")
    head.append(f"  run {trace.run_id}  ")
    head.append(trace.status, style=style)
    head.append(f"  {duration(trace.duration_ns)}\n")
    parts = [
        f"started {iso_utc(trace.start_ns)}",
        f"trace {trace.trace_id}",
        f"{counts.spans} spans",
    ]
    if counts.steps:
        parts.append(f"{counts.steps} steps")
    if counts.llm_calls:
        parts.append(f"{counts.llm_calls} LLM calls, {counts.tokens} tokens")
    if counts.gates:
        gates = "1 gate" if counts.gates == 1 else f"{counts.gates} gates"
        parts.append(f"{gates} ({duration(counts.gate_wait_ns)} waiting)")
    if counts.errors:
        parts.append(f"{counts.errors} errors")
    head.append(" · ".join(parts), style="dim")
    return head


def _bar(offset: int, length: int, total: int, status: str) -> str:
    width = WATERFALL_WIDTH
    start = min(width - 1, max(0, int(offset * width / total)))
    end = min(width, max(start + 1, math.ceil((offset + length) * width / total)))
    return " " * start + _BAR.get(status, "█") * (end - start) + " " * (width - end)


def _add_fold(table: Table, row: _Row, fold: Folded) -> None:
    notes = [f"total {duration(fold.total_ns)}"]
    if fold.critical:
        notes.append(f"{fold.critical} on the critical path")
    if fold.errors:
        notes.append(f"{fold.errors} failed")
    table.add_row(
        "",
        Text(f"{row.prefix}{row.connector}… {fold.count} more {fold.name}", style="dim"),
        "",
        duration(fold.total_ns),
        "",
        "",
        Text(", ".join(notes), style="dim"),
    )


def _add_snapshot(table: Table, row: _Row, span: TreeSpan, origin: int) -> None:
    head, lines = snapshot_text(span)
    table.add_row(
        "",
        Text(f"{row.prefix}{row.connector}⚠ {span.name}", style="bold red"),
        duration(span.start_ns - origin),
        "",
        "",
        "",
        Text(head, style="red"),
    )
    indent = row.prefix + ("   " if row.connector.startswith("└") else "│  ")
    shown = lines[:MAX_SNAPSHOT_LINES]
    if len(lines) > len(shown):
        shown.append(f"… {len(lines) - len(shown)} more lines")
    for line in shown:
        table.add_row("", Text(f"{indent}  {line}", style="dim"), "", "", "", "", "")
