"""Tracing cost per span: graphtrace's spans written to a file against a bare OTel SDK span.

Runs the 5-node linear graph with ``FakeLM(latency=0)`` untraced, then traced to a file (pending
records, encoding and the write included: the time runs until the file holds every span), and
measures a bare OpenTelemetry SDK span (SimpleSpanProcessor + an exporter that discards) as the
unit. Target: graphtrace's cost per span at most 1.5x the bare span.

    python bench/tracing_cost.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from bench.common import best_of, linear5, machine
from graphtrace import FakeLM, configure

TARGET = 1.5


class Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def run_graph(runs: int) -> None:
    lm = FakeLM(latency=0)

    async def main() -> None:
        for _ in range(runs):
            await linear5.arun(lm=lm, note="benchmark")

    asyncio.run(main())


def bare_spans(count: int) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Discard()))
    tracer = provider.get_tracer("bare")
    for i in range(count):
        with tracer.start_as_current_span("node Step", attributes={"graphtrace.node.step": i}):
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, for a smoke check")
    args = parser.parse_args()
    runs = 300 if args.quick else 3000
    repeats = 3 if args.quick else 5
    spans_per_run = 1 + 5 + 4  # run, five nodes, four fills (the start node is given its input)

    untraced = best_of(repeats, lambda: run_graph(runs))
    bare = best_of(repeats, lambda: bare_spans(runs * spans_per_run))

    with tempfile.TemporaryDirectory() as tmp:
        tracing = configure(Path(tmp) / "traces")

        def traced_run() -> None:
            run_graph(runs)
            tracing.flush()

        traced = best_of(repeats, traced_run)
        written = tracing.live.written
        tracing.shutdown()
    spans = runs * spans_per_run
    expected = spans * 2 * (repeats)  # a pending record and a final span for each
    ours_us = (traced - untraced) / spans * 1e6
    bare_us = bare / spans * 1e6
    ratio = ours_us / bare_us
    print(f"machine: {machine()}")
    print(f"runs: {runs} x 5-node graph, {spans} spans per repeat, best of {repeats}")
    print(f"records written: {written} (expected {expected})")
    print(f"untraced graph:        {untraced * 1e6 / runs:8.1f} us/run")
    print(f"traced graph (file):   {traced * 1e6 / runs:8.1f} us/run")
    print(f"graphtrace per span:   {ours_us:8.2f} us  (pending record + final span, file write)")
    print(f"bare OTel SDK span:    {bare_us:8.2f} us  (SimpleSpanProcessor + discard)")
    print(f"ratio: {ratio:.2f}x (target <= {TARGET}x) -> {'OK' if ratio <= TARGET else 'MISSED'}")
    return 0 if ratio <= TARGET and written == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
