"""Benchmark: graphtrace's OTLP JSON encoder against the reference protobuf path.

Run from the repository root::

    python bench/encoder.py            # 20,480 spans, 7 repeats
    python bench/encoder.py --quick    # 2,048 spans, 3 repeats

Both encoders see the same SDK spans in the same process, in batches of 512; each figure is the
best of the repeats. The reference is ``encode_spans(batch)`` followed by ``MessageToJson``, the
way an application would get OTLP JSON from the OpenTelemetry Python packages. Exits 1 when
graphtrace's encoder is less than ``--target`` times faster per span.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from google.protobuf import __version__ as protobuf_version
from google.protobuf.json_format import MessageToJson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from exporters.otlp_json import PendingSpan, encode_batch

BATCH = 512


class _Collect(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def _state(i: int) -> str:
    state = {
        "ticket": f'Order #{i} arrived broken; the customer wants a refund and asks about "ETA".',
        "customer": f"c{i % 97}",
        "history": [f"ticket {i - k}: resolved by auto-reply" for k in range(1, 4)],
        "priority": i % 5,
        "tags": ["billing", "refund"],
    }
    return json.dumps(state)


def make_spans(n: int) -> list[ReadableSpan]:
    """About ``n`` finished spans shaped like graphtrace's: runs, nodes, deps and chat calls."""
    collect = _Collect()
    provider = TracerProvider()
    provider.add_span_processor(collect)
    tracer = provider.get_tracer("graphtrace", "0.1.0")
    i = 0
    while len(collect.spans) < n:
        run_id = f"run-{i:08d}"
        with tracer.start_as_current_span(
            "run support",
            attributes={"graphtrace.run.id": run_id, "graphtrace.graph": "support"},
        ) as run:
            for step, node in enumerate(("Triage", "Escalate", "Done")):
                with tracer.start_as_current_span(
                    f"node {node}",
                    attributes={
                        "graphtrace.run.id": run_id,
                        "graphtrace.node.step": step,
                        "graphtrace.node.state": _state(i),
                        "graphtrace.graph": "support",
                        "graphtrace.dep.cached": False,
                    },
                ) as span:
                    with tracer.start_as_current_span(
                        "dep load_history", attributes={"graphtrace.run.id": run_id}
                    ):
                        pass
                    with tracer.start_as_current_span(
                        "chat fake-1",
                        kind=SpanKind.CLIENT,
                        attributes={
                            "gen_ai.operation.name": "chat",
                            "gen_ai.provider.name": "fake",
                            "gen_ai.request.model": "fake-1",
                            "gen_ai.usage.input_tokens": 412 + i % 50,
                            "gen_ai.usage.output_tokens": 37,
                            "gen_ai.response.finish_reasons": ("stop",),
                        },
                    ) as chat:
                        chat.add_event("gen_ai.choice", {"index": 0, "finish_reason": "stop"})
                    if i % 10 == 0:
                        span.record_exception(ValueError("validation failed: reason missing"))
                        span.set_status(Status(StatusCode.ERROR, "validation failed"))
            run.set_attribute("graphtrace.run.status", "completed")
        i += 1
    provider.shutdown()
    return collect.spans[:n]


def make_pending(spans: Sequence[ReadableSpan]) -> list[PendingSpan]:
    """The pending record the span processor would write for each span at its start."""
    return [
        PendingSpan(
            name=s.name,
            trace_id=s.context.trace_id,
            span_id=s.context.span_id,
            start_time=s.start_time or 0,
            attributes=dict(s.attributes or {}),
            kind=s.kind.value + 1,
            resource=s.resource,
            scope=s.instrumentation_scope,
        )
        for s in spans
    ]


def _reference(batch: Sequence[ReadableSpan]) -> str:
    return MessageToJson(encode_spans(batch), indent=None)


def best_us_per_item(
    encoders: dict[str, tuple[Callable[[Sequence[Any]], str], Sequence[Any]]], repeats: int
) -> dict[str, float]:
    """Best of ``repeats`` passes per encoder over its items in batches of 512, in µs per item.

    The encoders take turns within each repeat, so a slow spell of the machine (another process,
    frequency scaling) hits all of them rather than skewing the ratio.
    """
    best = dict.fromkeys(encoders, float("inf"))
    for _ in range(repeats):
        for name, (encode, items) in encoders.items():
            batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
            t0 = time.perf_counter()
            for batch in batches:
                encode(batch)
            best[name] = min(best[name], (time.perf_counter() - t0) / len(items) * 1e6)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer spans and repeats")
    parser.add_argument("--spans", type=int, help="number of spans (default 20480, quick 2048)")
    parser.add_argument("--repeats", type=int, help="repeats, best is kept (default 7, quick 3)")
    parser.add_argument("--target", type=float, default=10.0, help="minimum speed-up (10)")
    args = parser.parse_args(argv)
    n = args.spans or (2048 if args.quick else 20480)
    repeats = args.repeats or (3 if args.quick else 7)

    spans = make_spans(n)
    pending = make_pending(spans)
    sizes = [len(encode_batch(spans[i : i + BATCH])) for i in range(0, n, BATCH)]

    figures = best_us_per_item(
        {
            "reference": (_reference, spans),
            "ours": (encode_batch, spans),
            "pending": (encode_batch, pending),
        },
        repeats,
    )
    reference, ours, ours_pending = figures["reference"], figures["ours"], figures["pending"]
    ratio = reference / ours

    print(
        f"machine: {platform.platform()} {platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"protobuf {protobuf_version}"
    )
    print(f"{n} spans, batches of {BATCH}, best of {repeats}; {sum(sizes) / n:.0f} bytes/span")
    print(f"{'encoder':<44} {'µs/item':>9}")
    print(f"{'reference: encode_spans + MessageToJson':<44} {reference:>9.2f}")
    print(f"{'graphtrace encode_batch (ReadableSpan)':<44} {ours:>9.2f}")
    print(f"{'graphtrace encode_batch (PendingSpan)':<44} {ours_pending:>9.2f}")
    verdict = "ok" if ratio >= args.target else f"BELOW TARGET {args.target:g}x"
    print(f"speed-up: {ratio:.1f}x ({verdict})")
    return 0 if ratio >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
