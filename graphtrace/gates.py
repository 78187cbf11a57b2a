"""Human gates inside a run: the waiting record, answering it, and its timeout.

A gate is a field answered by a person. While a run waits, its :class:`PendingGate` can be
answered in-process with :meth:`PendingGate.answer` (the CLI prompt and, across processes, the
control socket both end up there). The first valid answer wins; an invalid one raises
:class:`~graphtrace.errors.GateRefused` and the gate keeps waiting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from graphtrace.errors import GateRefused
from graphtrace.fields import Gate
from graphtrace.spec import FieldSpec, describe


@dataclass(eq=False)
class PendingGate:
    """A gate that waits for an answer."""

    run_id: str
    gate_id: str
    node: str
    field: str
    prompt: str
    spec: FieldSpec
    started: float = dataclasses.field(default_factory=time.monotonic)
    answered_by: str | None = None
    _future: asyncio.Future[Any] = dataclasses.field(
        default_factory=lambda: asyncio.get_running_loop().create_future(), repr=False
    )

    @property
    def gate(self) -> Gate:
        assert isinstance(self.spec.marker, Gate)
        return self.spec.marker

    @property
    def expected_type(self) -> str:
        return describe(self.spec.annotation)

    @property
    def schema(self) -> dict[str, Any]:
        """The JSON Schema an answer must satisfy."""
        return self.spec.adapter.json_schema()

    @property
    def answered(self) -> bool:
        return self._future.done()

    def validate(self, value: Any) -> Any:
        """The value converted to the field's type; raises GateRefused if it does not fit."""
        try:
            return self.spec.adapter.validate_python(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()
            )
            raise GateRefused(
                f"{value!r} is not a valid {self.expected_type} for {self.gate_id}: {problems}"
            ) from None

    def answer(self, value: Any, *, by: str = "api") -> Any:
        """Answer the gate; returns the validated value or raises GateRefused."""
        if self._future.done():
            raise GateRefused(f"gate {self.gate_id} of run {self.run_id} is already answered")
        validated = self.validate(value)
        self.answered_by = by
        self._future.set_result(validated)
        return validated

    async def wait(self) -> Any:
        """The answer, once given; the gate's timeout (if any) raises TimeoutError."""
        timeout = self.gate.timeout
        if timeout is None:
            return await asyncio.shield(self._future)
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self._future)

    async def settled(self) -> None:
        """Return once the gate no longer waits: answered (by anyone), abandoned or closed.

        For a prompt that must go away when the gate is answered elsewhere; unlike
        :meth:`wait`, it neither raises nor applies the gate's timeout.
        """
        await asyncio.wait([self._future])

    def abandon(self, error: Exception) -> None:
        """End the wait with ``error`` (no answer can come, e.g. nobody can be asked)."""
        if not self._future.done():
            self._future.set_exception(error)

    def close(self) -> None:
        """Refuse further answers (the run moved on or ended)."""
        if not self._future.done():
            self._future.cancel()


def encode_answer(value: Any) -> str:
    """The answer as JSON text for the gate span."""
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)
