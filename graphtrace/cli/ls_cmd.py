"""``graphtrace ls``: the runs in the trace directory, newest first."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from exporters.reading.source import STATUSES
from graphtrace.cli.app import DEFAULT_DIR, DebugOption, TraceDirOption, app, error_boundary
from graphtrace.cli.errors import CLIError
from graphtrace.cli.gates_cmd import print_waiting_gates
from graphtrace.cli.trace_inputs import FileOption, open_traces, piped_output, view_console
from viewer.runlist import runs_json, runs_table


@app.command("ls")
@error_boundary
def ls_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array of runs (stable, for scripts).")
    ] = False,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            help=f"Only runs with this status (repeatable, or comma-separated): "
            f"{', '.join(STATUSES)}.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, help="At most this many runs; 0 for all.")
    ] = 50,
    waiting: Annotated[
        bool,
        typer.Option("--waiting", help="The gates waiting for an answer instead (as `gates`)."),
    ] = False,
    files: FileOption = None,
    trace_dir: TraceDirOption = DEFAULT_DIR,
    debug: DebugOption = False,
) -> None:
    """List the runs: id, graph, status, start, duration, steps, LLM calls, tokens and
    waiting gates. Runs still in flight are `running`; runs whose process died are
    `interrupted`.

    Examples:

      graphtrace ls --limit 10

      graphtrace ls --status failed,timed_out --json

      graphtrace ls --waiting
    """
    if waiting:
        if files:
            raise CLIError("--waiting reads the trace dir (its live processes), not --file")
        print_waiting_gates(trace_dir, as_json=as_json)
        return
    wanted = _statuses(status)
    with open_traces(trace_dir, files) as source:
        runs = source.runs(statuses=wanted, limit=limit or None)
        with piped_output():
            if as_json:
                print(json.dumps(runs_json(runs), indent=2, ensure_ascii=False))
                return
            view_console().print(runs_table(runs, source.count(), source.where))


def _statuses(values: list[str] | None) -> set[str] | None:
    if not values:
        return None
    wanted = {part.strip() for value in values for part in value.split(",") if part.strip()}
    unknown = sorted(wanted - set(STATUSES))
    if unknown:
        raise CLIError(f"unknown status {unknown[0]!r}: use one of {', '.join(STATUSES)}")
    return wanted
