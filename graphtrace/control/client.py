"""The control client: send an answer to the process that holds a run, and say what came of it.

:func:`send` is the wire (one request, one reply, a deadline). :func:`answer` is what
``graphtrace answer`` and the viewer's gate prompt do (from async code, through
``asyncio.to_thread``): resolve the run in the trace files, find
the socket its gate's pending record names, skip sockets whose process is gone, send, and turn
the reply into an :class:`Outcome` with the command's exit code.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from exporters.reading.assemble import INTERRUPTED, RUNNING
from exporters.reading.errors import ReaderError
from exporters.reading.source import TraceSource
from graphtrace.control.discovery import live_sockets, socket_alive, waiting_gates
from graphtrace.control.protocol import MAX_REPLY_BYTES, ProtocolError, Refusal, Reply, Request
from graphtrace.control.sockets import connect

__all__ = [
    "ACCEPTED",
    "DEFAULT_TIMEOUT",
    "NO_PROCESS",
    "REFUSED",
    "ControlTimeout",
    "ControlUnreachable",
    "Outcome",
    "answer",
    "send",
]

DEFAULT_TIMEOUT: Final = 5.0
ACCEPTED: Final = 0
REFUSED: Final = 1
NO_PROCESS: Final = 2


class ControlUnreachable(ConnectionError):
    """Nobody listens on that socket (its process ended or closed it), or we may not use it."""


class ControlTimeout(TimeoutError):
    """The process took the connection but did not reply in time."""


def send(path: Path, request: Request, *, timeout: float = DEFAULT_TIMEOUT) -> Reply:
    """Send ``request`` to the control socket at ``path``; the process's reply.

    Raises :class:`ControlUnreachable` (no socket, nobody listening, not ours to use),
    :class:`ControlTimeout`, or :class:`ProtocolError` (the reply is not one, or the request is
    over the size limit).
    """
    data = request.encode()
    deadline = time.monotonic() + timeout
    try:
        sock = connect(path, timeout)
    except PermissionError:
        raise ControlUnreachable(
            f"not allowed to use {path}: it belongs to another user (mode 0600)"
        ) from None
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
        raise ControlUnreachable(f"nobody listens on {path} ({exc.strerror or exc})") from None
    except TimeoutError:
        raise ControlTimeout(f"{path} did not take the connection within {timeout:g}s") from None
    with sock:
        try:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server refused early (oversized, forbidden): its reply may be there
            reply = _read_reply(sock, deadline)
        except TimeoutError:
            raise ControlTimeout(f"no reply from {path} within {timeout:g}s") from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise ControlUnreachable(f"{path} closed the connection ({exc})") from None
    return Reply.decode(reply)


def _read_reply(sock: socket.socket, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk or size > MAX_REPLY_BYTES:
            break
    data = b"".join(chunks)
    if not data:
        raise ProtocolError("the process closed the connection without a reply")
    return data.split(b"\n", 1)[0]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What came of an answer: ``code`` 0 accepted, 1 refused, 2 no live process holds the run."""

    code: int
    message: str
    run_id: str | None = None
    gate_id: str | None = None
    value: Any = None
    reason: Refusal | None = None

    @property
    def accepted(self) -> bool:
        return self.code == ACCEPTED


def answer(
    trace_dir: Path,
    run: str,
    gate: str | None,
    value: Any,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> Outcome:
    """Answer ``gate`` (or the only waiting gate) of the run ``run`` names in ``trace_dir``.

    ``run`` is a run id, a unique prefix of it or of the trace id, or ``last``.
    """
    try:
        with TraceSource(trace_dir) as source:
            summary = source.resolve(run)
            gates = waiting_gates(source, summary)
    except ReaderError as exc:
        return Outcome(NO_PROCESS, str(exc))
    run_id = summary.run_id
    if summary.status == INTERRUPTED:
        return Outcome(
            NO_PROCESS, f"run {run_id} was interrupted: the process that ran it is gone", run_id
        )
    if summary.status != RUNNING:
        return Outcome(
            NO_PROCESS,
            f"run {run_id} has finished ({summary.status}): no process holds it any more",
            run_id,
        )
    # the sockets its waiting gates name (the named gate's first), then any other live one:
    # a gate that started a moment ago may not be in the trace files yet
    named = sorted(gates, key=lambda g: g.gate_id != gate)
    candidates: list[Path] = []
    for path in [g.socket for g in named if g.socket is not None] + live_sockets(trace_dir):
        if path not in candidates:
            candidates.append(path)
    request = Request(run_id, gate, value)
    problems: list[str] = []
    for path in candidates:
        if not socket_alive(path):
            problems.append(f"{path} is stale (its process is gone)")
            continue
        try:
            reply = send(path, request, timeout=timeout)
        except ProtocolError as exc:
            return Outcome(REFUSED, str(exc), run_id, gate, reason=exc.reason)
        except (ControlUnreachable, ControlTimeout) as exc:
            problems.append(str(exc))
            continue
        if reply.ok:
            return Outcome(ACCEPTED, "accepted", run_id, reply.gate or gate, reply.value)
        if reply.reason is Refusal.UNKNOWN_RUN:
            continue  # another process's socket: try the next
        if reply.reason is Refusal.FINISHED:  # ended since the trace was read: nobody holds it
            return Outcome(NO_PROCESS, reply.error or "finished", run_id, gate, reason=reply.reason)
        return Outcome(REFUSED, reply.error or "refused", run_id, gate, reason=reply.reason)
    if gates and not any(g.socket is not None for g in gates):
        listing = ", ".join(g.gate_id for g in gates)
        return Outcome(
            NO_PROCESS,
            f"run {run_id} waits at {listing}, but its process takes no answers from other "
            "processes (it has no control socket)",
            run_id,
        )
    if gates or problems:
        detail = "; ".join(problems) if problems else "no process answered for it"
        return Outcome(NO_PROCESS, f"no live process holds run {run_id}: {detail}", run_id)
    return Outcome(REFUSED, f"run {run_id} is running but waits at no gate", run_id, gate)
