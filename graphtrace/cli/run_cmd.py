"""``graphtrace run TARGET``: many runs through a RunPool, traced, with a live view."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from graphtrace.cli.app import DEFAULT_DIR, DebugOption, TraceDirOption, app, error_boundary
from graphtrace.cli.errors import CLIError
from graphtrace.cli.run_view import RunTally, live_view, print_summary, run_line
from graphtrace.cli.target import load_graph, parse_inputs
from graphtrace.errors import GateError, GateRefused, InputError
from graphtrace.gates import PendingGate
from graphtrace.graph import Graph
from graphtrace.lm.fake import FakeLM
from graphtrace.lm.protocol import LM
from graphtrace.lm.specs import lm_from_spec
from graphtrace.pool import RunPool
from tracing.setup import configure

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


@app.command("run")
@error_boundary
def run_command(
    target: Annotated[str, typer.Argument(help="module:attr or path.py:attr naming a Graph.")],
    inputs: Annotated[
        list[str] | None,
        typer.Option("-i", "--input", help="A start input KEY=VALUE (VALUE as JSON, else text)."),
    ] = None,
    inputs_file: Annotated[
        Path | None,
        typer.Option(
            "--inputs",
            help="A JSONL file: one run per line, each line an object of start inputs "
            "(-i values apply to every line; the line wins).",
        ),
    ] = None,
    runs: Annotated[
        int, typer.Option("--runs", min=1, help="How many runs (of the -i inputs).")
    ] = 1,
    max_runs: Annotated[
        int, typer.Option("--max-runs", min=1, help="Runs in flight at once; the rest queue.")
    ] = 100,
    max_lm_calls: Annotated[
        int | None,
        typer.Option("--max-lm-calls", min=1, help="LM calls in flight at once across all runs."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0.001, help="Seconds a run may take before it times out."),
    ] = None,
    auto_answer: Annotated[
        bool, typer.Option("--auto-answer", help="Answer every gate with its default.")
    ] = False,
    lm_spec: Annotated[
        str,
        typer.Option(
            "--lm",
            help="The model: 'fake' (offline, the default), 'fake:SEED' or 'openai:MODEL' "
            "(OPENAI_BASE_URL, OPENAI_API_KEY).",
        ),
    ] = "fake",
    seed: Annotated[int, typer.Option("--seed", help="FakeLM seed of the first run.")] = 0,
    trace_dir: TraceDirOption = DEFAULT_DIR,
    debug: DebugOption = False,
) -> None:
    """Run TARGET, traced to --trace-dir; exit 0 when every run completed, 1 otherwise.

    In a terminal a live view shows the runs by state, throughput, p50/p95 run time, waiting
    gates and the latest failures; elsewhere each finished run is one line. Ctrl-C cancels every
    run, closes its spans as cancelled and exits 130.

    Examples:

      graphtrace run graphtrace.demo:graph --auto-answer --runs 1000 --max-lm-calls 20

      graphtrace run my_graph.py:graph --inputs tickets.jsonl --timeout 30
    """
    graph = load_graph(target)
    base_inputs = parse_inputs(inputs or [])
    if inputs_file is not None and runs != 1:
        raise CLIError("--runs and --inputs do not mix: --inputs makes one run per line")
    jobs = list(_jobs(graph, base_inputs, inputs_file, runs))
    tracing = configure(trace_dir)
    console = Console(highlight=False, soft_wrap=True)
    try:
        lm = lm_from_spec(lm_spec, seed=seed)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"--lm: {exc}") from None
    settings = _Settings(max_runs, max_lm_calls, timeout, auto_answer, lm)
    tally = RunTally()
    code = 0
    try:
        asyncio.run(_run_all(graph, jobs, settings, tally, console))
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except _Terminated:
        code = EXIT_TERMINATED
    tracing.flush()
    files = tracing.files
    where = str(files[-1] if files else tracing.trace_dir)
    if len(files) > 1:
        where += f" (+{len(files) - 1} more)"
    print_summary(console, tally, where, tracing.lost_spans)
    if code:
        console.print("[yellow]interrupted[/]: every run still going was cancelled")
        raise typer.Exit(code)
    raise typer.Exit(0 if tally.all_completed else 1)


class _Settings:
    def __init__(
        self,
        max_runs: int,
        max_lm_calls: int | None,
        timeout: float | None,
        auto_answer: bool,
        lm: LM,
    ) -> None:
        self.max_runs = max_runs
        self.max_lm_calls = max_lm_calls
        self.timeout = timeout
        self.auto_answer = auto_answer
        self.lm = lm

    def lm_for(self, index: int) -> LM:
        """The LM of the index-th run: FakeLM varies its seed per run, a real one is shared."""
        if isinstance(self.lm, FakeLM):
            return FakeLM(seed=self.lm.seed + index)
        return self.lm


class _Job:
    """One run to start: its inputs, or why its input line cannot be one."""

    __slots__ = ("error", "inputs", "label")

    def __init__(self, label: str, inputs: dict[str, Any] | None, error: str | None = None):
        self.label = label
        self.inputs = inputs
        self.error = error


def _jobs(
    graph: Graph, base: dict[str, Any], inputs_file: Path | None, runs: int
) -> Iterator[_Job]:
    if inputs_file is None:
        checked = graph.check_inputs(base)  # bad -i values: one clear line, exit 2
        for _ in range(runs):
            yield _Job("", checked)
        return
    try:
        handle = inputs_file.open(encoding="utf-8")
    except OSError as exc:
        raise CLIError(f"cannot read --inputs {inputs_file}: {exc.strerror or exc}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            label = f"{inputs_file}:{number}"
            try:
                values = json.loads(line)
            except ValueError as exc:
                yield _Job(label, None, f"not JSON: {exc}")
                continue
            if not isinstance(values, dict):
                yield _Job(label, None, f"expected a JSON object, got {type(values).__name__}")
                continue
            try:
                yield _Job(label, graph.check_inputs({**base, **values}))
            except InputError as exc:
                yield _Job(label, None, str(exc))


class _Terminated(Exception):
    """SIGTERM arrived: the runs were cancelled like on Ctrl-C."""


async def _run_all(
    graph: Graph, jobs: list[_Job], settings: _Settings, tally: RunTally, console: Console
) -> None:
    interactive = console.is_terminal
    asker = _GateAsker(console) if interactive and not settings.auto_answer else None
    on_gate = None
    if asker is not None:
        on_gate = asker.ask
    elif not settings.auto_answer:
        on_gate = _refuse_without_terminal
    pool = RunPool(
        lm=settings.lm,
        max_runs=settings.max_runs,
        max_lm_calls=settings.max_lm_calls,
        run_timeout=settings.timeout,
        auto_answer=settings.auto_answer,
        on_gate=on_gate,
        history=settings.max_runs * 4,
    )
    async with _on_sigterm(), pool:
        feeder = asyncio.create_task(_feed(pool, graph, jobs, settings, tally))
        try:
            with _live(console, interactive, tally, pool, len(jobs)) as live:
                if asker is not None:
                    asker.live = live
                while True:
                    async for handle in pool.as_completed():
                        tally.record(handle)
                        if not interactive:
                            console.print(escape(run_line(handle)))
                    if feeder.done() and pool.idle:
                        break
                    # idle only until the feeder submits more
                    await asyncio.wait({feeder}, timeout=0.01)
                await feeder
        finally:
            feeder.cancel()
            if asker is not None:
                await asker.close()


async def _feed(
    pool: RunPool, graph: Graph, jobs: list[_Job], settings: _Settings, tally: RunTally
) -> None:
    """Submit every job, keeping the queue short so memory stays flat for huge input files."""
    for index, job in enumerate(jobs):
        if job.inputs is None:
            tally.reject(job.label, job.error or "bad input")
            continue
        await pool.room(settings.max_runs)
        pool.submit(graph, lm=settings.lm_for(index), **job.inputs)


@contextlib.contextmanager
def _live(
    console: Console, interactive: bool, tally: RunTally, pool: RunPool, total: int
) -> Iterator[Live | None]:
    if not interactive:
        yield None
        return

    class _View:
        def __rich__(self) -> Any:
            return live_view(tally, pool, total)

    with Live(_View(), console=console, refresh_per_second=4, transient=True) as live:
        yield live


@contextlib.asynccontextmanager
async def _on_sigterm() -> AsyncIterator[None]:
    """SIGTERM cancels the runs like Ctrl-C does (then the command exits 143)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, terminate)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        yield
        return
    try:
        yield
    except asyncio.CancelledError:
        if terminated:
            raise _Terminated() from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _refuse_without_terminal(gate: PendingGate) -> None:
    gate.abandon(
        GateError(
            f"gate {gate.gate_id} of run {gate.run_id} needs an answer and no terminal is "
            f"attached: run in a terminal or pass --auto-answer",
            node=gate.node,
        )
    )


class _GateAsker:
    """Asks the person at the terminal, one gate at a time, pausing the live view meanwhile."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        self._queue: asyncio.Queue[PendingGate] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def ask(self, gate: PendingGate) -> None:
        self._queue.put_nowait(gate)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        while True:
            gate = await self._queue.get()
            if gate.answered:
                continue
            if self.live is not None:
                self.live.stop()
            try:
                await self._ask_one(gate)
            finally:
                if self.live is not None:
                    self.live.start()

    async def _ask_one(self, gate: PendingGate) -> None:
        default = gate.gate.default if gate.gate.has_default else None
        hint = gate.expected_type + (f", Enter for {default!r}" if gate.gate.has_default else "")
        while not gate.answered:
            raw = await asyncio.to_thread(input, f"[{gate.run_id}] {gate.prompt} ({hint}) > ")
            value: Any = default if (not raw.strip() and gate.gate.has_default) else _parse(raw)
            try:
                gate.answer(value, by="prompt")
            except GateRefused as exc:
                if not gate.answered:
                    self.console.print(f"[red]refused:[/] {escape(str(exc))}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _parse(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.strip()
