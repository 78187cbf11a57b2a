"""``tail`` in a terminal: events scroll, the live panel and the gate prompt stay at the bottom.

The bottom of the screen is one prompt_toolkit prompt whose message is drawn afresh four times
a second: the runs in flight (each with the node it is in and its open spans, elapsed times
ticking), then the waiting gates, then the input line; its bottom toolbar is the bar with the
counts and the throughput. Everything else (runs starting and ending, failures, stall
snapshots with their call graph, a blocked event loop, gates) is printed with Rich through
``patch_stdout``, so it scrolls above the prompt without tearing it.

Ctrl-D leaves (exit 0), Ctrl-C leaves (exit 130); prompt_toolkit puts the terminal back either
way, and so does a cancel from outside.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import ANSI, FormattedText
from prompt_toolkit.patch_stdout import patch_stdout
from rich.console import Console, Group, RenderableType
from rich.text import Text

from graphtrace.control.client import ACCEPTED
from viewer.format import duration
from viewer.gate_prompt import GateBoard, Pick, gone, pick, send_answer
from viewer.live import runs_table, status_bar
from viewer.tail import TailEvent, TailState
from viewer.tail_feed import Feed
from viewer.tail_output import event_row, notable

__all__ = ["EXIT_INTERRUPTED", "TailScreen", "run_screen"]

EXIT_INTERRUPTED: Final = 130
REFRESH_S: Final = 0.25
_ROWS_PER_BATCH: Final = 40  # events printed per poll; more are counted in one line
_GATES_SHOWN: Final = 8


class TailScreen:
    """The terminal view of a :class:`TailState` (see the module doc).

    ``parse`` turns a typed answer into a value (JSON where it parses, else the text).
    """

    def __init__(
        self,
        state: TailState,
        trace_dir: Path,
        parse: Callable[[str], Any],
        *,
        where: str,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.state = state
        self.trace_dir = trace_dir
        self.parse = parse
        self.where = where
        self.clock = clock
        # no file: Rich writes to whatever sys.stdout is when it prints, the patched one
        self.console = Console(force_terminal=True, highlight=False)
        self.board = GateBoard()
        # the panel must not stay behind in the scrollback at every Enter: it is erased, and
        # the typed line is echoed on its own
        self.session: PromptSession[str] = PromptSession(erase_when_done=True)

    # -- output above the prompt ----------------------------------------------------------------

    def show(self, events: list[TailEvent]) -> None:
        """Print the notable events (see :func:`~viewer.tail_output.notable`), a batch at once;
        a flood is cut to the first rows and a count, gates always shown."""
        rows: list[RenderableType] = []
        left_out = 0
        for event in events:
            if not notable(event):
                continue
            if len(rows) < _ROWS_PER_BATCH or event.kind.startswith("gate"):
                rows.append(event_row(event))
            else:
                left_out += 1
        if left_out:
            rows.append(Text(f"… and {left_out} more events (the counts below include them)"))
        if rows:
            self.console.print(Group(*rows))

    def say(self, text: Text) -> None:
        """A line of tail's own (an outcome, a hint) above the prompt."""
        self.console.print(text)

    def warn(self, message: str) -> None:
        """A problem with the input (unreadable lines), said once, above the prompt."""
        self.say(Text(message, style="yellow"))

    # -- the prompt ---------------------------------------------------------------------------

    def _ansi(self, renderable: RenderableType, width: int) -> str:
        buffer = io.StringIO()
        console = Console(
            file=buffer, force_terminal=True, width=width, highlight=False, color_system="256"
        )
        console.print(renderable)
        return buffer.getvalue()

    def _message(self) -> ANSI:
        """The live panel, the waiting gates and the input line's label."""
        size = shutil.get_terminal_size()
        width = max(40, size.columns)
        now = self.clock()
        numbered = self.board.number(self.state.waiting_gates())
        gate_lines = self._gate_lines(numbered)
        budget = max(3, size.lines // 2 - len(gate_lines))
        table, _ = runs_table(self.state.model, now, max_runs=budget)
        lines = self._ansi(table, width).splitlines()
        if len(lines) > budget:
            lines = [*lines[:budget], "\x1b[2m  … more runs above the fold\x1b[0m"]
        label = "answer › " if numbered else "› "
        return ANSI("\n".join([*lines, *gate_lines, label]))

    def _gate_lines(self, numbered: list[tuple[int, Any]]) -> list[str]:
        if not numbered:
            return []
        now = self.clock()
        out: list[Text] = []
        for number, gate in numbered[:_GATES_SHOWN]:
            line = Text()
            line.append(f" {number}) ", style="bold yellow")
            line.append(f"run {gate.run_id} ", style="bold")
            line.append(gate.gate_id, style="yellow")
            line.append(f" — {gate.prompt} ")
            line.append(f"({gate.expected_type})", style="cyan")
            line.append(f" waiting {duration(int(gate.waited_s(now) * 1e9))}", style="dim")
            out.append(line)
        if len(numbered) > _GATES_SHOWN:
            out.append(Text(f"  … {len(numbered) - _GATES_SHOWN} more gates", style="dim"))
        hint = (
            "type the answer, Enter"
            if len(numbered) == 1
            else "answer with its number or gate id first: `2 true`, `Escalate.approved true`"
        )
        out.append(Text(f"  {hint}", style="dim"))
        width = max(40, shutil.get_terminal_size().columns)
        return self._ansi(Group(*out), width).splitlines()

    def _toolbar(self) -> ANSI:
        spans_s, runs_s = self.state.rates(time.monotonic())
        bar = status_bar(self.state.counts(), rate=spans_s)
        bar.append(f" · {runs_s:,.1f} runs/s", style="dim")
        bar.append(f" · {self.where} · Ctrl-D leaves", style="dim")
        width = max(40, shutil.get_terminal_size().columns)
        return ANSI(self._ansi(bar, width).rstrip("\n"))

    async def prompt_loop(self) -> int:
        """Read lines at the prompt and answer gates with them, until Ctrl-D or Ctrl-C."""
        while True:
            try:
                text = await self.session.prompt_async(
                    self._message,
                    bottom_toolbar=self._toolbar,
                    refresh_interval=REFRESH_S,
                    placeholder=self._placeholder,
                )
            except KeyboardInterrupt:
                return EXIT_INTERRUPTED
            except EOFError:
                return 0
            if text.strip():
                self.say(Text(f"› {text}", style="bold"))
            await self.handle(text)

    def _placeholder(self) -> FormattedText:
        if self.state.gates:
            return FormattedText([])
        return FormattedText([("class:placeholder fg:ansibrightblack", "no gate waiting")])

    async def handle(self, text: str) -> None:
        """Answer the gate a typed line names; say what came of it."""
        numbered = self.board.number(self.state.waiting_gates())
        if not text.strip() and not numbered:
            return
        choice = pick(text, numbered, self.parse)
        if not isinstance(choice, Pick):
            self.say(Text(choice.message, style="yellow"))
            return
        gate = choice.gate
        outcome = await send_answer(self.trace_dir, choice)
        where = f"{gate.gate_id} of run {gate.run_id}"
        if outcome.code == ACCEPTED:
            self.state.forget_gate_of(gate)  # not offered again while its end is on its way
            self.say(Text(f"✓ {where}: accepted {json.dumps(outcome.value)}", style="green"))
            return
        if gone(outcome):
            self.state.forget_gate_of(gate)
            self.say(Text(f"{where} waits no more: {outcome.message}", style="dim"))
            return
        # refused (not a valid value, …) or nobody to take it: the gate stays on offer
        self.say(Text(f"✗ refused for {where}: {outcome.message}", style="red"))


class _Leave(Exception):
    """One of the screen's tasks is done: the others stop, tail exits with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


async def _leave_after(work: Awaitable[int]) -> None:
    raise _Leave(await work)


async def run_screen(feed: Feed, screen: TailScreen) -> int:
    """Follow and prompt side by side until either is done (Ctrl-D, Ctrl-C, the run of
    ``--run`` ended); the other is cancelled and the terminal is left as it was."""
    code = 0
    with patch_stdout(raw=True):
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(_leave_after(feed.run()), name="graphtrace-tail-follow")
                tasks.create_task(_leave_after(screen.prompt_loop()), name="graphtrace-tail-prompt")
        except* _Leave as left:
            code = next(e.code for e in left.exceptions if isinstance(e, _Leave))
    return code
