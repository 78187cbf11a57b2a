"""What the runtime knows about a node class: its fields by kind and where it may go next.

Built once per class when a :class:`~graphtrace.graph.Graph` is constructed, so that a step does
no introspection on the hot path.
"""

from __future__ import annotations

import dis
import inspect
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import TypeAdapter
from pydantic.fields import FieldInfo

from graphtrace.errors import GraphDefinitionError
from graphtrace.fields import MISSING, Dep, Gate, Recall
from graphtrace.node import Node

FieldKindName = Literal["plain", "dep", "recall", "gate"]


@dataclass(slots=True)
class FieldSpec:
    """One field of a node: its kind, its type and its pydantic field info."""

    name: str
    kind: FieldKindName
    annotation: Any
    info: FieldInfo
    marker: Dep | Recall | Gate | None = None

    @property
    def has_default(self) -> bool:
        return not self.info.is_required()

    def default_value(self) -> Any:
        return self.info.get_default(call_default_factory=True)

    @property
    def adapter(self) -> TypeAdapter[Any]:
        return _adapter(self.annotation)


@cache
def _adapter_cached(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _adapter(annotation: Any) -> TypeAdapter[Any]:
    try:
        return _adapter_cached(annotation)
    except TypeError:  # unhashable annotation (rare): build it each time
        return TypeAdapter(annotation)


@dataclass(slots=True)
class DepSpec:
    """A dependency function: how to call it and what it needs."""

    fn: Callable[..., Any]
    name: str
    is_async: bool
    returns: Any
    by_name: tuple[str, ...]  # parameters filled from the node's fields
    chained: dict[str, Dep] = field(default_factory=dict)  # parameters filled by other deps


@dataclass(slots=True)
class NodeSpec:
    """A node class as the runtime sees it."""

    cls: type[Node]
    name: str
    doc: str
    fields: dict[str, FieldSpec]
    successors: tuple[type[Node], ...]
    may_end: bool
    custom_body: bool
    decides: bool = field(init=False)
    """True when the LM picks the next node: an ellipsis body with more than one way to go."""
    _by_kind: dict[str, tuple[FieldSpec, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.decides = not self.custom_body and len(self.successors) + int(self.may_end) > 1
        self._by_kind = {
            kind: tuple(f for f in self.fields.values() if f.kind == kind)
            for kind in ("plain", "dep", "recall", "gate")
        }

    def of_kind(self, kind: FieldKindName) -> tuple[FieldSpec, ...]:
        """The fields of one kind, in declaration order (computed once)."""
        return self._by_kind[kind]


async def _ellipsis_body(self: Any) -> Any: ...


def _instructions(fn: Callable[..., Any]) -> list[tuple[str, Any]]:
    return [(i.opname, i.argval) for i in dis.get_instructions(fn)]


_EMPTY_BODY = _instructions(_ellipsis_body)


def has_ellipsis_body(fn: Callable[..., Any]) -> bool:
    """True when ``fn``'s body does nothing (``...``, ``pass``, a lone docstring)."""
    code = getattr(fn, "__code__", None)
    return code is not None and _instructions(fn) == _EMPTY_BODY


def describe(tp: Any) -> str:
    """A short readable name for a type hint, for error messages and prompts."""
    if isinstance(tp, type) and get_origin(tp) is None:
        return tp.__name__
    return repr(tp).replace("typing.", "")


def _namespace(cls: type) -> dict[str, Any]:
    """Names a node's hints may refer to: its module, then every Node subclass by name."""
    ns: dict[str, Any] = {}
    stack = list(Node.__subclasses__())
    while stack:
        sub = stack.pop()
        ns.setdefault(sub.__name__, sub)
        stack.extend(sub.__subclasses__())
    module = sys.modules.get(cls.__module__)
    if module is not None:
        ns.update(vars(module))
    return ns


def _unwrap_annotated(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _union_members(tp: Any) -> tuple[Any, ...]:
    tp = _unwrap_annotated(tp)
    if get_origin(tp) in (Union, types.UnionType):
        out: list[Any] = []
        for arg in get_args(tp):
            out.extend(_union_members(arg))
        return tuple(out)
    return (tp,)


def _own_call(cls: type[Node]) -> Any:
    """``__call__`` as defined by ``cls`` or a Node subclass it inherits from, else None."""
    for klass in cls.__mro__:
        if klass is Node:
            return None
        if "__call__" in vars(klass):
            return vars(klass)["__call__"]
    return None


def return_targets(cls: type[Node]) -> tuple[tuple[type[Node], ...], bool]:
    """The node classes ``cls.__call__`` may return, and whether it may return ``None``."""
    call = _own_call(cls)
    if call is None:
        raise GraphDefinitionError(
            f"{cls.__name__} has no __call__; declare where it goes, e.g. "
            f"`async def __call__(self) -> NextNode | None: ...`"
        )
    raw = getattr(call, "__annotations__", {}).get("return", MISSING)
    if raw is MISSING:
        raise GraphDefinitionError(
            f"{cls.__name__}.__call__ has no return type hint; annotate the nodes it may return "
            f"(`-> NextNode | None`)"
        )
    try:
        hints = typing.get_type_hints(call, globalns=_namespace(cls), include_extras=True)
    except NameError as exc:
        raise GraphDefinitionError(
            f"{cls.__name__}.__call__ return hint cannot be resolved: {exc}"
        ) from None
    successors: list[type[Node]] = []
    may_end = False
    for member in _union_members(hints["return"]):
        if member is None or member is type(None):
            may_end = True
        elif isinstance(member, type) and issubclass(member, Node):
            if member not in successors:
                successors.append(member)
        else:
            raise GraphDefinitionError(
                f"{cls.__name__}.__call__ may return {describe(member)}, which is not a Node "
                f"class; return hints name Node classes or None"
            )
    return tuple(successors), may_end


def inspect_node(cls: type[Node]) -> NodeSpec:
    """Build the :class:`NodeSpec` of ``cls``; raises :class:`GraphDefinitionError`."""
    if not isinstance(cls, type):
        raise GraphDefinitionError(
            f"expected a Node class, got an instance of {type(cls).__name__}: "
            f"pass the class itself (e.g. `{type(cls).__name__}`, not `{type(cls).__name__}()`)"
        )
    if not issubclass(cls, Node):
        raise GraphDefinitionError(f"{cls.__name__} is not a graphtrace.Node subclass")
    try:
        cls.model_rebuild(_types_namespace=_namespace(cls))
    except Exception as exc:
        raise GraphDefinitionError(
            f"{cls.__name__} has a field type that cannot be resolved: {exc}"
        ) from None
    fields: dict[str, FieldSpec] = {}
    for name, info in cls.model_fields.items():
        markers = [m for m in info.metadata if isinstance(m, Dep | Recall | Gate)]
        if len(markers) > 1:
            raise GraphDefinitionError(
                f"{cls.__name__}.{name} has more than one of Dep/Recall/Gate; pick one"
            )
        marker = markers[0] if markers else None
        kind: FieldKindName = (
            "dep"
            if isinstance(marker, Dep)
            else "recall"
            if isinstance(marker, Recall)
            else "gate"
            if isinstance(marker, Gate)
            else "plain"
        )
        if isinstance(marker, Gate) and marker.has_default:
            try:
                _adapter(info.annotation).validate_python(marker.default)
            except Exception as exc:
                raise GraphDefinitionError(
                    f"{cls.__name__}.{name}: Gate default {marker.default!r} does not fit "
                    f"{describe(info.annotation)}: {_first_line(exc)}"
                ) from None
        fields[name] = FieldSpec(name, kind, info.annotation, info, marker)
    successors, may_end = return_targets(cls)
    return NodeSpec(
        cls=cls,
        name=cls.__name__,
        doc=inspect.cleandoc(cls.__doc__) if cls.__doc__ else "",
        fields=fields,
        successors=successors,
        may_end=may_end,
        custom_body=not has_ellipsis_body(_own_call(cls)),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[:3]) if text else type(exc).__name__
