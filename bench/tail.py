"""``graphtrace tail`` under load: how soon a span's end is on screen, and whether it keeps up.

A writer process appends OTLP JSON lines to a trace file the way graphtrace's writer
does (the real encoder, one line per write, pending records at a span's start and the final
span at its end) at a steady 20,000 spans/s for 10 s: every 20 ms it starts a batch of runs
(a ``run`` span and four ``dep`` spans each, pending records for all five) and ends the batch
it started 20 ms before (the four deps and the run, final spans). ``graphtrace tail`` follows
the directory in line mode (its stdout a pipe read by this process).

Latency: for every ``dep`` span, the moment its end line was read from tail's stdout minus the
moment the line holding its end was written to the file (both on the monotonic clock, which
is system-wide). Target: p99 <= 250 ms. Keeping up: every end arrives, and tail is done with the
last one soon after the writer stops. Memory: tail's resident set (``/proc/PID/status``) sampled
every 0.5 s; flat means the last second's RSS is within 10% of the RSS after the first two
seconds; the peak (``VmHWM``) is reported.

    python bench/tail.py [--quick] [--rate SPANS_PER_S] [--seconds S]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from bench.common import machine
from exporters.file import JsonlFileWriter
from exporters.otlp_json import PendingSpan, encode_batch

LATENCY_TARGET_S = 0.25
TICK_S = 0.02
DEPS = 4  # per run; a run is 1 + DEPS spans
RESOURCE = Resource({"service.name": "bench-tail"})
SCOPE = InstrumentationScope("graphtrace")
SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def context(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=SAMPLED)


class Run:
    """One run of the load: ids, start time, the sequence numbers of its deps."""

    __slots__ = ("deps", "root", "run_id", "start", "trace")

    def __init__(self, number: int, start: int) -> None:
        self.trace = random.getrandbits(128) or 1
        self.root = random.getrandbits(64) or 1
        self.run_id = f"b{number:011x}"
        self.start = start
        self.deps = [(number * DEPS + i, random.getrandbits(64) or 1) for i in range(DEPS)]


def started(run: Run) -> list[PendingSpan]:
    attributes = {"graphtrace.run.id": run.run_id, "graphtrace.graph": "bench"}
    out = [PendingSpan("run bench", run.trace, run.root, run.start, attributes, 1, RESOURCE, SCOPE)]
    for seq, span_id in run.deps:
        out.append(
            PendingSpan(
                f"dep d{seq}", run.trace, span_id, run.start, {}, 1, RESOURCE, SCOPE, run.root
            )
        )
    return out


def ended(run: Run, end: int) -> list[ReadableSpan]:
    root = context(run.trace, run.root)
    out = [
        ReadableSpan(
            name=f"dep d{seq}",
            context=context(run.trace, span_id),
            parent=root,
            resource=RESOURCE,
            attributes={"graphtrace.dep.cached": False},
            kind=SpanKind.INTERNAL,
            start_time=run.start,
            end_time=end,
            instrumentation_scope=SCOPE,
        )
        for seq, span_id in run.deps
    ]
    out.append(
        ReadableSpan(
            name="run bench",
            context=root,
            parent=None,
            resource=RESOURCE,
            attributes={
                "graphtrace.run.id": run.run_id,
                "graphtrace.graph": "bench",
                "graphtrace.run.status": "completed",
            },
            kind=SpanKind.INTERNAL,
            start_time=run.start,
            end_time=end,
            instrumentation_scope=SCOPE,
        )
    )
    return out


class Reader:
    """Reads tail's stdout: when each dep's end line arrived.

    The pipe is read in whole chunks, each timed once: every line in a chunk was there when it
    was read (timing line by line would add this reader's own pace to tail's), and a chunk costs
    this process, which shares the cores with tail and the writer, one call, not one per line.
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.arrived: dict[int, float] = {}
        self.lines = 0
        self.runs_done = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        arrived = self.arrived
        rest = b""
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return
            now = time.monotonic()
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            data = data[:cut]
            self.lines += data.count(b"\n")
            self.runs_done += data.count(b"  run    completed")
            for seq in _END_DEP.findall(data):
                arrived[int(seq)] = now


