"""The critical path of a run: the chain of spans that its end waited for."""

from __future__ import annotations

from exporters.reading.assemble import TreeSpan

__all__ = ["critical_path"]


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
        horizon: int | None = None
        for child in sorted(span.children, key=lambda c: (c.end_ns, c.start_ns), reverse=True):
            if horizon is None or child.end_ns <= horizon:
                stack.append(child)
                horizon = child.start_ns
    return marked
