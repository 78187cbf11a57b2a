"""``graphtrace run TARGET``: many runs through a RunPool, traced, with a live view."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from prompt_toolkit import PromptSession
from prompt_toolkit.patch_stdout import patch_stdout
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from exporters.forwarding.endpoint import EndpointError
from graphtrace.cli.app import DEFAULT_DIR, DebugOption, TraceDirOption, app, error_boundary
from graphtrace.cli.errors import CLIError
from graphtrace.cli.run_view import RunTally, live_view, print_summary, run_line
from graphtrace.cli.target import load_graph, parse_inputs
from graphtrace.errors import GateRefused, InputError
from graphtrace.gates import PendingGate
from graphtrace.graph import Graph
from graphtrace.lm.fake import FakeLM
from graphtrace.lm.protocol import LM
from graphtrace.lm.specs import lm_from_spec
from graphtrace.pool import RunPool
from tracing.setup import configure, default_trace_dir

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
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            "--otlp-endpoint",
            help="Also forward the spans over OTLP/HTTP to this collector or backend "
            "(http://host:4318, or the full /v1/traces URL); default "
            "OTEL_EXPORTER_OTLP_ENDPOINT. The trace files get every span regardless.",
            show_default=False,
        ),
    ] = None,
    stall_after: Annotated[
        float | None,
        typer.Option(
            "--stall-after",
            min=0.001,
            help="Seconds a node, dep or LLM call may stay open before its stall snapshot (the "
            "task's async call graph) is written; default GRAPHTRACE_STALL_AFTER, else per kind.",
            show_default=False,
        ),
    ] = None,
    trace_dir: TraceDirOption = DEFAULT_DIR,
    debug: DebugOption = False,
) -> None:
    """Run TARGET, traced to --trace-dir; exit 0 when every run completed, 1 otherwise.

    In a terminal a live view shows the runs by state, throughput, p50/p95 run time, waiting
    gates and the latest failures; elsewhere each finished run is one line. Ctrl-C cancels every
    run, closes its spans as cancelled and exits 130.

    Gates: in a terminal you are asked inline, one gate at a time; without one, each waiting gate
    is announced once with the `graphtrace answer` command that answers it. Either way `graphtrace
    answer` and `tail` can answer from another terminal; --auto-answer takes every default.

    Examples:

      graphtrace run graphtrace.demo:graph --auto-answer --runs 1000 --max-lm-calls 20

      graphtrace run my_graph.py:graph --inputs tickets.jsonl --timeout 30
    """
    graph = load_graph(target)
    base_inputs = parse_inputs(inputs or [])
    if inputs_file is not None and runs != 1:
        raise CLIError("--runs and --inputs do not mix: --inputs makes one run per line")
    jobs = list(_jobs(graph, base_inputs, inputs_file, runs))
    try:
        tracing = configure(trace_dir, otlp_endpoint=otlp_endpoint, stall_after=stall_after)
    except (EndpointError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    console = Console(highlight=False, soft_wrap=True)
    try:
        lm = lm_from_spec(lm_spec, seed=seed)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"--lm: {exc}") from None
    settings = _Settings(max_runs, max_lm_calls, timeout, auto_answer, lm)
    tally = RunTally()
    code = 0
    try:
        asyncio.run(_run_all(graph, jobs, settings, tally, console, tracing.trace_dir))
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except _Terminated:
        code = EXIT_TERMINATED
    forwarded = tracing.finish_forwarding()  # first: what it lost is written to the file
    tracing.flush()
    files = tracing.files
    where = str(files[-1] if files else tracing.trace_dir)
    if len(files) > 1:
        where += f" (+{len(files) - 1} more)"
    print_summary(console, tally, where, tracing.lost_spans)
    for report in forwarded:
        style = "red" if report.lost else "dim"
        console.print(f"[{style}]{escape(report.summary(tracing.trace_dir))}[/]")
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
    graph: Graph,
    jobs: list[_Job],
    settings: _Settings,
    tally: RunTally,
    console: Console,
    trace_dir: Path,
) -> None:
    interactive = console.is_terminal
    asker = _GateAsker(console, trace_dir) if interactive and not settings.auto_answer else None
    on_gate = None
    if asker is not None:
        on_gate = asker.ask
    elif not settings.auto_answer:
        # no terminal to ask in: the gates wait for `graphtrace answer` or `tail`
        on_gate = _Announcer(console, trace_dir).announce
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


def answer_command(gate: PendingGate, trace_dir: Path) -> str:
    """The shell command that answers ``gate`` from elsewhere (``VALUE`` left to fill in)."""
    command = f"graphtrace answer {gate.run_id} {shlex.quote(gate.gate_id)} VALUE"
    if trace_dir.resolve() != default_trace_dir().resolve():
        command += f" --trace-dir {shlex.quote(str(trace_dir))}"
    return command


class _Announcer:
    """Without a terminal: say once per gate how to answer it from another process."""

    def __init__(self, console: Console, trace_dir: Path) -> None:
        self.console = console
        self.trace_dir = trace_dir

    def announce(self, gate: PendingGate) -> None:
        self.console.print(
            escape(
                f"run {gate.run_id} waits at gate {gate.gate_id}: answer it with  "
                f"{answer_command(gate, self.trace_dir)}"
            )
        )


class _GateAsker:
    """Asks the person at the terminal, one gate at a time, pausing the live view meanwhile.

    The prompt is prompt_toolkit's, on the event loop (no thread stuck in ``input()``), so a
    gate answered elsewhere (``graphtrace answer``, ``tail``, its timeout) takes its prompt
    away at once.
    """

    def __init__(self, console: Console, trace_dir: Path) -> None:
        self.console = console
        self.trace_dir = trace_dir
        self.live: Live | None = None
        self._queue: asyncio.Queue[PendingGate] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._session: PromptSession[str] | None = None

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
                _forget_drawing(self.live)
            try:
                await self._ask_one(gate)
                while not self._queue.empty():  # gates that queued meanwhile: ask on
                    gate = self._queue.get_nowait()
                    if not gate.answered:
                        await self._ask_one(gate)
            finally:
                if self.live is not None:
                    self.live.start(refresh=True)

    async def _ask_one(self, gate: PendingGate) -> None:
        if self._session is None:
            self._session = PromptSession()
        session = self._session
        default = gate.gate.default if gate.gate.has_default else None
        hint = gate.expected_type + (f", Enter for {default!r}" if gate.gate.has_default else "")
        message = f"[{gate.run_id}] {gate.prompt} ({hint}) > "
        while not gate.answered:
            raw = await self._prompt(session, message, gate)
            if raw is None:  # answered elsewhere, or the person declined to answer here
                return
            value: Any = default if (not raw.strip() and gate.gate.has_default) else _parse(raw)
            try:
                gate.answer(value, by="prompt")
            except GateRefused as exc:
                if not gate.answered:
                    self.console.print(f"[red]refused:[/] {escape(str(exc))}")

    async def _prompt(
        self, session: PromptSession[str], message: str, gate: PendingGate
    ) -> str | None:
        """A line typed for ``gate``, or None once the gate stops waiting or input ends."""
        with patch_stdout(raw=True):
            typed = asyncio.ensure_future(session.prompt_async(message))
            settled = asyncio.ensure_future(gate.settled())
            try:
                await asyncio.wait({typed, settled}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (typed, settled):
                    task.cancel()
                # both end before the terminal is handed back (cancelling only asks)
                await asyncio.gather(typed, settled, return_exceptions=True)
        if not typed.cancelled() and typed.exception() is None:
            return typed.result()
        if gate.answered:
            by = gate.answered_by or "elsewhere"
            self.console.print(
                f"[dim]{escape(gate.gate_id)} of run {gate.run_id} was answered ({by})[/]"
            )
            return None
        error = typed.exception() if not typed.cancelled() else None
        if isinstance(error, KeyboardInterrupt):
            # the terminal is raw while prompting, so Ctrl-C arrives as a key: turn it back
            # into the signal, which cancels every run like Ctrl-C elsewhere
            signal.raise_signal(signal.SIGINT)
            return None
        if isinstance(error, EOFError):
            self.console.print(
                f"not answered here; answer it with  {escape(answer_command(gate, self.trace_dir))}"
            )
            return None
        if error is not None:
            raise error
        return None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _forget_drawing(live: Live) -> None:
    """Make a stopped Live draw afresh below what was printed since, not over it.

    A Live remembers how tall its last drawing was and, on its next one, moves up that many
    lines and erases them, taking them for its own; a transient Live's ``stop()`` has already
    erased them, so after a prompt it would erase the prompt lines instead. Rich has no public
    way to say so; its render's ``_shape`` is what it remembers.
    """
    render = getattr(live, "_live_render", None)
    if render is not None and hasattr(render, "_shape"):
        render._shape = None


def _parse(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.strip()
