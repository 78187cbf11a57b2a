"""Field kinds: how a node field gets its value when the runtime resolves the node.

A field annotated with one of these markers through ``typing.Annotated`` is resolved by the
runtime; a plain field is a start input on the start node and is filled by the LM elsewhere.

Example::

    class Triage(Node):
        ticket: str                                           # start input / LM
        history: Annotated[list[str], Dep(load_history)]      # computed
        customer: Annotated[str, Recall()]                    # from an earlier node
        approved: Annotated[bool, Gate("Send it?", default=False)]  # a person answers
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class _Missing:
    """Sentinel for 'no default'; distinct from ``None``, which is a valid default."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class Dep:
    """The field is the return value of ``fn``, called once per run.

    ``fn`` may be sync or async. Its parameters are filled by name from the node's other fields,
    or, when annotated ``Annotated[T, Dep(other)]``, from another dep (a chain).
    """

    fn: Callable[..., Any]

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"Dep() takes a function, got {self.fn!r}")

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", None) or repr(self.fn)


@dataclass(frozen=True, slots=True)
class Recall:
    """The field takes the latest value of the same name from an earlier node of the run."""

    name: str | None = None
    """Recall another field name instead of this field's own."""


@dataclass(frozen=True, slots=True)
class Gate:
    """The field is answered by a person; the answer is validated against the field's type.

    ``default`` is used by ``--auto-answer`` and when ``timeout`` (seconds) expires.
    """

    prompt: str
    default: Any = MISSING
    timeout: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt:
            raise TypeError("Gate() needs a prompt: Gate('Approve the refund?')")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"Gate timeout must be positive seconds, got {self.timeout!r}")

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING


FieldKind = Dep | Recall | Gate
