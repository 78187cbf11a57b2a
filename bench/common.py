"""Shared pieces of the benchmarks: a 5-node linear graph, timing, the machine line."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from graphtrace import Graph, Node


class Step5(Node):
    """Last step."""

    note: str

    async def __call__(self) -> None: ...


class Step4(Node):
    note: str

    async def __call__(self) -> Step5: ...


class Step3(Node):
    note: str

    async def __call__(self) -> Step4: ...


class Step2(Node):
    note: str

    async def __call__(self) -> Step3: ...


class Step1(Node):
    note: str

    async def __call__(self) -> Step2: ...


linear5 = Graph(start=Step1, name="linear5")


def machine() -> str:
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()} ({sys.implementation.name})"
    )


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    """The fastest of ``repeats`` timings of ``fn()`` in seconds (the least disturbed one)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def median_of(repeats: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
