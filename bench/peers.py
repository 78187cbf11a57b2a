"""Peers: the same 5-node linear graph in graphtrace, LangGraph, pydantic-graph and plain asyncio.

Every node awaits a zero-latency LLM stand-in; 2,000 runs are in flight at once; the figure is
steps (nodes executed) per second. Each contender runs in a subprocess of its own, so that one's
global tracer provider cannot touch another's. Peers are installed for the benchmark only:

    pip install langgraph "pydantic-graph<2" logfire   # pydantic-graph 2 dropped the BaseNode Graph
    python bench/peers.py [--quick]

Targets: graphtrace traced (node and chat spans, pending records, file) >= 10,000 steps/s, 5x
LangGraph untraced and 8x pydantic-graph traced; graphtrace untraced >= 25,000 steps/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NODES = 5


async def stand_in(prompt: str) -> str:
    """The zero-latency LLM every contender calls once per node."""
    return '{"note": "ok"}'


# -- contenders: each returns a coroutine function running one graph once ----------------------


def graphtrace_runner(traced: bool) -> Callable[[], Awaitable[Any]]:
    from bench.common import linear5
    from graphtrace import configure
    from graphtrace.lm.protocol import Completion, Usage

    if traced:
        configure(tempfile.mkdtemp(prefix="peers-"))

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


def pydantic_graph_runner(traced: bool) -> Callable[[], Awaitable[Any]]:
    import pydantic_graph_nodes as nodes  # written below, so forward references resolve

    if traced:
        import logfire
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Discard(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        logfire.configure(
            send_to_logfire=False,
            console=False,
            additional_span_processors=[BatchSpanProcessor(Discard())],
        )
    graph = nodes.build(auto_instrument=traced)

    async def once() -> Any:
        return await graph.run(nodes.Step0(note="go"))

    return once


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

CONTENDERS: dict[str, tuple[Callable[[bool], Callable[[], Awaitable[Any]]], bool]] = {
    "graphtrace traced": (graphtrace_runner, True),
    "graphtrace untraced": (graphtrace_runner, False),
    "LangGraph untraced": (langgraph_runner, False),
    "pydantic-graph untraced": (pydantic_graph_runner, False),
    "pydantic-graph traced (Logfire)": (pydantic_graph_runner, True),
    "plain asyncio": (plain_runner, False),
    "plain asyncio + OTel span per node": (plain_runner, True),
}


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
    factory, traced = CONTENDERS[name]
    once = factory(traced)
    asyncio.run(measure(once, min(runs, concurrency), concurrency))  # warm-up
    rate = asyncio.run(measure(once, runs, concurrency))
    print(json.dumps({"name": name, "steps_per_s": rate}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4,000 runs instead of 10,000")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    runs = 4_000 if args.quick else 10_000
    concurrency = 2_000
    if args.one:
        run_one(args.one, runs, concurrency)
        return 0

    from bench.common import machine

    print(f"machine: {machine()}")
    print(f"{runs:,} runs of a 5-node linear graph, {concurrency:,} in flight, zero-latency LLM")
    rates: dict[str, float] = {}
    for name in CONTENDERS:
        done = subprocess.run(
            [sys.executable, __file__, "--one", name, *(["--quick"] if args.quick else [])],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["failed"])[-1]
            print(f"  {name:36s} skipped: {last}")
            continue
        rates[name] = json.loads(done.stdout.strip().splitlines()[-1])["steps_per_s"]
        print(f"  {name:36s} {rates[name]:>10,.0f} steps/s")
    traced = rates.get("graphtrace traced", 0.0)
    untraced = rates.get("graphtrace untraced", 0.0)
    checks = [
        ("graphtrace traced >= 10,000 steps/s", traced >= 10_000),
        ("graphtrace untraced >= 25,000 steps/s", untraced >= 25_000),
    ]
    if "LangGraph untraced" in rates:
        ratio = traced / rates["LangGraph untraced"]
        checks.append((f"traced vs LangGraph untraced {ratio:.1f}x >= 5x", ratio >= 5))
    if "pydantic-graph traced (Logfire)" in rates:
        ratio = traced / rates["pydantic-graph traced (Logfire)"]
        checks.append((f"traced vs pydantic-graph traced {ratio:.1f}x >= 8x", ratio >= 8))
    for label, ok in checks:
        print(f"{'OK    ' if ok else 'MISSED'} {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
