"""``graphtrace tail``: follow the trace files live, and answer waiting gates inline."""

from __future__ import annotations

import asyncio
import gc
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from exporters.reading.errors import ReaderError
from exporters.reading.follow import Follower
from graphtrace.cli.answer_cmd import parse_value
from graphtrace.cli.app import DEFAULT_DIR, DebugOption, TraceDirOption, app, error_boundary
from graphtrace.cli.errors import CLIError
from graphtrace.cli.trace_inputs import piped_output
from viewer.tail import TailState
from viewer.tail_feed import BUSY_POLL_S, Feed, seed
from viewer.tail_output import LineSink
from viewer.tail_screen import EXIT_INTERRUPTED, TailScreen, run_screen


@app.command("tail")
@error_boundary
def tail_command(
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            help="Follow this run only (an id, a unique prefix, or `last`); stop when it ends.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per event (for scripts), no prompt.")
    ] = False,
    from_start: Annotated[
        bool,
        typer.Option(
            "--from-start", help="Read the files from their start instead of from their end."
        ),
    ] = False,
    trace_dir: TraceDirOption = DEFAULT_DIR,
    debug: DebugOption = False,
) -> None:
    """Follow the trace files live: runs starting and ending, the spans in flight with their
    elapsed time, failures, stall snapshots with their call graph, a blocked event loop, and
    the gates that wait, with a prompt at the bottom to answer them.

    With one gate waiting, type the answer and Enter; with several, start with the gate's
    number or id (`2 true`, `Escalate.approved true`). Ctrl-D or Ctrl-C leaves.

    When the output is not a terminal: one line per event (a stall's call graph indented below
    its line) and no prompt; --json: one JSON object per event. With --run the exit code says
    how the run ended (0 completed, 1 otherwise).

    Examples:

      graphtrace tail

      graphtrace tail --run last --json | jq -c 'select(.event == "gate_waiting")'
    """
    # tail makes a few objects per record, none in cycles that matter, at up to tens of
    # thousands of records a second: the default collector thresholds would spend a third of
    # the time collecting. What was loaded at startup is frozen out of the collections.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    try:
        code = _tail(trace_dir, run=run, as_json=as_json, from_start=from_start)
    except KeyboardInterrupt:  # Ctrl-C outside the prompt (in line mode, or while starting)
        code = EXIT_INTERRUPTED
    raise typer.Exit(code)


def _tail(trace_dir: Path, *, run: str | None, as_json: bool, from_start: bool) -> int:
    state = TailState()
    try:
        begin, snapshot = seed(trace_dir, state, run=run, from_start=from_start)
    except ReaderError as exc:
        raise CLIError(str(exc)) from None
    what = f"run {begin.run_id}" if begin.run_id else "every run"
    whence = "from the start" if from_start else "from now"
    gates = len(state.gates)
    waiting = f", {gates} gate(s) waiting" if gates else ""
    absent = "" if trace_dir.is_dir() else " (it does not exist yet: waiting for it)"
    note = f"following {what} in {trace_dir}{absent} {whence}{waiting}"
    with Follower(trace_dir, start=begin.start) as follower:
        if not as_json and sys.stdout.isatty() and sys.stdin.isatty():
            screen = TailScreen(state, trace_dir, parse_value, where=str(trace_dir))
            feed = Feed(follower, state, screen.show, warn=screen.warn)
            screen.say(Text(f"{note}; Ctrl-D leaves", style="dim"))
            screen.show(snapshot)
            code = asyncio.run(run_screen(feed, screen))
        else:
            quoted = shlex.quote(str(trace_dir))
            option = "" if trace_dir == DEFAULT_DIR else f" --trace-dir {quoted}"
            sink = LineSink(sys.stdout, as_json=as_json, trace_dir_option=option)
            # a reader of lines wants each one soon after its span ends
            feed = Feed(follower, state, sink, warn=_warn, busy_poll_s=BUSY_POLL_S)
            _warn(f"{note}; Ctrl-C stops")
            with piped_output():
                if snapshot:
                    sink(snapshot)
                code = asyncio.run(feed.run())
    for line in feed.report():
        _warn(line)
    return code


def _warn(message: str) -> None:
    print(f"graphtrace: {message}", file=sys.stderr, flush=True)
