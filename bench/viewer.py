"""The viewer on a large trace dir: cold index build, warm `ls` and `show`, peak memory.

Generates (with graphtrace's own encoder, as the live processor writes them) a trace dir of
1,000,000 spans in 100,000 runs, each span with its pending record, runs interleaved as they
would be with 500 in flight; then, in a fresh process, builds the index from cold, lists the
newest 50 runs and shows one run with the index warm. Also one run of 100,000 spans.

    python bench/viewer.py            # the full size (about 1 GB of traces in a temp dir)
    python bench/viewer.py --quick    # 100,000 spans, 10,000 runs; a 10,000-span run
    python bench/viewer.py --single   # only the one 100,000-span run (with --quick: 10,000)

Targets (issue 6): index build >= 50 MB/s; warm `ls --limit 50` and `show RUN` <= 0.5 s; peak
memory <= 300 MB; `show` of one 100,000-span run <= 3 s, in process and as a whole CLI process.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine

SPANS_PER_RUN = 10
IN_FLIGHT = 500
LINE_SPANS = 512


def _state(i: int) -> str:
    # A node's JSON state, escaped inside a string attribute as the runtime records it.
    return json.dumps({"ticket": f"ticket {i}: my invoice was charged twice", "customer": f"c{i}"})


def generate(directory: Path, runs: int, *, spans_per_run: int = SPANS_PER_RUN) -> int:
    """Write ``runs`` runs into ``directory``; returns the bytes written."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

    from exporters.file import JsonlFileWriter
    from exporters.otlp_json import PendingSpan, encode_batch

    rng = random.Random(6)
    resource_ = Resource({"service.name": "graphtrace", "service.instance.id": "bench"})
    scope = InstrumentationScope("graphtrace")
    writer = JsonlFileWriter(directory)
    t0 = 1_767_225_600_000_000_000
    ok = Status(StatusCode.UNSET)

    def run_records(index: int, start: int) -> Iterator[tuple[int, Any]]:
        trace_id = rng.getrandbits(128)
        ids = iter(lambda: rng.getrandbits(64) | 1, 0)  # endless: never 0
        root = next(ids)
        clock = start
        records: list[tuple[int, Any]] = []

        def add(
            name: str, span_id: int, parent: int | None, begin: int, end: int, attrs: dict[str, Any]
        ) -> None:
            ctx = SpanContext(trace_id, span_id, False)
            parent_ctx = SpanContext(trace_id, parent, False) if parent else None
            records.append(
                (begin, PendingSpan(name, trace_id, span_id, begin, attrs, 1, resource_, scope))
            )
            final = ReadableSpan(
                name=name, context=ctx, parent=parent_ctx, resource=resource_, attributes=attrs,
                kind=SpanKind.INTERNAL, status=ok, start_time=begin, end_time=end,
                instrumentation_scope=scope,
            )  # fmt: skip
            records.append((end, final))

        body = spans_per_run - 1
        nodes = max(1, body // 10)
        per_node = body // nodes
        made = 0
        for step in range(1, nodes + 1):
            node = next(ids)
            node_start = clock
            children = per_node if step < nodes else body - made - 1
            for k in range(max(0, children - 1)):
                took = rng.randint(1_000_000, 30_000_000)
                add(
                    f"dep load_{k % 7}",
                    next(ids),
                    node,
                    clock,
                    clock + took,
                    {"graphtrace.dep.cached": False},
                )
                clock += took // 3
                made += 1
            took = rng.randint(5_000_000, 50_000_000)
            add(
                "chat fake", next(ids), node, clock, clock + took,
                {"gen_ai.operation.name": "chat", "gen_ai.request.model": "fake",
                 "gen_ai.usage.input_tokens": 230, "gen_ai.usage.output_tokens": 9},
            )  # fmt: skip
            made += 1
            clock += took
            add(f"node Step{step}", node, root, node_start, clock,
                {"graphtrace.node.step": step, "graphtrace.node.state": _state(index)})  # fmt: skip
            made += 1
            if made >= body:
                break
        add(
            "run bench", root, None, start, clock + 1000,
            {"graphtrace.run.id": f"{index:012x}", "graphtrace.graph": "bench",
             "graphtrace.run.status": "completed"},
        )  # fmt: skip
        return iter(records)

    written = 0
    start = t0
    for wave in range(0, runs, IN_FLIGHT):
        events: list[tuple[int, Any]] = []
        for index in range(wave, min(runs, wave + IN_FLIGHT)):
            events.extend(run_records(index, start + rng.randint(0, 50_000_000)))
        events.sort(key=lambda e: e[0])
        items = [e[1] for e in events]
        lines = [encode_batch(items[i : i + LINE_SPANS]) for i in range(0, len(items), LINE_SPANS)]
        writer.write_lines(lines)
        written += sum(len(line) + 1 for line in lines)
        start = events[-1][0]
    writer.close()
    return written


def measure(directory: Path, run_ref: str, repeats: int) -> dict[str, Any]:
    """In this (fresh) process: cold build, then warm ls and show; timings and peak memory."""
    from rich.console import Console

    from exporters.reading.source import TraceSource
    from viewer.runlist import runs_table
    from viewer.show import render_run

    def render(renderable: Any) -> str:
        out = io.StringIO()
        Console(file=out, width=150, color_system=None).print(renderable)
        return out.getvalue()

    started = time.perf_counter()
    with TraceSource(directory) as source:
        runs = source.count()
    cold = time.perf_counter() - started

    def ls() -> None:
        with TraceSource(directory) as source:
            render(runs_table(source.runs(limit=50), source.count(), str(directory)))

    def show() -> None:
        with TraceSource(directory) as source:
            render(render_run(source.load(source.resolve(run_ref))))

    ls_times = [_timed(ls)[0] for _ in range(repeats)]
    show_times = [_timed(show) for _ in range(repeats)]
    return {
        "cold_s": cold,
        "runs": runs,
        "ls_s": _median(ls_times),
        "show_s": _median([wall for wall, _ in show_times]),
        "show_cpu_s": _median([cpu for _, cpu in show_times]),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _timed(fn: Any) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn()``: CPU time tells more on a busy machine."""
    started = time.perf_counter()
    cpu = time.process_time()
    fn()
    return time.perf_counter() - started, time.process_time() - cpu


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _child(directory: Path, run_ref: str, repeats: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", str(directory), run_ref, str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _cli(directory: Path, *args: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole ``graphtrace`` process, start-up and imports included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "graphtrace", *args, "--trace-dir", str(directory)],
        capture_output=True,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the size")
    parser.add_argument(
        "--single", action="store_true", help="only `show` of one big run (no many-runs dir)"
    )
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1], int(args.measure[2]))))
        return
    runs = 10_000 if args.quick else 100_000
    big_run = 10_000 if args.quick else 100_000
    print(f"machine: {machine()}")
    rows: list[tuple[str, str, bool | None]] = []
    with tempfile.TemporaryDirectory(prefix="graphtrace-bench-") as tmp:
        if not args.single:
            rows += _many_runs(Path(tmp) / "many", runs)
        single = Path(tmp) / "single"
        size_single = generate(single, 1, spans_per_run=big_run)
        one = _child(single, "last", 3)
        cli_wall, cli_cpu = min(_cli(single, "show", "last") for _ in range(3))
        rows += [
            (
                f"show, one {big_run:,}-span run (warm)",
                f"{one['show_s']:.2f} s, {one['show_cpu_s']:.2f} s CPU (cold index "
                f"{one['cold_s']:.2f} s, {size_single / 1e6:.0f} MB)",
                one["show_s"] <= 3,
            ),
            (
                f"CLI `graphtrace show RUN`, {big_run:,} spans, whole process",
                f"{cli_wall:.2f} s, {cli_cpu:.2f} s CPU",
                cli_wall <= 3,
            ),
        ]
    for name, figure, passed in rows:
        verdict = "" if passed is None else ("  PASS" if passed else "  MISS")
        print(f"{name:<56} {figure}{verdict}")


def _many_runs(many: Path, runs: int) -> list[tuple[str, str, bool | None]]:
    """The rows measured on a trace dir of ``runs`` runs of a few spans each."""
    started = time.perf_counter()
    size = generate(many, runs)
    print(
        f"generated {runs * SPANS_PER_RUN:,} spans in {runs:,} runs: {size / 1e6:,.0f} MB "
        f"in {time.perf_counter() - started:.1f} s"
    )
    probe = f"{runs // 2:012x}"
    result = _child(many, probe, 5)
    rate = size / 1e6 / result["cold_s"]
    cli_ls = min(_cli(many, "ls", "--limit", "50")[0] for _ in range(3))
    cli_show = min(_cli(many, "show", probe)[0] for _ in range(3))
    return [
        ("index build (cold)", f"{rate:,.0f} MB/s ({result['cold_s']:.2f} s)", rate >= 50),
        ("ls --limit 50 (warm)", f"{result['ls_s'] * 1000:.0f} ms", result["ls_s"] <= 0.5),
        ("show RUN (warm)", f"{result['show_s'] * 1000:.0f} ms", result["show_s"] <= 0.5),
        ("peak memory", f"{result['peak_mb']:.0f} MB", result["peak_mb"] <= 300),
        ("CLI `graphtrace ls --limit 50`, whole process", f"{cli_ls * 1000:.0f} ms", None),
        ("CLI `graphtrace show RUN`, whole process", f"{cli_show * 1000:.0f} ms", None),
    ]


if __name__ == "__main__":
    main()
