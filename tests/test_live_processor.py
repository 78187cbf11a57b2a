"""The live processor: back-pressure, counted losses, and files that survive kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

from tests.otlp_validator import attributes, read_spans
from tracing.live import LiveSpanProcessor
from tracing.provider import LeanTracerProvider


class SlowWriter:
    """Takes a while per write and remembers the largest queue it saw."""

    def __init__(self) -> None:
        self.path = Path("slow")
        self.paths: list[Path] = []
        self.lines: list[str] = []
        self.gate = threading.Event()

    def write_lines(self, lines: Sequence[str]) -> None:
        self.gate.wait(0.02)
        self.lines.extend(lines)

    def close(self) -> None:
        pass


class BrokenWriter:
    def __init__(self) -> None:
        self.path = Path("/nowhere/traces.jsonl")
        self.paths: list[Path] = []

    def write_lines(self, lines: Sequence[str]) -> None:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def _spans(processor: LiveSpanProcessor, count: int) -> int:
    provider = LeanTracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    most = 0
    for i in range(count):
        tracer.start_span("s", attributes={"i": i}).end()
        most = max(most, processor.queued)
    return most


def test_a_slow_writer_holds_the_producer_back_and_loses_nothing() -> None:
    writer = SlowWriter()
    live = LiveSpanProcessor(writer, flush_interval=0.005, max_queue=500)  # type: ignore[arg-type]
    most = _spans(live, 5_000)
    assert live.force_flush(30_000)
    live.shutdown()
    assert most <= 500 + 1, f"the queue grew to {most} past its bound"
    assert live.lost == 0 and live.written == 10_000
    total = sum(line.count('"spanId"') for line in writer.lines)
    assert total == 10_000


def test_spans_the_disk_refuses_are_counted_and_reported(caplog: object) -> None:
    live = LiveSpanProcessor(BrokenWriter(), flush_interval=0.005)  # type: ignore[arg-type]
    _spans(live, 100)
    live.force_flush(10_000)
    live.shutdown()
    assert live.lost == 200 and live.written == 0
    messages = [r.getMessage() for r in caplog.records]  # type: ignore[attr-defined]
    assert sum("could not write spans" in m for m in messages) == 1  # reported once


SLOW_GRAPH = """
import asyncio
from typing import Annotated
from graphtrace import Dep, Graph, Node

async def forever() -> int:
    await asyncio.sleep(3600)
    return 1

class Stuck(Node):
    value: Annotated[int, Dep(forever)]
    async def __call__(self) -> None: ...

graph = Graph(start=Stuck)
"""


def test_kill_9_leaves_a_file_whose_lines_all_parse(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW_GRAPH)
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphtrace", "run", "slow.py:graph", "--trace-dir", "tr"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        names: set[str] = set()
        while time.monotonic() < deadline and "dep forever" not in names:
            time.sleep(0.05)
            if list((tmp_path / "tr").glob("*.jsonl")):
                names = {s["name"] for s in read_spans(tmp_path / "tr", allow_torn_tail=True)}
        assert "dep forever" in names, "the pending record of the open dep never reached the file"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    spans = read_spans(tmp_path / "tr", allow_torn_tail=True)
    pending = {s["name"] for s in spans if attributes(s).get("graphtrace.pending")}
    assert {"run Stuck", "node Stuck", "dep forever"} <= pending
    assert not [s for s in spans if not attributes(s).get("graphtrace.pending")]


def test_written_spans_are_released_as_new_spans_start_and_at_shutdown() -> None:
    writer = SlowWriter()
    processor = LiveSpanProcessor(writer, flush_interval=0.01)  # type: ignore[arg-type]
    provider = LeanTracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    first = [tracer.start_span("first", attributes={"i": i}) for i in range(50)]
    for span in first:
        span.end()
    alive = [weakref.ref(span) for span in first]
    del first, span
    assert processor.force_flush()
    assert sum(ref() is not None for ref in alive) == 50  # written, kept for the loop to free
    for i in range(50):
        tracer.start_span("second", attributes={"i": i}).end()  # each start frees one
    assert sum(ref() is not None for ref in alive) == 0
    assert processor.force_flush()
    processor.shutdown()
    assert not processor._released
    assert len(writer.lines) >= 2 and processor.written == 200 and processor.lost == 0
