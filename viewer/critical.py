"""The critical path of a run: the chain of spans that its end waited for."""

from __future__ import annotations

from operator import attrgetter
from typing import Final

from exporters.reading.assemble import TreeSpan

__all__ = ["critical_path"]

_END_ORDER: Final = attrgetter("end_ns", "start_ns")


def critical_path(root: TreeSpan) -> set[int]:
    """``id()`` of every span on the critical path from ``root``.

    Walking back from a span's end: the child that ended last is critical; before that child
    started, the child that ended last before then; and so on. Each chosen child is walked the
    same way. Children that overlap a chosen one ended while it still ran, so the run did not
    wait for them.
    """
    marked: set[int] = set()
    stack = [root]
    while stack:
        span = stack.pop()
        marked.add(id(span))
        children = span.children
        if len(children) < 2:  # most spans: a leaf, or one child, which is then critical
            stack.extend(children)
            continue
        horizon: int | None = None
        for child in sorted(children, key=_END_ORDER, reverse=True):
            if horizon is None or child.end_ns <= horizon:
                stack.append(child)
                horizon = child.start_ns
    return marked
