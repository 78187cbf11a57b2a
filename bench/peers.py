"""Peers: the same 5-node linear graph in graphtrace, LangGraph, pydantic-graph and plain asyncio.

Every node awaits a zero-latency LLM stand-in; 2,000 runs are in flight at once; the figure is
steps (nodes executed) per second. Each contender runs in a subprocess of its own, so that one's
global tracer provider cannot touch another's. Peers are installed for the benchmark only:

    pip install langgraph "pydantic-graph<2" logfire   # pydantic-graph 2 dropped the BaseNode Graph
    python bench/peers.py [--quick]

pydantic-graph is traced through Logfire three ways, and every traced contender says how many of
the spans it made reached their destination:
- to a local collector, every span kept: Logfire set up as its documentation shows for another
  OTLP backend (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), here a collector this script runs on
  localhost, with the span queue sized so that nothing is dropped. graphtrace drops nothing
  either (it waits for its writer), so this is the same job: the comparison the targets use.
- to the same collector with Logfire's default queue, which drops what overflows it;
- to an exporter that discards every span: Logfire's own cost, with no export work at all.

Targets: graphtrace traced (node and chat spans, pending records, file) >= 10,000 steps/s, 5x
LangGraph untraced and 8x pydantic-graph traced; graphtrace untraced >= 25,000 steps/s.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NODES = 5
COLLECTOR_ENV = "PEERS_COLLECTOR"  # the local collector's URL, for the contender that needs it

# spans made and spans that reached their destination, for the contenders that count them
SPANS: dict[str, int] = {}


async def stand_in(prompt: str) -> str:
    """The zero-latency LLM every contender calls once per node."""
    return '{"note": "ok"}'


# -- contenders: each returns a coroutine function running one graph once ----------------------


def graphtrace_runner(traced: bool) -> Callable[[], Awaitable[Any]]:
    from bench.common import linear5
    from graphtrace import configure
    from graphtrace.lm.protocol import Completion, Usage

    if traced:
        trace_dir = tempfile.mkdtemp(prefix="peers-")
        tracing = configure(trace_dir)

        def count() -> None:
            tracing.flush()
            # records: a start and an end per span
            SPANS["delivered"] = tracing.live.written // 2
            SPANS["made"] = (tracing.live.written + tracing.lost_spans) // 2
            tracing.shutdown()
            shutil.rmtree(trace_dir)  # hundreds of MB a pass: counted, not kept

        COUNTERS.append(count)

    class StandIn:
        model = "stand-in"
        provider = "bench"

        async def complete(self, messages: Sequence[Any], schema: Any) -> Completion:
            return Completion(await stand_in(messages[-1].content), Usage(1, 1))

    lm = StandIn()

    async def once() -> Any:
        return await linear5.arun(lm=lm, note="go")

    return once


def plain_runner(traced: bool) -> Callable[[], Awaitable[Any]]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    tracer = provider.get_tracer("plain")

    async def once() -> Any:
        state = {"note": "go"}
        for i in range(NODES):
            if traced:
                with tracer.start_as_current_span(f"node {i}"):
                    state = json.loads(await stand_in(state["note"]))
            else:
                state = json.loads(await stand_in(state["note"]))
        return state

    return once


def langgraph_runner(traced: bool) -> Callable[[], Awaitable[Any]]:
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class State(TypedDict):
        note: str

    def make(i: int) -> Callable[[State], Awaitable[State]]:
        async def node(state: State) -> State:
            return {"note": json.loads(await stand_in(state["note"]))["note"]}

        node.__name__ = f"step{i}"
        return node

    builder = StateGraph(State)
    for i in range(NODES):
        builder.add_node(f"step{i}", make(i))
    builder.add_edge(START, "step0")
    for i in range(NODES - 1):
        builder.add_edge(f"step{i}", f"step{i + 1}")
    builder.add_edge(f"step{NODES - 1}", END)
    app = builder.compile()

    async def once() -> Any:
        return await app.ainvoke({"note": "go"})

    return once


def pydantic_graph_runner(traced: bool, export: str = "") -> Callable[[], Awaitable[Any]]:
    """``export``: "collector" (a local OTLP collector, nothing dropped), "collector-default"
    (the same with Logfire's default queue) or "discard" (an exporter that drops every span)."""
    import pydantic_graph_nodes as nodes  # written below, so forward references resolve

    if traced:
        import logfire
        from opentelemetry.sdk.trace import SpanProcessor
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Made(SpanProcessor):
            def on_end(self, span: Any) -> None:
                SPANS["made"] = SPANS.get("made", 0) + 1

        processors: list[SpanProcessor] = [Made()]
        if export == "discard":

            class Discard(SpanExporter):
                def export(self, spans: Any) -> SpanExportResult:
                    SPANS["delivered"] = SPANS.get("delivered", 0) + len(spans)
                    return SpanExportResult.SUCCESS

            processors.append(BatchSpanProcessor(Discard()))
            COUNTERS.append(logfire.force_flush)  # what is still queued is not lost
        else:
            collector = os.environ[COLLECTOR_ENV]
            os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{collector}/v1/traces"
            if export == "collector":  # graphtrace loses no span; neither does this contender
                os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(10**7)

            def count() -> None:
                logfire.force_flush()
                with urllib.request.urlopen(collector, timeout=60) as reply:
                    SPANS["delivered"] = int(reply.read())

            COUNTERS.append(count)
        logfire.configure(
            service_name="peers",
            send_to_logfire=False,
            console=False,
            additional_span_processors=processors,
        )
    graph = nodes.build(auto_instrument=traced)

    async def once() -> Any:
        return await graph.run(nodes.Step0(note="go"))

    return once


# -- the local OTLP collector: counts the spans it is sent ------------------------------------


def serve_collector() -> None:
    """An OTLP/HTTP trace receiver on localhost: a POST to /v1/traces adds its spans to the
    count, a GET answers the count. Its port is the first line it prints."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received = [0]
    lock = threading.Lock()

    class Receiver(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest.FromString(body)
            spans = sum(
                len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
            )
            with lock:
                received[0] += spans
            self._answer(b"")  # an empty ExportTraceServiceResponse: all accepted

        def do_GET(self) -> None:
            self._answer(str(received[0]).encode())

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    print(server.server_address[1], flush=True)
    server.serve_forever()


PYDANTIC_GRAPH_NODES = """
from __future__ import annotations
import json
from dataclasses import dataclass
from pydantic_graph import BaseNode, End, Graph, GraphRunContext

async def stand_in(prompt: str) -> str:
    return '{"note": "ok"}'

@dataclass
class Step4(BaseNode[None, None, str]):
    note: str
    async def run(self, ctx: GraphRunContext) -> End[str]:
        return End(json.loads(await stand_in(self.note))["note"])

@dataclass
class Step3(BaseNode):
    note: str
    async def run(self, ctx: GraphRunContext) -> Step4:
        return Step4(json.loads(await stand_in(self.note))["note"])

@dataclass
class Step2(BaseNode):
    note: str
    async def run(self, ctx: GraphRunContext) -> Step3:
        return Step3(json.loads(await stand_in(self.note))["note"])

@dataclass
class Step1(BaseNode):
    note: str
    async def run(self, ctx: GraphRunContext) -> Step2:
        return Step2(json.loads(await stand_in(self.note))["note"])

@dataclass
class Step0(BaseNode):
    note: str
    async def run(self, ctx: GraphRunContext) -> Step1:
        return Step1(json.loads(await stand_in(self.note))["note"])

def build(auto_instrument: bool) -> Graph:
    return Graph(nodes=[Step0, Step1, Step2, Step3, Step4], auto_instrument=auto_instrument)
"""

PG_COLLECTOR = "pydantic-graph traced (Logfire -> local collector)"
PG_DEFAULT_QUEUE = "pydantic-graph traced (Logfire -> collector, default queue)"
PG_DISCARD = "pydantic-graph traced (Logfire, spans discarded)"

CONTENDERS: dict[str, Callable[[], Callable[[], Awaitable[Any]]]] = {
    "graphtrace traced": functools.partial(graphtrace_runner, True),
    "graphtrace untraced": functools.partial(graphtrace_runner, False),
    "LangGraph untraced": functools.partial(langgraph_runner, False),
    "pydantic-graph untraced": functools.partial(pydantic_graph_runner, False),
    PG_COLLECTOR: functools.partial(pydantic_graph_runner, True, "collector"),
    PG_DEFAULT_QUEUE: functools.partial(pydantic_graph_runner, True, "collector-default"),
    PG_DISCARD: functools.partial(pydantic_graph_runner, True, "discard"),
    "plain asyncio": functools.partial(plain_runner, False),
    "plain asyncio + OTel span per node": functools.partial(plain_runner, True),
}
NEEDS_COLLECTOR = (PG_COLLECTOR, PG_DEFAULT_QUEUE)
# run after the measurement, to fill SPANS
COUNTERS: list[Callable[[], object]] = []


async def measure(once: Callable[[], Awaitable[Any]], runs: int, concurrency: int) -> float:
    """Steps per second with ``concurrency`` runs in flight (best of three rounds)."""
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for start in range(0, runs, concurrency):
            await asyncio.gather(*(once() for _ in range(min(concurrency, runs - start))))
        elapsed = time.perf_counter() - started
        best = max(best, runs * NODES / elapsed)
    return best


def run_one(name: str, runs: int, concurrency: int) -> None:
    """In the subprocess: measure one contender, print its steps/s as JSON."""
    sys.path.insert(0, tempfile.gettempdir())
    Path(tempfile.gettempdir(), "pydantic_graph_nodes.py").write_text(PYDANTIC_GRAPH_NODES)
    once = CONTENDERS[name]()
    asyncio.run(measure(once, min(runs, concurrency), concurrency))  # warm-up
    rate = asyncio.run(measure(once, runs, concurrency))
    for count in COUNTERS:
        count()
    print(json.dumps({"name": name, "steps_per_s": rate, **SPANS}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4,000 runs instead of 10,000")
    parser.add_argument(
        "--passes",
        type=int,
        default=1,
        metavar="N",
        help="measure every contender N times, in turns, and keep each one's best: on a shared "
        "host, a disturbance then falls on one pass, not on one contender",
    )
    parser.add_argument("--only", action="append", metavar="NAME", help="just these contenders")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--collector", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    runs = 4_000 if args.quick else 10_000
    concurrency = 2_000
    if args.collector:
        serve_collector()
        return 0
    if args.one:
        run_one(args.one, runs, concurrency)
        return 0
    names = [n for n in CONTENDERS if not args.only or n in args.only]
    if args.only and len(names) != len(args.only):
        parser.error(f"--only takes contender names: {', '.join(CONTENDERS)}")

    from bench.common import machine

    print(f"machine: {machine()}")
    print(
        f"{runs:,} runs of a 5-node linear graph, {concurrency:,} in flight, zero-latency LLM; "
        f"best of {args.passes} pass(es)"
    )
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _ in range(max(1, args.passes)):
        for name in names:
            result = measure_in_subprocess(name, args.quick)
            if result is not None:
                results[name].append(result)
    rates: dict[str, float] = {}
    for name, measured in results.items():
        if not measured:
            continue
        best = max(measured, key=lambda r: r["steps_per_s"])
        rates[name] = best["steps_per_s"]
        spans = ""
        if "made" in best:
            made, delivered = best["made"], best.get("delivered", 0)
            spans = f"   spans delivered: {delivered:,} of {made:,} ({delivered / made:.0%})"
        others = ""
        if len(measured) > 1:
            others = "   passes: " + ", ".join(f"{r['steps_per_s']:,.0f}" for r in measured)
        print(f"  {name:60s} {rates[name]:>10,.0f} steps/s{spans}{others}")
    traced = rates.get("graphtrace traced", 0.0)
    checks = []
    if "graphtrace traced" in rates:
        checks.append(("graphtrace traced >= 10,000 steps/s", traced >= 10_000))
    if "graphtrace untraced" in rates:
        untraced = rates["graphtrace untraced"]
        checks.append(("graphtrace untraced >= 25,000 steps/s", untraced >= 25_000))
    if traced and "LangGraph untraced" in rates:
        ratio = traced / rates["LangGraph untraced"]
        checks.append((f"traced vs LangGraph untraced {ratio:.1f}x >= 5x", ratio >= 5))
    if traced and PG_COLLECTOR in rates:
        ratio = traced / rates[PG_COLLECTOR]
        checks.append(
            (f"traced vs pydantic-graph traced, every span kept {ratio:.1f}x >= 8x", ratio >= 8)
        )
    for label, ok in checks:
        print(f"{'OK    ' if ok else 'MISSED'} {label}")
    for name in (PG_DEFAULT_QUEUE, PG_DISCARD):
        if traced and name in rates:  # for the record: peers that export less than they make
            print(f"       traced vs {name}: {traced / rates[name]:.1f}x")
    return 0 if all(ok for _, ok in checks) else 1


def measure_in_subprocess(name: str, quick: bool) -> dict[str, Any] | None:
    """One contender measured in a fresh process (with a local collector when it needs one):
    its result, or None (and the reason printed) when it could not run."""
    collector = start_collector() if name in NEEDS_COLLECTOR else None
    try:
        env = dict(os.environ)
        if collector is not None:
            env[COLLECTOR_ENV] = collector[1]
        done = subprocess.run(
            [sys.executable, __file__, "--one", name, *(["--quick"] if quick else [])],
            capture_output=True,
            text=True,
            env=env,
        )
    finally:
        if collector is not None:
            collector[0].kill()
            collector[0].wait()
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        print(f"  {name:60s} skipped: {last}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def start_collector() -> tuple[subprocess.Popen[str], str]:
    """The local collector in a process of its own (its work is not the contender's), and
    its URL."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--collector"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}"


if __name__ == "__main__":
    raise SystemExit(main())
