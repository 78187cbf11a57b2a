"""``graphtrace gates``: the gates waiting for an answer, read from the trace files."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from graphtrace.cli.app import DEFAULT_DIR, DebugOption, TraceDirOption, app, error_boundary
from graphtrace.cli.trace_inputs import open_traces, piped_output, view_console
from graphtrace.control.discovery import WaitingGate, waiting_gates
from viewer.format import duration

__all__ = ["gates_table", "print_waiting_gates"]


@app.command("gates")
@error_boundary
def gates_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array of waiting gates (stable, for scripts).")
    ] = False,
    trace_dir: TraceDirOption = DEFAULT_DIR,
    debug: DebugOption = False,
) -> None:
    """List the gates waiting for an answer (the same as `graphtrace ls --waiting`).

    One row per gate, oldest first: run, gate id, prompt, expected type, how long it has waited.

    Answer one with  graphtrace answer RUN [GATE] VALUE

    Examples:

      graphtrace gates

      graphtrace gates --json | jq -r '.[].run_id'
    """
    print_waiting_gates(trace_dir, as_json=as_json)


def print_waiting_gates(trace_dir: Path, *, as_json: bool) -> None:
    """The waiting gates of ``trace_dir`` as a table or JSON: ``gates`` and ``ls --waiting``."""
    with open_traces(trace_dir, None) as source:
        gates = waiting_gates(source)
        now = time.time_ns()
        with piped_output():
            if as_json:
                print(json.dumps([g.as_json(now) for g in gates], indent=2, ensure_ascii=False))
                return
            view_console().print(gates_table(gates, now, source.where))


def gates_table(gates: list[WaitingGate], now_ns: int, where: str) -> Table | str:
    """The waiting gates as a table (or one line saying there are none)."""
    if not gates:
        return f"no gate waits for an answer in {where}"
    table = Table(
        title=f"{len(gates)} gate(s) waiting in {where}",
        title_justify="left",
        caption="answer with  graphtrace answer RUN [GATE] VALUE",
        caption_justify="left",
    )
    table.add_column("run", style="bold", no_wrap=True)
    table.add_column("gate", no_wrap=True)
    table.add_column("prompt")
    table.add_column("expects", style="cyan")
    table.add_column("waited", justify="right", no_wrap=True)
    table.add_column("graph", style="dim")
    for gate in gates:
        table.add_row(
            gate.run_id,
            gate.gate_id,
            gate.prompt,
            gate.expected_type,
            duration(int(gate.waited_s(now_ns) * 1e9)),
            gate.graph,
        )
    return table
