"""Folding long runs of similar siblings (480 calls of one dep) into one summary row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from exporters.reading.assemble import TreeSpan

__all__ = ["FOLD_OVER", "Folded", "visible_children"]

FOLD_OVER: Final = 12  # siblings of one name beyond this many are folded
_KEEP_FIRST: Final = 3
_KEEP_SLOWEST: Final = 2
_KEEP_TROUBLED: Final = 5  # failed, running or interrupted ones stay visible, up to this many


@dataclass(slots=True)
class Folded:
    """Siblings left out of the rendering: how many, of which name, and their total time."""

    name: str
    count: int
    total_ns: int
    critical: int  # how many of them are on the critical path
    errors: int


def visible_children(span: TreeSpan, critical: set[int]) -> list[TreeSpan | Folded]:
    """``span``'s children in start order, with each long group of one name (or of one kind,
    when there are many names) folded.

    A folded group keeps its first few, its slowest, its last and its troubled members; one
    :class:`Folded` row stands where the first hidden member would be.
    """
    children = span.children
    if len(children) <= FOLD_OVER:
        return list(children)
    groups: dict[str, list[TreeSpan]] = {}
    by_kind = len({child.name for child in children}) > FOLD_OVER
    for child in children:
        # Many different names (a loop through node classes, numbered deps): group by kind,
        # the first word of the name (`node`, `dep`, `chat`).
        key = f"{child.name.split(' ', 1)[0]} spans" if by_kind else child.name
        groups.setdefault(key, []).append(child)
    hidden: dict[int, str] = {}
    for name, members in groups.items():
        if len(members) <= FOLD_OVER:
            continue
        keep = {id(m) for m in members[:_KEEP_FIRST]}
        keep.add(id(members[-1]))
        slowest = sorted(members, key=lambda m: m.duration_ns, reverse=True)[:_KEEP_SLOWEST]
        keep.update(id(m) for m in slowest)
        troubled = [m for m in members if m.status != "ok"][:_KEEP_TROUBLED]
        keep.update(id(m) for m in troubled)
        for member in members:
            if id(member) not in keep:
                hidden[id(member)] = name
    if not hidden:
        return list(children)
    folds: dict[str, Folded] = {}
    out: list[TreeSpan | Folded] = []
    for child in children:
        hidden_name = hidden.get(id(child))
        if hidden_name is None:
            out.append(child)
            continue
        name = hidden_name
        fold = folds.get(name)
        if fold is None:
            fold = folds[name] = Folded(name, 0, 0, 0, 0)
            out.append(fold)
        fold.count += 1
        fold.total_ns += child.duration_ns
        fold.critical += id(child) in critical
        fold.errors += child.status == "error"
    return out
