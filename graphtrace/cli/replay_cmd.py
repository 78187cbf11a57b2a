"""``graphtrace replay RUN``: a recorded run played back in the live view."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from graphtrace.cli.app import DEFAULT_DIR, DebugOption, TraceDirOption, app, error_boundary
from graphtrace.cli.trace_inputs import (
    FileOption,
    RunArgument,
    open_traces,
    piped_output,
    resolve_run,
)
from viewer.replay import replay


@app.command("replay")
@error_boundary
def replay_command(
    run: RunArgument,
    speed: Annotated[
        float,
        typer.Option("--speed", min=0.001, help="Play back this many times as fast (0.5: slower)."),
    ] = 1.0,
    files: FileOption = None,
    trace_dir: TraceDirOption = DEFAULT_DIR,
    debug: DebugOption = False,
) -> None:
    """Play a recorded run back with its recorded timing: spans appear and close as they did.
    Outside a terminal, one line per span start and end.

    Examples:

      graphtrace replay last

      graphtrace replay 3fa9 --speed 10
    """
    with open_traces(trace_dir, files) as source:
        trace = source.load(resolve_run(source, run))
    try:
        with piped_output():
            replay(trace, Console(highlight=False), speed=speed)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
