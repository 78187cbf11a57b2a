"""Scale: many runs of the 5-node graph through one RunPool, against the ideal wall time.

With ``FakeLM(latency=0.01)`` and ``max_lm_calls=100``, each run makes 4 LM calls of 10 ms (the
start node is given its input, the four others are filled), so the ideal is
``runs * 4 * 10 ms / 100``. Targets: traced (pending records, file) <= 1.5x the ideal, untraced
<= 1.1x, peak RSS <= 1 GB.

The machine is shared: untraced and traced runs alternate for a few rounds, and the least
disturbed round of each is the figure (the median is printed beside it).

    python bench/scale.py [--quick] [--runs N] [--rounds N] [--max-runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import linear5, machine
from exporters.otlp_json import PENDING_ATTRIBUTE
from graphtrace import FakeLM, RunPool, RunState, configure
from graphtrace.lm.protocol import Message
from tracing.spans import suspended

LATENCY = 0.01
LM_SLOTS = 100
LM_CALLS_PER_RUN = 4
# Runs in flight: four per LM slot, a queue of waiting runs for every slot that frees (the issue
# fixes only max_lm_calls). Measured at 100, RunPool's default, it made no difference here beyond
# a third less peak RSS; --max-runs measures another value.
MAX_RUNS = LM_SLOTS * 4


async def through_pool(runs: int, max_runs: int = MAX_RUNS) -> float:
    lm = FakeLM(latency=LATENCY)
    started = time.perf_counter()
    async with RunPool(lm=lm, max_runs=max_runs, max_lm_calls=LM_SLOTS) as pool:
        for _ in range(runs):
            await pool.room(max_runs)  # a queue as long again, fed as it drains
            pool.submit(linear5, note="scale")
        completed = 0
        async for handle in pool:
            completed += handle.state is RunState.COMPLETED
    elapsed = time.perf_counter() - started
    assert pool.counts[RunState.COMPLETED] == runs, pool.counts
    return elapsed


async def fake_lm_call_ms(calls: int = 2_000) -> float:
    """The mean duration of a ``FakeLM(latency=LATENCY)`` call, LM_SLOTS at a time, no graph:
    how close the simulated latency is to the one the ideal assumes."""
    lm = FakeLM(latency=LATENCY)
    loop = asyncio.get_running_loop()
    messages = [Message("user", "how long?")]
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    durations: list[float] = []

    async def caller(count: int) -> None:
        for _ in range(count):
            started = loop.time()
            await lm.complete(messages, schema)
            durations.append(loop.time() - started)

    async with asyncio.TaskGroup() as group:
        for _ in range(LM_SLOTS):
            group.create_task(caller(calls // LM_SLOTS))
    return 1000 * sum(durations) / len(durations)


def chat_span_ms(trace_dir: Path) -> float:
    """The mean duration of the traced run's ``chat`` spans, read back from its files."""
    durations = [
        int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])
        for span in _spans(trace_dir)
        if span["name"].startswith("chat ")
        and not any(a["key"] == PENDING_ATTRIBUTE for a in span["attributes"])
    ]
    return sum(durations) / len(durations) / 1e6 if durations else float("nan")


def _spans(trace_dir: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(trace_dir.glob("*.jsonl")):
        with path.open("rb") as lines:
            for line in lines:
                for resource in json.loads(line)["resourceSpans"]:
                    for scope in resource["scopeSpans"]:
                        yield from scope["spans"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 runs instead of 10,000")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None, help="default 5 (1 with --quick)")
    parser.add_argument(
        "--max-runs", type=int, default=MAX_RUNS, help=f"runs in flight (default {MAX_RUNS})"
    )
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 5)
    runs = args.runs or (1_000 if args.quick else 10_000)
    ideal = runs * LM_CALLS_PER_RUN * LATENCY / LM_SLOTS

    untraced_times: list[float] = []
    traced_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            # a directory per round: the last one is read back for the chat spans
            trace_dir = Path(tmp, f"traces-{round_}")
            tracing = configure(trace_dir)
            with suspended():  # untraced: what a process without configure() pays
                untraced_times.append(asyncio.run(through_pool(runs, args.max_runs)))
            traced = asyncio.run(through_pool(runs, args.max_runs))
            flush_started = time.perf_counter()
            tracing.flush()  # the clock stops when the file holds every record
            traced_times.append(traced + time.perf_counter() - flush_started)
            size = sum(p.stat().st_size for p in trace_dir.glob("*.jsonl"))
            lost = tracing.lost_spans
            tracing.shutdown()
        traced_chat_ms = chat_span_ms(trace_dir)
    # the least disturbed round of each (the machine is shared), and the median
    untraced, traced = min(untraced_times), min(traced_times)
    lone_call_ms = asyncio.run(fake_lm_call_ms())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ok = traced <= 1.5 * ideal and untraced <= 1.1 * ideal and peak_mb <= 1024 and not lost
    print(f"machine: {machine()}")
    print(
        f"{runs:,} runs x 5 nodes, FakeLM(latency={LATENCY}), max_lm_calls={LM_SLOTS}, "
        f"max_runs={args.max_runs}"
    )
    print(f"ideal:     {ideal:6.2f} s; best of {args.rounds} interleaved rounds (median)")
    print(
        f"untraced:  {untraced:6.2f} s  ({untraced / ideal:.2f}x ideal, target <= 1.1x) "
        f"({statistics.median(untraced_times) / ideal:.2f}x)"
    )
    print(
        f"traced:    {traced:6.2f} s  ({traced / ideal:.2f}x ideal, target <= 1.5x) "
        f"({statistics.median(traced_times) / ideal:.2f}x), "
        f"{size / 2**20:.1f} MiB of trace, {lost} lost"
    )
    print(f"peak RSS:  {peak_mb:6.0f} MB (target <= 1024 MB)")
    print(
        f"FakeLM calls: {lone_call_ms:.2f} ms on average alone ({LM_SLOTS} at a time), "
        f"{traced_chat_ms:.2f} ms as traced chat spans in the run (latency {LATENCY * 1000:g} ms)"
    )
    print("OK" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