_END_DEP = re.compile(rb"  end    dep d(\d+) ")


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for text in f:
            if text.startswith(field + ":"):
                return int(text.split()[1])
    return 0


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of ``pid`` so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def write_load(trace_dir: Path, seconds: float, runs_per_tick: int, out: Connection) -> None:
    """The writer (in a process of its own, so that neither it nor the reader of tail's output
    waits for the other's GIL): appends the load; sends back when each dep's end was written,
    the spans written, and when writing began and ended (monotonic clock, system-wide)."""
    writer = JsonlFileWriter(trace_dir)
    written: dict[int, float] = {}
    number = 0
    spans = 0
    previous: list[Run] = []
    began = time.monotonic()
    next_tick = began
    while True:
        if time.monotonic() - began >= seconds:
            batch: list[Run] = []  # the last tick only ends what is open
        else:
            batch = [Run(number + i, time.time_ns()) for i in range(runs_per_tick)]
            number += runs_per_tick
        wall = time.time_ns()
        items: list[PendingSpan | ReadableSpan] = []
        for run in batch:
            items.extend(started(run))
        for run in previous:
            items.extend(ended(run, wall))
        writer.write_lines([encode_batch(items)])
        done_at = time.monotonic()
        for run in previous:
            for seq, _ in run.deps:
                written[seq] = done_at
        spans += len(previous) * (1 + DEPS)
        previous = batch
        if not batch:
            break
        next_tick += TICK_S
        time.sleep(max(0.0, next_tick - time.monotonic()))
    writer.close()
    out.send((written, spans, began, done_at, time.process_time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s instead of 10")
    parser.add_argument("--rate", type=int, default=20_000, help="spans written per second")
    parser.add_argument("--seconds", type=float, default=None, help="how long to write")
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    runs_per_tick = max(1, round(args.rate * TICK_S / (1 + DEPS)))

    with tempfile.TemporaryDirectory() as tmp:
        trace_dir = Path(tmp) / "traces"
        trace_dir.mkdir()
        errors = open(Path(tmp) / "tail.err", "w+b")
        tail = subprocess.Popen(
            [sys.executable, "-m", "graphtrace", "tail", "--trace-dir", str(trace_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        while b"following" not in Path(errors.name).read_bytes():  # tail has read the dir
            assert tail.poll() is None, Path(errors.name).read_text()
            time.sleep(0.01)
        user_at_start, system_at_start = cpu_seconds(tail.pid)  # startup, not the load
        reading_at_start = time.process_time()  # this process: the reader, from here on
        reader = Reader(tail)
        receive, send = multiprocessing.get_context("fork").Pipe(duplex=False)
        writer = multiprocessing.get_context("fork").Process(
            target=write_load, args=(trace_dir, seconds, runs_per_tick, send)
        )
        began = time.monotonic()
        writer.start()
        samples: list[tuple[float, int]] = []
        while not receive.poll(0.5):
            samples.append((time.monotonic() - began, rss_kib(tail.pid)))
        written, spans, began, last_write, writer_cpu = receive.recv()
        writer.join()
        writing = last_write - began
        deadline = time.monotonic() + 60
        runs = spans // (1 + DEPS)
        while (len(reader.arrived) < len(written) or reader.runs_done < runs) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.01)
        caught_up = max(reader.arrived.values(), default=last_write) - last_write
        peak = rss_kib(tail.pid, "VmHWM")
        user, system = cpu_seconds(tail.pid)
        user -= user_at_start
        system -= system_at_start
        cpu = user + system
        final_rss = rss_kib(tail.pid)
        tail.terminate()
        tail.wait(timeout=10)
        said = Path(errors.name).read_text().splitlines()[1:]
        errors.close()

    latencies = sorted(reader.arrived[s] - written[s] for s in written if s in reader.arrived)
    missing = len(written) - len(latencies)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    early = next((kib for t, kib in samples if t >= 2.0), samples[0][1] if samples else 0)
    late = [kib for t, kib in samples if t >= writing - 1.0] or [final_rss]
    flat = max(late) <= early * 1.10
    print(f"machine: {machine()}")
    print(
        f"wrote {spans:,} spans ({spans / writing:,.0f} spans/s, {len(written):,} dep ends "
        f"timed) in {writing:.1f} s; tail printed {reader.lines:,} lines "
        f"(of {2 * spans:,}: a start and an end per span)"
    )
    print(
        f"span end -> line on screen: p50 {quantiles[49] * 1e3:.1f} ms, "
        f"p99 {quantiles[98] * 1e3:.1f} ms, max {latencies[-1] * 1e3 if latencies else 0:.1f} ms "
        f"(target p99 <= {LATENCY_TARGET_S * 1e3:.0f} ms)"
    )
    print(
        f"tail CPU: {cpu:.2f} s for {spans:,} spans and as many pending records "
        f"({cpu / spans * 1e6:.1f} us per span with its pending record; user {user:.2f} s, "
        f"system {system:.2f} s)"
    )
    reading = time.process_time() - reading_at_start
    print(f"the writer: {writer_cpu:.2f} s CPU; the reader of tail's output: {reading:.2f} s")
    print(
        f"kept up: {'yes' if not missing else f'NO, {missing:,} ends never shown'}; "
        f"last end shown {caught_up * 1e3:.0f} ms after the last write"
    )
    print(
        f"tail RSS: {early / 1024:.1f} MiB at 2 s, {max(late) / 1024:.1f} MiB in the last second "
        f"({'flat' if flat else 'GROWING'}), peak {peak / 1024:.1f} MiB"
    )
    for text in said:
        print(f"tail said: {text}")
    ok = not missing and quantiles[98] <= LATENCY_TARGET_S and flat
    print("PASS" if ok else "FAIL")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
