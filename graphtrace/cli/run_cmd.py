"""``graphtrace run TARGET``: run a graph (one run after another for now) and trace it."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from graphtrace.cli.app import DEFAULT_DIR, DebugOption, TraceDirOption, app, error_boundary
from graphtrace.cli.target import load_graph, parse_inputs
from graphtrace.errors import GateError, GateRefused, GraphtraceError
from graphtrace.gates import PendingGate
from graphtrace.graph import Graph
from graphtrace.lm.fake import FakeLM
from graphtrace.run import Run, RunState
from tracing.setup import Tracing, configure

_STYLE = {
    RunState.COMPLETED: "green",
    RunState.FAILED: "red",
    RunState.CANCELLED: "yellow",
    RunState.TIMED_OUT: "red",
}


@app.command("run")
@error_boundary
def run_command(
    target: Annotated[str, typer.Argument(help="module:attr or path.py:attr naming a Graph.")],
    inputs: Annotated[
        list[str] | None,
        typer.Option("-i", "--input", help="A start input KEY=VALUE (VALUE as JSON, else text)."),
    ] = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="How many runs.")] = 1,
    auto_answer: Annotated[
        bool, typer.Option("--auto-answer", help="Answer every gate with its default.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="FakeLM seed of the first run.")] = 0,
    trace_dir: TraceDirOption = DEFAULT_DIR,
    debug: DebugOption = False,
) -> None:
    """Run TARGET and write its traces; prints each run's id and status and where the trace is.

    Examples:

      graphtrace run graphtrace.demo:graph --auto-answer --runs 5

      graphtrace run my_graph.py:graph -i ticket='refund please' -i customer=c-1
    """
    graph = load_graph(target)
    start_inputs = graph.check_inputs(parse_inputs(inputs or []))
    tracing = configure(trace_dir)
    console = Console(highlight=False, soft_wrap=True)
    interactive = sys.stdin.isatty() and not auto_answer
    try:
        results = asyncio.run(
            _run_all(graph, start_inputs, runs, seed, auto_answer, interactive, console)
        )
    except KeyboardInterrupt:
        tracing.flush()
        console.print("[yellow]interrupted[/]; traces so far are in " + escape(str(trace_dir)))
        raise typer.Exit(130) from None
    tracing.flush()
    _summary(console, results, tracing)
    raise typer.Exit(0 if all(r.state is RunState.COMPLETED for r in results) else 1)


async def _run_all(
    graph: Graph,
    inputs: dict[str, Any],
    runs: int,
    seed: int,
    auto_answer: bool,
    interactive: bool,
    console: Console,
) -> list[Run]:
    done: list[Run] = []
    for index in range(runs):
        run = graph.new_run(
            lm=FakeLM(seed=seed + index),
            auto_answer=auto_answer,
            on_gate=None if auto_answer else _gate_handler(console, interactive),
            **inputs,
        )
        started = time.perf_counter()
        error = ""
        try:
            await run.execute()
        except GraphtraceError as exc:
            error = str(exc)
        except Exception as exc:  # a bug in the user's node or dep: recorded, next run goes on
            error = f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        style = _STYLE.get(run.state, "white")
        last = run.history[-1].__class__.__name__ if run.history else "-"
        console.print(
            f"{run.run_id}  [{style}]{run.state.value:<9}[/]  {elapsed * 1000:8.1f} ms  "
            f"{len(run.history):2d} steps  last {last}  trace {run.trace_id}"
            + (f"\n    [red]{escape(error)}[/]" if error else "")
        )
        done.append(run)
    return done


def _gate_handler(console: Console, interactive: bool) -> Any:
    """In a terminal, ask the person; elsewhere refuse at once with what to do instead."""

    def on_gate(gate: PendingGate) -> None:
        if not interactive:
            gate.abandon(
                GateError(
                    f"gate {gate.gate_id} of run {gate.run_id} needs an answer and no terminal "
                    f"is attached: run in a terminal or pass --auto-answer",
                    node=gate.node,
                )
            )
            return
        asyncio.get_running_loop().create_task(_ask(console, gate))

    return on_gate


async def _ask(console: Console, gate: PendingGate) -> None:
    hint = f"{gate.expected_type}" + (
        f", default {gate.gate.default!r}" if gate.gate.has_default else ""
    )
    while not gate.answered:
        raw = await asyncio.to_thread(input, f"[{gate.run_id}] {gate.prompt} ({hint}) > ")
        if not raw.strip() and gate.gate.has_default:
            value: Any = gate.gate.default
        else:
            value = _parse_answer(raw)
        try:
            gate.answer(value, by="prompt")
        except GateRefused as exc:
            console.print(f"[red]refused:[/] {escape(str(exc))}")


def _parse_answer(raw: str) -> Any:
    import json

    try:
        return json.loads(raw)
    except ValueError:
        return raw.strip()


def _summary(console: Console, results: list[Run], tracing: Tracing) -> None:
    counts: dict[str, int] = {}
    for run in results:
        counts[run.state.value] = counts.get(run.state.value, 0) + 1
    parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    files = tracing.files
    where = files[-1] if files else tracing.trace_dir
    console.print(f"\n{len(results)} run(s): {parts}")
    console.print(
        f"traces: {escape(str(where))}" + (f" (+{len(files) - 1} more)" if len(files) > 1 else "")
    )
    if tracing.lost_spans:
        console.print(f"[red]{tracing.lost_spans} span(s) could not be written[/]")
