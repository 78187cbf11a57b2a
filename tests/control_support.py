"""Helpers for the gates-across-processes tests: a `graphtrace run` in the background and
waiting for its gates through the trace files, as a second process would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from exporters.reading.source import TraceSource
from graphtrace.control.discovery import WaitingGate, waiting_gates

# Review waits for one answer; Note then waits at two gates at once (one with a default).
GATED_GRAPH = """
from typing import Annotated
from graphtrace import Gate, Graph, Node

class Note(Node):
    text: Annotated[str, Gate("Note for the customer?")]
    priority: Annotated[int, Gate("Priority?", default=3)]
    async def __call__(self) -> None: ...

class Review(Node):
    ticket: str = "refund"
    approved: Annotated[bool, Gate("Approve the refund?")]
    async def __call__(self) -> Note: ...

graph = Graph(start=Review, name="gated")
"""

TIMED_GRAPH = """
from typing import Annotated
from graphtrace import Gate, Graph, Node

class Strict(Node):
    sure: Annotated[bool, Gate("Really?", timeout=1.0)]
    async def __call__(self) -> None: ...

class Lenient(Node):
    name: Annotated[str, Gate("Name?", default="anon", timeout=1.0)]
    async def __call__(self) -> Strict: ...

graph = Graph(start=Lenient, name="timed")
"""


class Runtime:
    """``graphtrace run TARGET ...`` without a terminal (stdout a pipe), read by a thread."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graphtrace", "run", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "GRAPHTRACE_DIR": ""},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, prefix: str, timeout: float = 15.0) -> str:
        """The first output line starting with ``prefix``, once it is there."""
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.lines):
                if line.startswith(prefix):
                    return line
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"no line starting {prefix!r} in:\n{self.output}")
            time.sleep(0.02)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)


def gates_in(trace_dir: Path) -> list[WaitingGate]:
    """The waiting gates, read from the trace files like `graphtrace gates` does."""
    if not trace_dir.is_dir():
        return []
    with TraceSource(trace_dir) as source:
        return waiting_gates(source)


def wait_for_gates(
    trace_dir: Path,
    count: int,
    *,
    run_id: str | None = None,
    gate_id: str | None = None,
    timeout: float = 30.0,
) -> list[WaitingGate]:
    """Poll the trace files until at least ``count`` gates (of ``run_id``, named ``gate_id``)
    wait."""
    deadline = time.monotonic() + timeout
    while True:
        gates = [
            g
            for g in gates_in(trace_dir)
            if (run_id is None or g.run_id == run_id) and (gate_id is None or g.gate_id == gate_id)
        ]
        if len(gates) >= count:
            return gates
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(gates)} gate(s) waiting after {timeout}s, not {count}")
        time.sleep(0.05)


def wait_until_gone(trace_dir: Path, run_id: str, gate_id: str, timeout: float = 10.0) -> None:
    """Poll until the trace files no longer show that gate waiting (its final span is in)."""
    deadline = time.monotonic() + timeout
    while any(g.run_id == run_id and g.gate_id == gate_id for g in gates_in(trace_dir)):
        if time.monotonic() > deadline:
            raise AssertionError(f"gate {gate_id} of run {run_id} still waits after {timeout}s")
        time.sleep(0.05)
