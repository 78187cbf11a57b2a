"""Dependency injection: checking ``Dep`` functions when a graph is built, calling them in a run.

Each dep function runs at most once per run (its result is cached in the run, never shared with
another run); the independent deps of a node run concurrently under a ``TaskGroup``, so one
failure cancels its siblings and surfaces as :class:`~graphtrace.errors.DepError`.
"""

from __future__ import annotations

import asyncio
import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from graphtrace.concurrently import all_of
from graphtrace.errors import DepError, GraphDefinitionError
from graphtrace.fields import Dep
from graphtrace.spec import DepSpec, NodeSpec, describe
from tracing import names
from tracing.spans import open_span

_MISSING = inspect.Parameter.empty


def _unwrap_awaitable(tp: Any) -> Any:
    origin = get_origin(tp)
    if origin in (collections.abc.Awaitable, collections.abc.Coroutine):
        return get_args(tp)[-1]
    return tp


def fits(src: Any, dst: Any) -> bool:
    """Whether a value typed ``src`` can fill a field typed ``dst`` (a static, lenient check)."""
    if dst is Any or src is Any or src == dst:
        return True
    while get_origin(dst) is Annotated:
        dst = get_args(dst)[0]
    while get_origin(src) is Annotated:
        src = get_args(src)[0]
    if src == dst:
        return True
    if get_origin(dst) in (Union, typing.Union) or isinstance(dst, types.UnionType):
        return any(fits(src, member) for member in get_args(dst))
    if get_origin(src) in (Union, typing.Union) or isinstance(src, types.UnionType):
        return all(fits(member, dst) for member in get_args(src))
    if src is type(None) or src is None:
        return dst is None or dst is type(None)
    src_origin, dst_origin = get_origin(src) or src, get_origin(dst) or dst
    if not (isinstance(src_origin, type) and isinstance(dst_origin, type)):
        return False
    if not issubclass(src_origin, dst_origin) and not (src_origin is int and dst_origin is float):
        return False
    dst_args, src_args = get_args(dst), get_args(src)
    if not dst_args or not src_args:
        return True
    if len(dst_args) != len(src_args):
        return dst_origin is tuple and dst_args[-1] is Ellipsis
    return all(s is Ellipsis or fits(s, d) for s, d in zip(src_args, dst_args, strict=True))


