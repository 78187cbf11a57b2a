"""What `graphtrace run` shows: a live Rich view in a terminal, a line per run elsewhere."""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from graphtrace.pool import RunHandle, RunPool
from graphtrace.run import RunState

STATE_STYLES = {
    RunState.PENDING: "dim",
    RunState.RUNNING: "cyan",
    RunState.WAITING: "magenta",
    RunState.COMPLETED: "green",
    RunState.FAILED: "red",
    RunState.CANCELLED: "yellow",
    RunState.TIMED_OUT: "red",
}


@dataclass
class Failure:
    """A run that did not complete, or an input line that could not become a run."""

    label: str
    state: RunState
    message: str


@dataclass
class RunTally:
    """Everything the view and the summary need, kept small however many runs pass through."""

    started: float = field(default_factory=time.monotonic)
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    failures: deque[Failure] = field(default_factory=lambda: deque(maxlen=200))
    finished: dict[RunState, int] = field(default_factory=lambda: dict.fromkeys(RunState, 0))
    steps: int = 0
    rejected: int = 0  # input lines that never became a run

    def record(self, handle: RunHandle) -> None:
        run = handle.run
        self.finished[run.state] += 1
        self.steps += len(run.history)
        if run.duration is not None:
            self.durations.append(run.duration)
        if run.state is not RunState.COMPLETED:
            self.failures.append(Failure(run.run_id, run.state, describe_error(run.error)))

    def reject(self, label: str, message: str) -> None:
        self.rejected += 1
        self.finished[RunState.FAILED] += 1
        self.failures.append(Failure(label, RunState.FAILED, message))

    @property
    def done(self) -> int:
        return sum(self.finished.values())

    @property
    def all_completed(self) -> bool:
        return self.done == self.finished[RunState.COMPLETED]

    def percentile(self, q: float) -> float | None:
        if not self.durations:
            return None
        if len(self.durations) == 1:
            return self.durations[0]
        return statistics.quantiles(self.durations, n=100, method="inclusive")[int(q) - 1]

    def throughput(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0


def describe_error(error: BaseException | None) -> str:
    if error is None:
        return ""
    text = str(error)
    return (
        text
        if type(error).__module__.startswith("graphtrace")
        else f"{type(error).__name__}: {text}"
    )


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"


def live_view(tally: RunTally, pool: RunPool, total: int) -> RenderableType:
    """The live panel: counts per state, throughput, p50/p95, waiting gates, latest failures."""
    active = pool.active
    waiting = [h for h in active if h.state is RunState.WAITING]
    counts = {
        RunState.PENDING: pool.queued,
        RunState.RUNNING: len(active) - len(waiting),
        RunState.WAITING: len(waiting),
        **{s: n for s, n in tally.finished.items() if s.finished},
    }
    states = Text()
    for state, n in counts.items():
        states.append(f"{state.value} ", style=STATE_STYLES[state])
        states.append(f"{n:,}   ", style="bold")
    stats = Text(
        f"{tally.done:,}/{total:,} done   {tally.throughput():,.1f} runs/s   "
        f"p50 {_ms(tally.percentile(50))}   p95 {_ms(tally.percentile(95))}",
        style="dim",
    )
    parts: list[RenderableType] = [states, stats]
    for handle in waiting[:5]:
        for gate in handle.waiting_gates:
            parts.append(
                Text.from_markup(
                    f"[magenta]waiting[/] {handle.run_id} {escape(gate.gate_id)}: "
                    f"{escape(gate.prompt)} ({escape(gate.expected_type)})"
                )
            )
    for failure in list(tally.failures)[-5:]:
        parts.append(
            Text.from_markup(
                f"[{STATE_STYLES[failure.state]}]{failure.state.value}[/] {escape(failure.label)}: "
                f"{escape(failure.message[:160])}"
            )
        )
    return Group(*parts)


def run_line(handle: RunHandle) -> str:
    """One plain line for a finished run, for logs and pipes."""
    run = handle.run
    last = run.history[-1].__class__.__name__ if run.history else "-"
    line = (
        f"{run.run_id}  {run.state.value:<9}  {_ms(run.duration):>10}  "
        f"{len(run.history):2d} steps  last {last}  trace {run.trace_id or '-'}"
    )
    if run.state is not RunState.COMPLETED:
        line += f"\n    {describe_error(run.error)}"
    return line


def print_summary(console: Console, tally: RunTally, where: str, lost: int) -> None:
    """The closing table and where the traces are."""
    table = Table(title="graphtrace run", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("state")
    table.add_column("runs", justify="right")
    for state, n in tally.finished.items():
        if n:
            table.add_row(Text(state.value, style=STATE_STYLES[state]), f"{n:,}")
    elapsed = time.monotonic() - tally.started
    console.print(table)
    console.print(
        f"{tally.done:,} runs, {tally.steps:,} steps in {elapsed:.2f} s "
        f"({tally.done / elapsed if elapsed else 0:,.1f} runs/s); "
        f"run time p50 {_ms(tally.percentile(50))}, p95 {_ms(tally.percentile(95))}"
    )
    shown = [f for f in tally.failures][-10:]
    if shown:
        console.print(
            f"latest failures ({len(shown)} of {tally.done - tally.finished[RunState.COMPLETED]}):"
        )
        for failure in shown:
            console.print(
                f"  [{STATE_STYLES[failure.state]}]{failure.state.value}[/] "
                f"{escape(failure.label)}: {escape(failure.message)}"
            )
    console.print(f"traces: {escape(where)}")
    if lost:
        console.print(f"[red]{lost:,} span(s) could not be written to the trace files[/]")
