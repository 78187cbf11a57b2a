"""Gates across processes: how soon an answer sent from another process resumes the node.

The runtime process is a real ``graphtrace run`` of a one-gate graph with N runs (all in flight:
``--max-runs N``), no terminal, so every run waits at its gate. This process finds the waiting
gates in the trace files (as ``graphtrace gates`` does) and answers them one by one through the
control socket, noting the wall clock just before each send. The runtime records when the node
resumed as the end of the gate span (the same machine clock, epoch ns), so

    latency = end of the gate span (from the trace) - the moment the answer was sent

It includes connecting, the server reading and validating the request, and the run's task being
scheduled again. The round trip seen by the client (send to accepted reply) is reported too.
Target: p99 <= 20 ms for 1,000 waiting runs.

    python bench/gates.py [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine
from exporters.reading.source import TraceSource
from graphtrace import Gate, Graph, Node
from graphtrace.control.client import send
from graphtrace.control.discovery import WaitingGate, waiting_gates
from graphtrace.control.protocol import Request

TARGET_P99_MS = 20.0


class Approval(Node):
    """One gate, then the run ends."""

    ticket: str = "refund"
    approved: Annotated[bool, Gate("Approve?")]

    async def __call__(self) -> None: ...


graph = Graph(start=Approval, name="bench-gates")


def wait_for_gates(trace_dir: Path, count: int, timeout: float) -> list[WaitingGate]:
    deadline = time.monotonic() + timeout
    while True:
        if trace_dir.is_dir():
            with TraceSource(trace_dir) as source:
                gates = waiting_gates(source)
            if len(gates) >= count:
                return gates
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(gates)} of {count} gates waiting after {timeout}s")
        time.sleep(0.2)


def gate_ends(trace_dir: Path) -> dict[str, int]:
    """Run id → end of its gate span (epoch ns), read straight from the OTLP JSON lines."""
    run_of: dict[str, str] = {}
    end_of: dict[str, int] = {}
    for path in trace_dir.glob("*.jsonl"):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                for resource in json.loads(line).get("resourceSpans", ()):
                    for scope in resource.get("scopeSpans", ()):
                        for span in scope.get("spans", ()):
                            attrs = {a["key"]: a["value"] for a in span.get("attributes", ())}
                            if "graphtrace.pending" in attrs:
                                continue
                            if "graphtrace.run.id" in attrs:
                                run_of[span["traceId"]] = attrs["graphtrace.run.id"]["stringValue"]
                            elif span["name"].startswith("gate "):
                                end_of[span["traceId"]] = int(span["endTimeUnixNano"])
    return {run_of[trace]: end for trace, end in end_of.items() if trace in run_of}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs waiting at once")
    parser.add_argument("--quick", action="store_true", help="100 runs")
    args = parser.parse_args()
    runs = 100 if args.quick else args.runs
    work = Path(tempfile.mkdtemp(prefix="bench-gates-"))
    trace_dir = work / "tr"
    errors = (work / "runtime.err").open("w+")
    runtime = subprocess.Popen(
        [sys.executable, "-m", "graphtrace", "run", f"{Path(__file__).resolve()}:graph",
         "--runs", str(runs), "--max-runs", str(runs), "--trace-dir", str(trace_dir)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
        env={**os.environ, "GRAPHTRACE_DIR": ""},
    )  # fmt: skip
    try:
        started = time.monotonic()
        gates = wait_for_gates(trace_dir, runs, timeout=120)
        ready = time.monotonic() - started
        sent: dict[str, int] = {}
        round_trips: list[float] = []
        for gate in gates:
            assert gate.socket is not None, "the pending record names no socket"
            request = Request(gate.run_id, gate.gate_id, True)
            sent[gate.run_id] = time.time_ns()
            before = time.perf_counter()
            reply = send(gate.socket, request)
            round_trips.append((time.perf_counter() - before) * 1000)
            if not reply.ok:
                raise SystemExit(f"run {gate.run_id}: refused: {reply.error}")
        code = runtime.wait(timeout=120)
        if code != 0:
            errors.seek(0)
            raise SystemExit(f"the runtime exited {code}: {errors.read()}")
    finally:
        if runtime.poll() is None:
            runtime.kill()
            runtime.wait()
        errors.close()
    ends = gate_ends(trace_dir)
    shutil.rmtree(work)  # kept only when something failed, for its runtime.err
    latencies = [(ends[run] - at) / 1e6 for run, at in sent.items()]
    report(runs, ready, latencies, round_trips)


def report(runs: int, ready: float, latencies: list[float], round_trips: list[float]) -> None:
    def line(name: str, values: list[float]) -> str:
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        return f"{name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(values):.2f} ms"

    p99 = percentile(latencies, 0.99)
    verdict = "meets" if p99 <= TARGET_P99_MS else "MISSES"
    print(f"machine: {machine()}")
    print(f"{runs} runs waiting at a gate in one `graphtrace run` (all listed after {ready:.1f} s)")
    print(line("send -> node resumed (gate span end)", latencies))
    print(line("client round trip (send -> accepted)", round_trips))
    print(f"target p99 <= {TARGET_P99_MS:g} ms: {verdict}")
    result: dict[str, Any] = {
        "runs": runs,
        "resume_p50_ms": round(statistics.median(latencies), 3),
        "resume_p99_ms": round(p99, 3),
        "round_trip_p50_ms": round(statistics.median(round_trips), 3),
        "round_trip_p99_ms": round(percentile(round_trips, 0.99), 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
