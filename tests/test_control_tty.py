"""`graphtrace run` in a terminal (a pseudo-terminal here): it prompts inline for its own gates,
and a prompt whose gate is answered from another process goes away."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

from graphtrace.control.client import ACCEPTED, answer
from tests.control_support import GATED_GRAPH, wait_for_gates
from tests.otlp_validator import attributes, read_spans


class Terminal:
    """A process on a pseudo-terminal, its output collected by a thread."""

    def __init__(self, cwd: Path, *args: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.master = master
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graphtrace", *args],
            cwd=cwd,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            env={**os.environ, "GRAPHTRACE_DIR": "", "TERM": "xterm", "COLUMNS": "120"},
        )
        os.close(slave)
        self.output = b""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                if self.proc.poll() is not None:
                    return
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the other side closed (EIO)
                return
            if not data:
                return
            with self._lock:
                self.output += data
            if b"\x1b[6n" in data:  # prompt_toolkit asks where the cursor is
                os.write(self.master, b"\x1b[1;1R")

    def wait_for(self, text: str, *, after: int = 0, timeout: float = 20.0) -> int:
        """Wait until ``text`` appears past offset ``after``; returns the offset after it."""
        needle = text.encode()
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = self.output.find(needle, after)
            if found >= 0:
                return found + len(needle)
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{text!r} never appeared in:\n{self.output[-3000:]!r}")
            time.sleep(0.02)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=5)
        os.close(self.master)


def test_terminal_prompts_inline_and_drops_a_prompt_answered_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "gated.py").write_text(GATED_GRAPH)
    term = Terminal(tmp_path, "run", "gated.py:graph", "--trace-dir", "tr")
    trace_dir = tmp_path / "tr"
    try:
        (gate,) = wait_for_gates(trace_dir, 1)
        run = gate.run_id
        at = term.wait_for(f"[{run}] Approve the refund? (bool) >")
        # answered from another process: the prompt goes away and says so
        assert answer(trace_dir, run, None, True).code == ACCEPTED
        at = term.wait_for(f"Review.approved of run {run} was answered (socket)", after=at)
        # Note's two gates are asked one after the other; a refused value asks again
        at = term.wait_for("Note for the customer? (str) >", after=at)
        term.type("hello\r")
        at = term.wait_for("Priority? (int, Enter for 3) >", after=at)
        term.type("lots\r")
        at = term.wait_for("refused:", after=at)
        at = term.wait_for("Priority? (int, Enter for 3) >", after=at)
        term.type("\r")
        term.wait_for("1 runs, 2 steps", after=at)
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
    answers = {
        s["name"]: (a["graphtrace.gate.answer"], a["graphtrace.gate.answered_by"])
        for s in read_spans(trace_dir)
        if s["name"].startswith("gate ") and "graphtrace.gate.answer" in (a := attributes(s))
    }
    assert answers == {
        "gate Review.approved": ("true", "socket"),
        "gate Note.text": ('"hello"', "prompt"),
        "gate Note.priority": ("3", "prompt"),
    }