def analyze_dep(dep: Dep, where: str) -> DepSpec:
    """Read ``dep.fn``'s signature; ``where`` names the field for error messages."""
    fn = dep.fn
    name = getattr(fn, "__name__", None) or repr(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise GraphDefinitionError(
            f"{where}: hints of dep {name} cannot be resolved: {exc}"
        ) from None
    if "return" not in hints:
        raise GraphDefinitionError(
            f"{where}: dep {name} has no return annotation; annotate what it returns"
        )
    by_name: list[str] = []
    chained: dict[str, Dep] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = hints.get(param.name)
        marker = _dep_marker(hint)
        if marker is not None:
            chained[param.name] = marker
        else:
            by_name.append(param.name)
    return DepSpec(
        fn=fn,
        name=name,
        is_async=inspect.iscoroutinefunction(fn),
        returns=_unwrap_awaitable(hints["return"]),
        by_name=tuple(by_name),
        chained=chained,
    )


def _dep_marker(hint: Any) -> Dep | None:
    if get_origin(hint) is Annotated:
        for meta in hint.__metadata__:
            if isinstance(meta, Dep):
                return meta
    return None


def check_node_deps(spec: NodeSpec, known: dict[Callable[..., Any], DepSpec]) -> None:
    """Refuse missing annotations, misfits, unknown parameters and cycles among ``spec``'s deps."""
    for f in spec.of_kind("dep"):
        assert isinstance(f.marker, Dep)
        where = f"{spec.name}.{f.name}"
        dspec = _walk(f.marker, where, known, stack=())
        if not fits(dspec.returns, f.annotation):
            raise GraphDefinitionError(
                f"{where}: dep {dspec.name} returns {describe(dspec.returns)}, which does not "
                f"fit the field's type {describe(f.annotation)}"
            )
    _check_params(spec, known)


def _walk(
    dep: Dep,
    where: str,
    known: dict[Callable[..., Any], DepSpec],
    stack: tuple[Callable[..., Any], ...],
) -> DepSpec:
    if dep.fn in stack:
        cycle = " -> ".join(known[fn].name for fn in (*stack, dep.fn) if fn in known)
        raise GraphDefinitionError(f"{where}: dep cycle {cycle}")
    dspec = known.get(dep.fn)
    if dspec is None:
        dspec = known[dep.fn] = analyze_dep(dep, where)
    hints = typing.get_type_hints(dep.fn, include_extras=True)
    for param, inner in dspec.chained.items():
        inner_spec = _walk(inner, where, known, (*stack, dep.fn))
        want = get_args(hints[param])[0]
        if not fits(inner_spec.returns, want):
            raise GraphDefinitionError(
                f"{where}: dep {inner_spec.name} returns {describe(inner_spec.returns)}, which "
                f"does not fit parameter {param!r} of {dspec.name} ({describe(want)})"
            )
    return dspec


def _check_params(spec: NodeSpec, known: dict[Callable[..., Any], DepSpec]) -> None:
    """Every by-name parameter must name a field of the node or have a default."""
    for f in spec.of_kind("dep"):
        assert isinstance(f.marker, Dep)
        for dspec in _closure(f.marker, known):
            params = inspect.signature(dspec.fn).parameters
            for pname in dspec.by_name:
                if pname in spec.fields and pname != f.name:
                    continue
                if params[pname].default is not _MISSING:
                    continue
                raise GraphDefinitionError(
                    f"{spec.name}.{f.name}: parameter {pname!r} of dep {dspec.name} is neither a "
                    f"field of {spec.name} nor Dep-annotated, and has no default"
                )


def _closure(dep: Dep, known: dict[Callable[..., Any], DepSpec]) -> list[DepSpec]:
    out: list[DepSpec] = []
    stack = [dep]
    while stack:
        d = stack.pop()
        dspec = known[d.fn]
        out.append(dspec)
        stack.extend(dspec.chained.values())
    return out


class DepResolver:
    """Calls a run's deps: once per function per run, concurrently where independent."""

    __slots__ = ("_cache", "_specs")

    def __init__(self, specs: Mapping[Callable[..., Any], DepSpec]) -> None:
        self._specs = specs
        self._cache: dict[Callable[..., Any], asyncio.Future[Any]] = {}

    async def resolve(self, node: NodeSpec, values: dict[str, Any]) -> dict[str, Any]:
        """Values for ``node``'s dep fields that ``values`` does not already hold."""
        todo = {f.name: f.marker for f in node.of_kind("dep") if f.name not in values}
        return await self._gather(
            {name: (self._specs[dep.fn], name) for name, dep in todo.items()},  # type: ignore[union-attr]
            node.name,
            values,
        )

    async def _gather(
        self, calls: dict[str, tuple[DepSpec, str]], node: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        """Run ``calls`` (key -> (dep, field)) concurrently; the first failure wins."""
        if not calls:
            return {}
        return await all_of(
            {key: self._call(dspec, values, node, field) for key, (dspec, field) in calls.items()}
        )

    async def _call(self, dspec: DepSpec, values: dict[str, Any], node: str, field: str) -> Any:
        cached = self._cache.get(dspec.fn)
        with open_span(names.dep_span(dspec.name), {names.DEP_CACHED: cached is not None}):
            if cached is not None:
                try:
                    return await asyncio.shield(cached)
                except DepError:
                    raise
                except Exception as exc:
                    raise DepError(node, field, dspec.name, exc) from exc
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._cache[dspec.fn] = future
            try:
                kwargs = {p: values[p] for p in dspec.by_name if p in values}
                if dspec.chained:
                    chain = {p: (self._specs[d.fn], field) for p, d in dspec.chained.items()}
                    kwargs.update(await self._gather(chain, node, values))
                result = await dspec.fn(**kwargs) if dspec.is_async else dspec.fn(**kwargs)
            except asyncio.CancelledError:
                future.cancel()
                raise
            except DepError as exc:
                future.set_exception(exc)
                future.exception()  # marks it retrieved: only the waiters report it
                raise
            except Exception as exc:
                future.set_exception(exc)
                future.exception()
                raise DepError(node, field, dspec.name, exc) from exc
            future.set_result(result)
            return result
