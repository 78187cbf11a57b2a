"""The control socket's wire format: one JSON request per connection, one JSON reply.

A client connects, sends ``{"run": RUN_ID, "gate": GATE_ID or null, "value": ANY}`` followed by a
newline (or closes its side), and reads one reply, also one JSON line::

    {"ok": true, "value": <the validated answer>, "gate": "<the gate it answered>"}
    {"ok": false, "error": "<one line for a person>", "reason": "<a Refusal value>"}

``reason`` lets scripts (and ``graphtrace answer``'s exit code) tell the refusals apart without
parsing the message. Requests are capped at :data:`MAX_REQUEST_BYTES`, so a client cannot make
the runtime buffer without end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "MAX_ERROR_CHARS",
    "MAX_REPLY_BYTES",
    "MAX_REQUEST_BYTES",
    "ProtocolError",
    "Refusal",
    "Reply",
    "Request",
]

MAX_REQUEST_BYTES: Final = 64 * 1024
# The reply echoes the validated answer, which is no bigger than the request that carried it;
# the rest is the message. Room for both.
MAX_REPLY_BYTES: Final = 2 * MAX_REQUEST_BYTES
MAX_ERROR_CHARS: Final = 4000


class Refusal(StrEnum):
    """Why the runtime did not take an answer."""

    INVALID = "invalid"  # the value does not validate against the field's type
    UNKNOWN_RUN = "unknown_run"  # this process holds no such run
    UNKNOWN_GATE = "unknown_gate"  # the run does not wait at that gate
    GATE_NEEDED = "gate_needed"  # no gate named and the run waits at more than one
    ANSWERED = "answered"  # the gate already has its answer (the first valid one wins)
    FINISHED = "finished"  # the run has ended
    MALFORMED = "malformed"  # not a request: bad JSON, wrong shape, cut short
    TOO_LARGE = "too_large"  # more than MAX_REQUEST_BYTES
    FORBIDDEN = "forbidden"  # the peer is another user
    BUSY = "busy"  # too many connections at once; try again
    INTERNAL = "internal"  # a bug in the runtime; the run is unaffected


class ProtocolError(Exception):
    """Bytes that are not a valid request or reply; ``reason`` says which kind of wrong."""

    def __init__(self, message: str, reason: Refusal = Refusal.MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Request:
    """An answer for one gate of one run; ``gate=None`` means the run's only waiting gate."""

    run: str
    gate: str | None
    value: Any

    def encode(self) -> bytes:
        """One JSON line. Raises ProtocolError when it would be over the size limit."""
        data = (
            json.dumps(
                {"run": self.run, "gate": self.gate, "value": self.value},
                ensure_ascii=False,
                allow_nan=False,
            ).encode()
            + b"\n"
        )
        if len(data) > MAX_REQUEST_BYTES:
            raise ProtocolError(
                f"the answer is {len(data)} bytes encoded; the limit is {MAX_REQUEST_BYTES}",
                Refusal.TOO_LARGE,
            )
        return data

    @classmethod
    def decode(cls, data: bytes) -> Request:
        """The request in ``data`` (one JSON object); raises ProtocolError when it is not one."""
        if len(data) > MAX_REQUEST_BYTES:
            raise ProtocolError(f"request larger than {MAX_REQUEST_BYTES} bytes", Refusal.TOO_LARGE)
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise ProtocolError(f"request is not JSON: {_short(exc)}") from None
        if not isinstance(doc, dict):
            raise ProtocolError(
                f'request must be a JSON object {{"run", "gate", "value"}}, '
                f"got {type(doc).__name__}"
            )
        unknown = sorted(set(doc) - {"run", "gate", "value"})
        if unknown:
            raise ProtocolError(f"request has unknown key(s): {', '.join(unknown)}")
        run, gate = doc.get("run"), doc.get("gate")
        if not isinstance(run, str) or not run:
            raise ProtocolError('request needs "run": a run id (a non-empty string)')
        if gate is not None and (not isinstance(gate, str) or not gate):
            raise ProtocolError('"gate" must be a gate id (a non-empty string) or null')
        if "value" not in doc:
            raise ProtocolError('request needs "value": the answer')
        return cls(run, gate, doc["value"])


@dataclass(frozen=True, slots=True)
class Reply:
    """Accepted (``ok``, with the validated value and the gate it answered) or refused
    (``error`` and ``reason``)."""

    ok: bool
    value: Any = None
    error: str | None = None
    reason: Refusal | None = None
    gate: str | None = None

    @classmethod
    def accepted(cls, value: Any, gate: str) -> Reply:
        return cls(True, value=value, gate=gate)

    @classmethod
    def refused(cls, reason: Refusal, error: str) -> Reply:
        if len(error) > MAX_ERROR_CHARS:
            error = error[:MAX_ERROR_CHARS] + "…"
        return cls(False, error=error, reason=reason)

    def encode(self) -> bytes:
        """One JSON line; a value JSON cannot hold is sent as its text."""
        doc: dict[str, Any] = (
            {"ok": True, "value": self.value, "gate": self.gate}
            if self.ok
            else {"ok": False, "error": self.error, "reason": str(self.reason)}
        )
        data = json.dumps(doc, ensure_ascii=False, default=str).encode() + b"\n"
        if len(data) > MAX_REPLY_BYTES:  # only an enormous echoed value gets here
            return Reply(True, value=f"<{len(data)} bytes>", gate=self.gate).encode()
        return data

    @classmethod
    def decode(cls, data: bytes) -> Reply:
        """The reply in ``data``; raises ProtocolError when it is not one."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"reply is not JSON: {_short(exc)}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
            raise ProtocolError('reply must be a JSON object with a boolean "ok"')
        if doc["ok"]:
            gate = doc.get("gate")
            return cls(True, value=doc.get("value"), gate=gate if isinstance(gate, str) else None)
        try:
            reason = Refusal(str(doc.get("reason")))
        except ValueError:
            reason = Refusal.INTERNAL  # a newer runtime's reason: still a refusal
        return cls(False, error=str(doc.get("error") or "refused"), reason=reason)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"
