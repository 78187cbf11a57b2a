"""Bounded memory: 100,000 runs through one RunPool leave the process's memory flat.

Runs the 5-node graph (``FakeLM(latency=0)``, untraced, so only the pool and the runtime are
measured) through one pool, reading the resident set size every 10 % of the runs. Memory is
flat when the RSS at the end is within 10 % of the RSS after the first 20 % (the warm-up:
allocator arenas, caches, the bounded history filling up).

    python bench/pool_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import linear5, machine
from graphtrace import FakeLM, RunPool, RunState


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def through_pool(runs: int) -> list[tuple[int, float]]:
    samples: list[tuple[int, float]] = []
    step = runs // 10
    async with RunPool(lm=FakeLM(), max_runs=200, history=1000) as pool:
        for n in range(1, runs + 1):
            await pool.room(200)
            pool.submit(linear5, note="memory")
            if n % step == 0:
                samples.append((n, rss_mb()))
    assert pool.counts[RunState.COMPLETED] == runs, pool.counts
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 runs instead of 100,000")
    args = parser.parse_args()
    runs = 20_000 if args.quick else 100_000
    samples = asyncio.run(through_pool(runs))
    print(f"machine: {machine()}")
    print(f"{runs:,} runs through one RunPool (max_runs=200, history=1000), untraced")
    for n, mb in samples:
        print(f"  after {n:>7,} runs: {mb:7.1f} MB")
    warm = samples[1][1]
    end = samples[-1][1]
    growth = (end - warm) / warm
    ok = growth <= 0.10
    verdict = "OK" if ok else "MISSED"
    print(f"growth after warm-up: {growth * 100:+.1f} % (target <= +10 %) -> {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
