"""Structured concurrency for a step: run awaitables together, fail as the first one did."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V")


async def all_of(calls: Mapping[K, Coroutine[Any, Any, V]]) -> dict[K, V]:
    """Await every coroutine concurrently under a ``TaskGroup``; results by key.

    The first failure cancels the others (the TaskGroup's rule) and is raised as itself, not
    wrapped in an ``ExceptionGroup``, so callers catch the error types they know.
    """
    if len(calls) == 1:
        ((key, coro),) = calls.items()
        return {key: await coro}
    try:
        async with asyncio.TaskGroup() as group:
            tasks = {key: group.create_task(coro) for key, coro in calls.items()}
    except BaseExceptionGroup as failed:
        raise first_error(failed) from None
    return {key: task.result() for key, task in tasks.items()}


def first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first leaf exception of a (possibly nested) exception group."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
