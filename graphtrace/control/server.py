"""The control server: answers for waiting gates from other processes, over a Unix socket.

It lives inside the process that runs the graphs, as a task of whoever owns the runs (the
:class:`~graphtrace.pool.RunPool`): the socket is bound when the first gate starts waiting and
closed when none waits any more, so a process with nothing to answer listens on nothing. Each
gate's pending record names the socket (``graphtrace.gate.socket``); that is how ``graphtrace
answer`` and ``tail`` find it.

A connection carries one request (see :mod:`graphtrace.control.protocol`). The answer is handed
to the run's :class:`~graphtrace.gates.PendingGate`, which validates it against the field's type;
the first valid answer wins. Nothing a client does can hurt the runtime: each connection has a
deadline and a size cap, runs in its own task, and at most ``max_connections`` are served at
once (more are told ``busy``); errors in a connection end that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final

from graphtrace.control.protocol import (
    MAX_REQUEST_BYTES,
    ProtocolError,
    Refusal,
    Reply,
    Request,
)
from graphtrace.control.sockets import (
    PEER_CHECK,
    bind_private,
    control_dir,
    peer_uid,
    socket_name,
    sweep_stale,
)
from graphtrace.errors import GateRefused
from graphtrace.gates import PendingGate
from graphtrace.run import Run, RunState

__all__ = ["ANSWERED_BY", "ControlServer", "RunLookup"]

log = logging.getLogger("graphtrace")

ANSWERED_BY: Final = "socket"
"""``graphtrace.gate.answered_by`` of a gate answered through the control socket."""

RunLookup = Callable[[str], "Run | RunState | None"]
"""Run id → the live run, the final state of a run that ended recently, or None."""
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]

_ACCEPT_PAUSE: Final = 0.1  # seconds to stop accepting after accept() itself fails (EMFILE)


class _Listener:
    """One bound socket and the serving task's stop signal."""

    __slots__ = ("closed", "reading", "sock", "stop")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.stop = asyncio.Event()
        self.reading = False
        self.closed = False

    def close(self, path: Path) -> None:
        """Stop accepting, close and remove the socket; the serving task then winds down."""
        if self.closed:
            return
        self.closed = True
        if self.reading:
            # on the loop thread, before the fd closes: a selector must never watch a closed fd
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.reading = False
        self.sock.close()
        with contextlib.suppress(OSError):
            path.unlink()
        self.stop.set()


