"""The async call graph of a task: which coroutines it is suspended in, and who awaits it.

Python 3.14 added ``asyncio.capture_call_graph``: a task's call stack (its coroutine chain,
innermost first) and the futures that await it, recursively. The stall watchdog needs the same on
3.11–3.13, so this module builds the same structure there from task internals:

- the call stack walks ``cr_await`` from ``task.get_coro()``, as the standard library does;
- "awaited by" is inferred: a task whose ``_fut_waiter`` is the future awaits it; a future whose
  done-callbacks come from ``gather``, ``shield``, ``wait`` or ``wait_for`` (3.11) is awaited by
  the task that awaits the gathering/outer/waiter future, which is the task 3.14 records (it
  records the task that called ``gather()``; the two differ only when another task awaits the
  gathering future); a ``TaskGroup`` child is awaited by the group's parent task.

On 3.14+ :func:`capture_call_graph` uses the standard library and converts its result. On every
version the call stack also looks through the awaitables the standard library stops at (an async
generator's ``asend``/``athrow``, ``anext()``'s awaitable, a ``__await__`` that returns a
coroutine's wrapper) and ``types.coroutine`` generators such as ``asyncio.sleep(0)``, so a task
suspended inside ``async for`` or ``async with`` shows the generator's frames too.

:func:`format_call_graph` renders the text of ``asyncio.format_call_graph``; :func:`graph_data`
gives the same graph as plain JSON-ready data (frames as function, file, line, kind).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import sys
import types
from asyncio import taskgroups
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "AwaitIndex",
    "FrameCallGraphEntry",
    "FutureCallGraph",
    "capture_call_graph",
    "format_call_graph",
    "graph_data",
]

FrameKind = Literal["sync", "async", "async generator", "generator"]
Label = Callable[["asyncio.Future[Any]"], "str | None"]

_NATIVE = getattr(asyncio, "capture_call_graph", None)  # Python 3.14+

# A chain deeper than this is a bug elsewhere (or a recursion); the snapshot stays bounded.
_MAX_STACK = 256
# Nodes in one graph: a future awaited by very many tasks must not make a snapshot huge.
_MAX_NODES = 200

# Awaitables that are neither coroutines nor generators but hold the one they wait on; the
# standard library's walk stops at them, the referent (a C-level field) leads on.
_WRAPPERS = frozenset(
    {"async_generator_asend", "async_generator_athrow", "anext_awaitable", "coroutine_wrapper"}
)
_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


@dataclass(frozen=True, slots=True)
class FrameCallGraphEntry:
    """One frame of a call stack (the standard library's class of the same name, plus kind)."""

    frame: types.FrameType

    @property
    def kind(self) -> FrameKind:
        """``async`` (a coroutine), ``async generator``, ``generator`` or ``sync``."""
        return _frame_kind(self.frame)


@dataclass(frozen=True, slots=True)
class FutureCallGraph:
    """A future or task, its call stack (innermost frame first), and what awaits it."""

    future: asyncio.Future[Any]
    call_stack: tuple[FrameCallGraphEntry, ...]
    awaited_by: tuple[FutureCallGraph, ...]


def _frame_kind(frame: types.FrameType) -> FrameKind:
    # 3.14's frame.f_generator says the same; the code flags exist on every version.
    flags = frame.f_code.co_flags
    if flags & inspect.CO_COROUTINE:
        return "async"
    if flags & inspect.CO_ASYNC_GENERATOR:
        return "async generator"
    if flags & inspect.CO_GENERATOR:
        return "generator"
    return "sync"


# -- awaited-by inference (3.11–3.13) -------------------------------------------------------------


class AwaitIndex:
    """Who awaits whom among the tasks of one loop, inferred from task internals.

    Built once (one pass over ``asyncio.all_tasks(loop)``) and used for many captures taken at
    the same moment. Not needed on 3.14+, where futures record it.
    """

    __slots__ = ("_waiters",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        waiters: dict[int, list[asyncio.Future[Any]]] = {}
        for task in asyncio.all_tasks(loop):
            waiting_on = getattr(task, "_fut_waiter", None)
            if waiting_on is not None:
                waiters.setdefault(id(waiting_on), []).append(task)
        # keyed by id(): the awaited futures stay alive while the tasks above refer to them
        self._waiters = waiters

    def awaited_by(self, future: asyncio.Future[Any]) -> list[asyncio.Future[Any]]:
        """The tasks that await ``future``, as 3.14's ``future._asyncio_awaited_by`` has them."""
        found: dict[int, asyncio.Future[Any]] = {}
        for task in self._waiters.get(id(future), ()):
            found.setdefault(id(task), task)
        for callback in _callbacks(future):
            for task in self._via_callback(callback, depth=0):
                found.setdefault(id(task), task)
        found.pop(id(future), None)
        return list(found.values())

    def _owners(self, wrapper: Any, depth: int) -> list[asyncio.Future[Any]]:
        """The tasks behind a future that stands between them and the awaited one.

        A gathering future, a shield's outer future, a ``wait()`` waiter: 3.14 records the task
        that made it, not the future itself, so the chain goes on to whoever awaits it.
        """
        if not isinstance(wrapper, asyncio.Future) or depth > 8:
            return []
        owners = list(self._waiters.get(id(wrapper), ()))
        for callback in _callbacks(wrapper):
            owners.extend(self._via_callback(callback, depth + 1))
        return owners

    def _via_callback(self, callback: Any, depth: int) -> list[asyncio.Future[Any]]:
        if getattr(callback, "__func__", None) is taskgroups.TaskGroup._on_task_done:
            parent = getattr(callback.__self__, "_parent_task", None)
            return [parent] if parent is not None else []
        if isinstance(callback, functools.partial):  # 3.11's wait_for: _release_waiter(waiter)
            if getattr(callback.func, "__name__", "") == "_release_waiter" and callback.args:
                return self._owners(callback.args[0], depth)
            return []
        if getattr(callback, "__module__", None) != "asyncio.tasks":
            return []
        cell = _CLOSURE_FUTURE.get(getattr(callback, "__qualname__", ""))
        if cell is None:
            return []
        return self._owners(_closure_value(callback, cell), depth)


# The closures asyncio.tasks adds as done-callbacks, and the free variable naming the future
# that the caller awaits in their place.
_CLOSURE_FUTURE = {
    "gather.<locals>._done_callback": "outer",
    "shield.<locals>._inner_done_callback": "outer",
    "_wait.<locals>._on_completion": "waiter",
}


def _closure_value(fn: Any, name: str) -> Any:
    code = getattr(fn, "__code__", None)
    closure = getattr(fn, "__closure__", None)
    if code is None or closure is None or name not in code.co_freevars:
        return None
    try:
        return closure[code.co_freevars.index(name)].cell_contents
    except ValueError:  # the cell is still empty
        return None


def _callbacks(future: asyncio.Future[Any]) -> Iterable[Any]:
    pairs = getattr(future, "_callbacks", None) or ()
    return [pair[0] if isinstance(pair, tuple) else pair for pair in pairs]


# -- call stacks ----------------------------------------------------------------------------------


def _coroutine_chain(start: Any) -> list[FrameCallGraphEntry]:
    """Frames from ``start`` down the awaits, outermost first (the standard library's walk).

    Unlike 3.14's ``_build_graph_for_future`` it looks through the wrappers in ``_WRAPPERS`` and
    into ``types.coroutine`` generators; it stops at anything else (a future's iterator).
    """
    entries: list[FrameCallGraphEntry] = []
    obj = start
    while obj is not None and len(entries) < _MAX_STACK:
        if hasattr(obj, "cr_await"):
            frame, obj = getattr(obj, "cr_frame", None), obj.cr_await
        elif hasattr(obj, "ag_await"):
            frame, obj = getattr(obj, "ag_frame", None), obj.ag_await
        elif isinstance(obj, types.GeneratorType) and _is_iterable_coroutine(obj):
            frame, obj = obj.gi_frame, obj.gi_yieldfrom
        elif type(obj).__name__ in _WRAPPERS:
            obj = _wrapped(obj)
            continue
        else:
            break
        if frame is not None:  # a coroutine without a frame (Cython) still leads on
            entries.append(FrameCallGraphEntry(frame))
    return entries


def _is_iterable_coroutine(gen: types.GeneratorType[Any, Any, Any]) -> bool:
    return bool(gen.gi_code.co_flags & inspect.CO_ITERABLE_COROUTINE)


def _wrapped(wrapper: Any) -> Any:
    """The coroutine or async generator a wrapper awaitable holds (its C-level referent)."""
    for referent in gc.get_referents(wrapper):
        if (
            hasattr(referent, "cr_await")
            or hasattr(referent, "ag_await")
            or type(referent).__name__ in _WRAPPERS
        ):
            return referent
    return None


def _current_stack(depth: int) -> list[FrameCallGraphEntry]:
    """The running task's stack from the caller down to the task's outermost coroutine.

    The frame at ``depth`` and its callers up to the first coroutine frame whose caller is not a
    generator frame (``Task.__step``, the bottom of the task), as 3.14 walks it.
    """
    entries: list[FrameCallGraphEntry] = []
    frame: types.FrameType | None = sys._getframe(depth + 1)
    try:
        while frame is not None and len(entries) < _MAX_STACK:
            entries.append(FrameCallGraphEntry(frame))
            back = frame.f_back
            if frame.f_code.co_flags & _GENERATOR_FLAGS and (
                back is not None and not back.f_code.co_flags & _GENERATOR_FLAGS
            ):
                break
            frame = back
    finally:
        del frame
    return entries


def _trim(stack: list[FrameCallGraphEntry], limit: int | None) -> list[FrameCallGraphEntry]:
    """``limit`` as 3.14 applies it: the first ``limit`` entries, or the last ``-limit``."""
    if limit is None:
        return stack
    if limit > 0:
        return stack[:limit]
    if limit < 0:
        return stack[limit:]
    return []


# -- capture ------------------------------------------------------------------------------------


def capture_call_graph(
    future: asyncio.Future[Any] | None = None,
    /,
    *,
    depth: int = 1,
    limit: int | None = None,
    index: AwaitIndex | None = None,
) -> FutureCallGraph | None:
    """The async call graph of ``future`` (a task or future), or of the current task.

    Same arguments and result as 3.14's ``asyncio.capture_call_graph``: ``depth`` skips frames
    of the current task's stack, ``limit`` keeps at most ``abs(limit)`` entries per stack
    (innermost when positive). Returns None when there is no current task. ``index`` shares one
    :class:`AwaitIndex` between captures taken together on 3.11–3.13; it is ignored on 3.14+.

    From another thread (the watchdog's) it is safe under the GIL, every read being atomic; a
    task that runs meanwhile may give a mixed snapshot, one that stays suspended gives its own.
    """
    if _NATIVE is not None:
        native = _NATIVE(future, depth=depth + 1, limit=limit)
        return None if native is None else _from_native(native, limit)
    return _capture_compat(future, depth=depth + 1, limit=limit, index=index)


def _capture_compat(
    future: asyncio.Future[Any] | None = None,
    *,
    depth: int = 1,
    limit: int | None = None,
    index: AwaitIndex | None = None,
) -> FutureCallGraph | None:
    """Our equivalent of ``asyncio.capture_call_graph``, on every version (tests compare them)."""
    loop = asyncio._get_running_loop()
    if future is None:
        if loop is None:
            raise RuntimeError(
                "capture_call_graph() is called outside of a running event loop and no future "
                "to introspect was provided"
            )
        future = asyncio.current_task(loop)
        if future is None:
            return None
    if not isinstance(future, asyncio.Future):
        raise TypeError(f"{future!r} object does not appear to be compatible with asyncio.Future")
    if index is None:
        index = AwaitIndex(future.get_loop())
    budget = [_MAX_NODES]
    is_current = loop is not None and future is asyncio.current_task(loop)
    if is_current:
        stack = [] if limit == 0 else _current_stack(depth)
        if limit is not None:  # 3.14 trims the current task's stack from the other end
            stack = _trim(stack, -limit)
        parents = tuple(_graph_of(p, limit, index, budget, ()) for p in index.awaited_by(future))
        return FutureCallGraph(future, tuple(stack), parents)
    return _graph_of(future, limit, index, budget, ())


def _graph_of(
    future: asyncio.Future[Any],
    limit: int | None,
    index: AwaitIndex,
    budget: list[int],
    path: tuple[int, ...],
) -> FutureCallGraph:
    budget[0] -= 1
    get_coro = getattr(future, "get_coro", None)
    coro = get_coro() if get_coro is not None and limit != 0 else None
    stack = _trim(_coroutine_chain(coro), limit)  # outermost first here, as 3.14 trims it
    stack.reverse()
    path = (*path, id(future))
    parents = []
    for parent in index.awaited_by(future):
        if budget[0] <= 0:
            break
        if id(parent) not in path:  # a cycle cannot happen in asyncio; guard anyway
            parents.append(_graph_of(parent, limit, index, budget, path))
    return FutureCallGraph(future, tuple(stack), tuple(parents))


def _from_native(native: Any, limit: int | None) -> FutureCallGraph:
    """3.14's graph as ours; a suspended task's stack also goes through the wrappers."""
    stack = [FrameCallGraphEntry(entry.frame) for entry in native.call_stack]
    if stack and limit is None:
        innermost = stack[0].frame
        generator = getattr(innermost, "f_generator", None)
        # The standard library stopped where cr_await is neither a coroutine nor an async
        # generator; when that is a wrapper we can see through, the chain goes on.
        awaiting = getattr(generator, "cr_await", None) or getattr(generator, "ag_await", None)
        if awaiting is not None and not hasattr(awaiting, "cr_await"):
            deeper = _coroutine_chain(awaiting)
            deeper.reverse()
            stack = deeper + stack
    parents = tuple(_from_native(parent, limit) for parent in native.awaited_by)
    return FutureCallGraph(native.future, tuple(stack), parents)


# -- rendering ----------------------------------------------------------------------------------


def _header(future: asyncio.Future[Any]) -> str:
    if isinstance(future, asyncio.Task):
        return f"* Task(name={future.get_name()!r}, id={id(future):#x})"
    return f"* Future(id={id(future):#x})"


def _frame_line(entry: FrameCallGraphEntry) -> str:
    frame = entry.frame
    code = frame.f_code
    kind = _frame_kind(frame)
    where = f"{kind} {code.co_qualname}()" if kind != "sync" else f"{code.co_qualname}()"
    return f"  |   File {code.co_filename!r}, line {frame.f_lineno}, in {where}"


def format_call_graph(graph: FutureCallGraph, *, label: Label | None = None) -> str:
    """The graph as text, line for line what ``asyncio.format_call_graph`` prints.

    ``label(future)`` may return a note for a task's header line (graphtrace adds the spans the
    task has open, e.g. ``[run triage > node Triage]``); without it the text is the stdlib's.
    """
    lines: list[str] = []

    def render(node: FutureCallGraph, level: int) -> None:
        indent = "    " * level
        header = _header(node.future)
        note = label(node.future) if label is not None else None
        lines.append(f"{indent}{header} [{note}]" if note else f"{indent}{header}")
        if node.call_stack:
            lines.append(f"{indent}  + Call stack:")
            lines.extend(f"{indent}{_frame_line(entry)}" for entry in node.call_stack)
        if node.awaited_by:
            lines.append(f"{indent}  + Awaited by:")
            for parent in node.awaited_by:
                render(parent, level + 1)

    render(graph, 0)
    return "\n".join(lines)


def graph_data(graph: FutureCallGraph, *, label: Label | None = None) -> dict[str, Any]:
    """The graph as JSON-ready data, frames innermost first.

    ``{"type": "Task", "name": ..., "id": "0x...", "label": ..., "call_stack": [{"function",
    "file", "line", "kind"}], "awaited_by": [...]}``; ``name`` and ``label`` only when present.
    """
    future = graph.future
    data: dict[str, Any] = {"type": "Task" if isinstance(future, asyncio.Task) else "Future"}
    if isinstance(future, asyncio.Task):
        data["name"] = future.get_name()
    data["id"] = f"{id(future):#x}"
    note = label(future) if label is not None else None
    if note:
        data["label"] = note
    data["call_stack"] = [
        {
            "function": entry.frame.f_code.co_qualname,
            "file": entry.frame.f_code.co_filename,
            "line": entry.frame.f_lineno,
            "kind": _frame_kind(entry.frame),
        }
        for entry in graph.call_stack
    ]
    data["awaited_by"] = [graph_data(parent, label=label) for parent in graph.awaited_by]
    return data
