"""``graphtrace show RUN``: the post-mortem timing tree of one run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from exporters.reading.source import gc_paused
from graphtrace.cli.app import DEFAULT_DIR, DebugOption, TraceDirOption, app, error_boundary
from graphtrace.cli.trace_inputs import (
    FileOption,
    RunArgument,
    open_traces,
    piped_output,
    resolve_run,
    view_console,
)
from viewer.show import render_run
from viewer.tree_json import tree_json


@app.command("show")
@error_boundary
def show_command(
    run: RunArgument,
    as_json: Annotated[
        bool, typer.Option("--json", help="The span tree as JSON (stable, for scripts).")
    ] = False,
    svg: Annotated[
        Path | None, typer.Option("--svg", help="Also save the picture as SVG to this file.")
    ] = None,
    files: FileOption = None,
    trace_dir: TraceDirOption = DEFAULT_DIR,
    debug: DebugOption = False,
) -> None:
    """Show one run's spans as a tree: offsets, durations, a waterfall, status, the critical
    path, gate waits and answers, LLM tokens, errors and stall snapshots.

    Examples:

      graphtrace show last

      graphtrace show 3fa9 --json

      graphtrace show last --file collector-output.json
    """
    # A big run is many small objects and no garbage: the collector would only slow this down.
    with gc_paused():
        with open_traces(trace_dir, files) as source:
            trace = source.load(resolve_run(source, run))
        with piped_output():
            if as_json:
                print(json.dumps(tree_json(trace), indent=2, ensure_ascii=False))
                return
            console = view_console(record=svg is not None)
            console.print(render_run(trace))
        if svg is not None:
            console.save_svg(str(svg), title=f"graphtrace show {trace.run_id}")
            console.print(f"saved {svg}", style="dim")