class ControlServer:
    """Takes answers for the gates of the runs ``lookup`` finds, on ``TRACE_DIR/control/``.

    The owner calls :meth:`gate_opened` before each gate's span opens (it returns the socket
    path for the span's attributes) and :meth:`gate_closed` when the gate stops waiting. The
    serving task is started with ``spawn`` (the owner's ``TaskGroup.create_task``), so it ends
    with its owner; it also ends by itself once no gate waits.
    """

    def __init__(
        self,
        trace_dir: Path,
        lookup: RunLookup,
        spawn: Spawn,
        *,
        io_timeout: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        self.trace_dir = trace_dir.absolute()  # the pending record must name it from any cwd
        self.path = control_dir(self.trace_dir) / socket_name()
        """Where the socket is while gates wait (the same path each time it is re-bound)."""
        self.io_timeout = io_timeout
        self.max_connections = max_connections
        self.waiting = 0
        """Gates waiting now."""
        self.connections = 0
        """Connections being served now."""
        self._lookup = lookup
        self._spawn = spawn
        self._listener: _Listener | None = None
        self._bind_error_logged = False

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.closed

    # -- the owner's side -----------------------------------------------------------------

    def gate_opened(self) -> str | None:
        """A gate starts waiting: listen (if not already); returns the socket path.

        Returns None when the socket cannot be bound (read-only trace dir, a path too long):
        the gate still waits and can be answered in-process or by its timeout, so this is
        logged once instead of failing the run.
        """
        self.waiting += 1
        if not self.listening:
            try:
                self._start()
            except (OSError, RuntimeError) as exc:  # RuntimeError: the owner is shutting down
                if not self._bind_error_logged:
                    self._bind_error_logged = True
                    log.warning(
                        "graphtrace: cannot listen for gate answers on %s: %s; gates can only "
                        "be answered in this process",
                        self.path,
                        exc,
                    )
                return None
        return str(self.path)

    def gate_closed(self) -> None:
        """A gate stopped waiting (answered, timed out, cancelled); the last one closes the
        socket."""
        self.waiting = max(0, self.waiting - 1)
        if self.waiting == 0 and self._listener is not None:
            self._listener.close(self.path)
            self._listener = None

    def close(self) -> None:
        """Stop listening now (the owner is shutting down); waiting gates stay answerable
        in-process."""
        if self._listener is not None:
            self._listener.close(self.path)
            self._listener = None

    def _start(self) -> None:
        directory = control_dir(self.trace_dir, create=True)
        sweep_stale(directory)
        listener = _Listener(bind_private(self.path))
        try:
            self._spawn(self._serve(listener))
        except BaseException:  # the owner is closing and takes no more tasks
            listener.close(self.path)
            raise
        self._listener = listener

    # -- serving ----------------------------------------------------------------------------

    async def _serve(self, listener: _Listener) -> None:
        """Accept connections until the listener closes, then wait for the ones in flight."""
        if listener.closed:  # closed before this task got to run
            return
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.TaskGroup() as connections:

                def accept_ready() -> None:
                    # a reader callback rather than a sock_accept() loop: no task or future per
                    # connection, and closing the listener from gate_closed() is synchronous
                    while not listener.closed:
                        try:
                            conn, _ = listener.sock.accept()
                        except (BlockingIOError, InterruptedError):
                            return
                        except OSError as exc:
                            self._pause_accepting(listener, exc, accept_ready)
                            return
                        conn.setblocking(False)
                        if self.connections >= self.max_connections:
                            _refuse_at_once(conn, Refusal.BUSY, "too many connections; try again")
                            continue
                        self.connections += 1
                        try:
                            connections.create_task(self._connection(conn))
                        except RuntimeError:  # the group is closing: no new work
                            self.connections -= 1
                            conn.close()
                            return

                loop.add_reader(listener.sock.fileno(), accept_ready)
                listener.reading = True
                await listener.stop.wait()
        finally:
            listener.close(self.path)  # cancelled with the owner: never leave a reader behind

    def _pause_accepting(
        self, listener: _Listener, exc: OSError, resume: Callable[[], None]
    ) -> None:
        """accept() failed (out of descriptors): the socket stays readable, so stop watching it
        for a moment instead of spinning on it, then watch it again."""
        log.warning("graphtrace: control socket accept failed: %s", exc)
        loop = asyncio.get_running_loop()
        loop.remove_reader(listener.sock.fileno())
        listener.reading = False

        def watch_again() -> None:
            if not listener.closed and not listener.reading:
                loop.add_reader(listener.sock.fileno(), resume)
                listener.reading = True

        loop.call_later(_ACCEPT_PAUSE, watch_again)

    async def _connection(self, conn: socket.socket) -> None:
        """Serve one connection: read the request, answer the gate, send the reply."""
        loop = asyncio.get_running_loop()
        try:
            with conn:
                reply = await self._reply_to(loop, conn)
                async with asyncio.timeout(self.io_timeout):
                    await loop.sock_sendall(conn, reply.encode())
        except (TimeoutError, OSError):
            pass  # the client went away or stopped reading: its loss, nothing to undo
        except Exception:  # a bug here must not end the serving task or the runs
            log.exception("graphtrace: control connection failed")
        finally:
            self.connections -= 1

    async def _reply_to(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> Reply:
        uid = peer_uid(conn)
        if uid is not None and uid != os.geteuid():
            return Reply.refused(
                Refusal.FORBIDDEN,
                f"uid {uid} may not answer the gates of uid {os.geteuid()}'s runs "
                f"(checked with {PEER_CHECK})",
            )
        try:
            async with asyncio.timeout(self.io_timeout):
                data = await _read_request(loop, conn)
            request = Request.decode(data)
        except TimeoutError:
            return Reply.refused(
                Refusal.MALFORMED, f"no complete request within {self.io_timeout:g}s"
            )
        except ProtocolError as exc:
            return Reply.refused(exc.reason, str(exc))
        return self.dispatch(request)

    def dispatch(self, request: Request) -> Reply:
        """Hand ``request`` to its gate; the reply says accepted or why not. Never raises
        for anything a client can send."""
        found = self._lookup(request.run)
        if found is None:
            return Reply.refused(
                Refusal.UNKNOWN_RUN, f"no run {request.run} in process {os.getpid()}"
            )
        if isinstance(found, RunState):
            return _finished(request.run, found)
        run = found
        if run.state.finished:
            return _finished(run.run_id, run.state)
        gate = self._gate_of(run, request.gate)
        if isinstance(gate, Reply):
            return gate
        try:
            value = gate.answer(request.value, by=ANSWERED_BY)
        except GateRefused as exc:
            # the only refusal left once the gate is known to wait: the value does not fit
            return Reply.refused(Refusal.INVALID, str(exc))
        return Reply.accepted(_jsonable(gate, value), gate.gate_id)

    @staticmethod
    def _gate_of(run: Run, gate_id: str | None) -> PendingGate | Reply:
        waiting = run.waiting_gates
        listing = ", ".join(g.gate_id for g in waiting) or "none"
        if gate_id is None:
            if len(waiting) == 1:
                gate = waiting[0]
            elif waiting:
                return Reply.refused(
                    Refusal.GATE_NEEDED,
                    f"run {run.run_id} waits at {len(waiting)} gates ({listing}): name one",
                )
            elif run.answered:
                last, by = next(reversed(run.answered.items()))
                return Reply.refused(
                    Refusal.ANSWERED,
                    f"run {run.run_id} waits at no gate: {last} was already answered ({by})",
                )
            else:
                return Reply.refused(Refusal.UNKNOWN_GATE, f"run {run.run_id} waits at no gate")
        else:
            found = next((g for g in waiting if g.gate_id == gate_id), None)
            if found is None:
                earlier = run.answered.get(gate_id)
                if earlier is not None:
                    return Reply.refused(
                        Refusal.ANSWERED,
                        f"gate {gate_id} of run {run.run_id} was already answered ({earlier})",
                    )
                return Reply.refused(
                    Refusal.UNKNOWN_GATE,
                    f"run {run.run_id} has no waiting gate {gate_id!r} (waiting: {listing})",
                )
            gate = found
        if gate.answered:  # answered a moment ago; the run has not resumed yet
            return Reply.refused(
                Refusal.ANSWERED,
                f"gate {gate.gate_id} of run {run.run_id} was already answered "
                f"({gate.answered_by or 'unknown'})",
            )
        return gate


async def _read_request(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bytes:
    """Bytes up to the first newline or the client's end of sending, at most the size cap."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await loop.sock_recv(conn, 65536)
        if not chunk:
            break
        newline = chunk.find(b"\n")
        if newline >= 0:
            chunks.append(chunk[:newline])
            size += newline
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            break
    if size > MAX_REQUEST_BYTES:
        raise ProtocolError(f"request larger than {MAX_REQUEST_BYTES} bytes", Refusal.TOO_LARGE)
    if not size:
        raise ProtocolError("empty request: send one JSON object and a newline")
    return b"".join(chunks)


def _refuse_at_once(conn: socket.socket, reason: Refusal, message: str) -> None:
    """Best-effort refusal without a task (for when there is no room for one), then close."""
    with conn:
        with contextlib.suppress(OSError):
            conn.send(Reply.refused(reason, message).encode())


def _finished(run_id: str, state: RunState) -> Reply:
    return Reply.refused(Refusal.FINISHED, f"run {run_id} has finished ({state.value})")


def _jsonable(gate: PendingGate, value: Any) -> Any:
    """The validated value as JSON data (a model, a date…) for the reply."""
    try:
        return gate.spec.adapter.dump_python(value, mode="json")
    except Exception:  # a type pydantic cannot dump: its text is still informative
        return str(value)
