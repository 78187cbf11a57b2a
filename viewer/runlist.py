"""``graphtrace ls``: the runs as a table, or as the JSON array of DESIGN.md."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from exporters.reading.source import RunSummary
from viewer.format import duration, iso_utc, local_time, ms
from viewer.summary import STATUS_STYLE

__all__ = ["runs_json", "runs_table"]

_SHORT_ID = 16  # trace ids used as run ids (traces from other tools) are cut to this in tables


def runs_json(runs: list[RunSummary]) -> list[dict[str, Any]]:
    """One object per run: ``run_id``, ``trace_id``, ``graph``, ``status``, ``start`` (ISO 8601,
    UTC), ``duration_ms``, ``steps``, ``llm_calls``, ``tokens``, ``waiting_gates``, ``spans``,
    ``errors``."""
    return [
        {
            "run_id": run.run_id,
            "trace_id": run.trace_id,
            "graph": run.graph,
            "status": run.status,
            "start": iso_utc(run.start_ns),
            "duration_ms": ms(run.duration_ns),
            "steps": run.row.steps,
            "llm_calls": run.row.llm_calls,
            "tokens": run.row.tokens,
            "waiting_gates": run.waiting_gates,
            "spans": run.row.spans,
            "errors": run.row.errors,
        }
        for run in runs
    ]


def runs_table(runs: list[RunSummary], total: int, where: str) -> RenderableType:
    """Newest first, one row per run, and a line saying how many of how many are shown."""
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for name, justify in (
        ("run", "left"),
        ("graph", "left"),
        ("status", "left"),
        ("start", "left"),
        ("duration", "right"),
        ("steps", "right"),
        ("LLM", "right"),
        ("tokens", "right"),
        ("waiting", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=name != "graph")  # type: ignore[arg-type]
    for run in runs:
        run_id = run.run_id if len(run.run_id) <= _SHORT_ID else run.run_id[:_SHORT_ID] + "…"
        table.add_row(
            run_id,
            run.graph,
            Text(run.status, style=STATUS_STYLE.get(run.status, "")),
            local_time(run.start_ns),
            duration(run.duration_ns),
            str(run.row.steps),
            str(run.row.llm_calls),
            str(run.row.tokens),
            str(run.waiting_gates) if run.waiting_gates else "",
        )
    shown = f"{len(runs)} of {total} runs in {where}, newest first"
    return Group(table, Text(shown, style="dim"))
