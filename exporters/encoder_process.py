"""A helper process that encodes trace records as OTLP JSON lines, off the event loop's GIL.

Encoding is most of what tracing costs a busy process, and the writer thread that does it holds
the same GIL as the event loop. Once the writer has a lot to write, it starts this helper:
records go down its stdin pipe as :mod:`exporters.wire` frames (cheap to make; once the helper
answers, the thread that ends the spans makes most of them, see
:class:`~tracing.live.LiveSpanProcessor`), the helper encodes them on another core and sends
the lines back over a socket, and the writer thread appends them to the trace file itself, so
where and how lines are written does not change.

Nothing is lost to the helper: a batch it cannot take (a record the wire does not carry), an
error it reports, or its death (its pipe or socket breaks) makes the writer encode that batch,
and, after a failure, every later one, in its own process, as it would without a helper. The
helper ignores Ctrl-C (it is in a session of its own) and ends when its input closes, so it
never outlives the process that started it by more than the batch in hand.

Protocol: the helper writes ``R`` once it is ready. A request is ``!III`` (length of what
follows, spans per line, number of frames) then each frame after its length (``!I``): one
request carries every frame the writer has in hand, so that a busy process makes one round trip
per pass, not one per frame. A reply is ``!BI`` (0 for lines, 1 for an error; payload length)
then the payload: the lines as the file holds them (UTF-8, each ending in ``\\n``, as
:meth:`~exporters.file.JsonlFileWriter.write_lines` encodes them), or the error's text.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from exporters.otlp_json import encode_batch
from exporters.wire import WireError, WireReader, WireWriter

__all__ = ["EncoderProcess", "encode_frames_here", "main"]

log = logging.getLogger("graphtrace")

_REQUEST: Final = struct.Struct("!III")
_FRAME: Final = struct.Struct("!I")
_REPLY: Final = struct.Struct("!BI")
_READY: Final = b"R"
_LINES, _ERROR = 0, 1


class EncoderProcess:
    """The writer thread's side of one helper process.

    Not thread-safe: one writer thread talks to it. :meth:`encode` returns None whenever the
    caller should encode the batch itself; after a failure, :attr:`failed` is True and the
    process is gone.
    """

    def __init__(self, process: subprocess.Popen[bytes], replies: socket.socket) -> None:
        self._process = process
        self._requests: int = process.stdin.fileno()  # type: ignore[union-attr]
        self._replies = replies
        self._wire = WireWriter()
        self._ready = False
        self.failed = False
        self.encoded = 0
        """Records the helper has encoded."""

    @classmethod
    def spawn(cls) -> EncoderProcess | None:
        """Start a helper (it gets ready while the caller goes on); None if it cannot start."""
        env = dict(os.environ)
        # the child imports this package from where this process found it, installed or not
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            # Replies come over a socket, read with MSG_WAITALL: one call however long the
            # reply. A pipe gives at most its buffer per read, and the writer thread waits for
            # the GIL after every one while the event loop holds it: seconds per batch.
            replies, child_end = socket.socketpair()
        except OSError as exc:
            log.info("graphtrace: no encoder process (%s); encoding in the writer thread", exc)
            return None
        try:
            process = subprocess.Popen(
                # -P: not the working directory first on sys.path, where a package of the
                # same name would shadow ours
                [sys.executable, "-P", "-m", "exporters.encoder_process"],
                stdin=subprocess.PIPE,
                stdout=child_end.fileno(),
                stderr=subprocess.DEVNULL,
                bufsize=0,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C goes to the parent alone
            )
        except OSError as exc:
            replies.close()
            log.info("graphtrace: no encoder process (%s); encoding in the writer thread", exc)
            return None
        finally:
            child_end.close()
        return cls(process, replies)

    @property
    def ready(self) -> bool:
        """Whether the helper has started and waits for work (never blocks)."""
        if not self._ready and not self.failed:
            try:
                poller = select.poll()  # not select(): a busy process has fds past 1024
                poller.register(self._replies, select.POLLIN)
                if poller.poll(0):
                    if self._replies.recv(1) == _READY:
                        self._ready = True
                    else:  # it ended before it was ready
                        self._fail("the encoder process ended as it started")
            except (OSError, ValueError) as exc:
                self._fail(f"the encoder process is unreachable: {exc}")
        return self._ready

    def encode(self, records: Sequence[Any], starts: int, line_spans: int) -> bytes | None:
        """The lines ``encode_batch`` would make of ``records`` (``line_spans`` per line), as
        the file holds them (see :meth:`JsonlFileWriter.write_encoded`); None when the caller
        should encode them itself. The first ``starts`` records are starts (see
        :meth:`WireWriter.frame`)."""
        if not records or not self.ready:
            return None
        try:
            frame = self.frame(records, starts)
        except WireError:
            return None  # this batch only: the next may well travel
        return self.encode_frames([frame], len(records), line_spans)

    def frame(self, records: Sequence[Any], starts: int) -> bytes:
        """``records`` as a frame for :meth:`encode_frames`, made by this helper's own
        :class:`WireWriter` (one per thread: a writer is not thread-safe); raises
        :class:`WireError` for a batch the wire does not carry."""
        return self._wire.frame(records, starts)

    def encode_frames(self, frames: Sequence[bytes], records: int, line_spans: int) -> bytes | None:
        """The lines of frames made by any :class:`WireWriter` (``records`` records in all), in
        one round trip, as :meth:`encode` returns them; None when the helper is not ready or has
        failed (then :func:`encode_frames_here` makes them)."""
        if not frames or not self.ready:
            return None
        parts: list[bytes] = []
        for frame in frames:
            parts += (_FRAME.pack(len(frame)), frame)
        size = sum(map(len, parts))
        try:
            _send(self._requests, [_REQUEST.pack(size, line_spans, len(frames)), *parts])
            status, length = _REPLY.unpack(_receive(self._replies, _REPLY.size))
            payload = _receive(self._replies, length)
        except (OSError, EOFError) as exc:
            self._fail(f"the encoder process stopped answering: {exc}")
            return None
        if status != _LINES:
            reason = payload.decode("utf-8", "replace")
            self._fail(f"the encoder process failed: {reason}")
            return None
        self.encoded += records
        return payload

    def _fail(self, reason: str) -> None:
        log.warning("graphtrace: %s; encoding in the writer thread from now on", reason)
        self.failed = True
        self.close(timeout=1.0)

    def close(self, timeout: float = 5.0) -> None:
        """Close the helper's input (it ends) and wait for it; kill it after ``timeout``."""
        for stream in (self._process.stdin, self._replies):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    @property
    def pid(self) -> int:
        return self._process.pid


def _send(fd: int, buffers: list[bytes]) -> None:
    """Write ``buffers`` whole, in order: one call, unless the pipe is full or a signal cuts it
    short (a request has at most a few dozen buffers, far below the system's limit)."""
    sent = os.writev(fd, buffers)
    for at, buffer in enumerate(buffers):
        if sent < len(buffer):
            view = memoryview(buffer)[sent:]
            while view:
                view = view[os.write(fd, view) :]
            for rest in buffers[at + 1 :]:
                view = memoryview(rest)
                while view:
                    view = view[os.write(fd, view) :]
            return
        sent -= len(buffer)


def _receive(sock: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes (one call in the usual case: MSG_WAITALL). ``recv`` fills a fresh
    bytes object; a ``bytearray`` to ``recv_into`` would be zeroed first, megabytes a batch."""
    data = sock.recv(size, socket.MSG_WAITALL) if size else b""
    if len(data) == size:
        return data
    parts, got = [data], len(data)
    while got < size:
        if not data:
            raise EOFError(f"the encoder process closed its end after {got} of {size} bytes")
        data = sock.recv(size - got, socket.MSG_WAITALL)
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def encode_frames_here(
    frames: Sequence[bytes], line_spans: int, reader: WireReader | None = None
) -> list[str]:
    """The records of ``frames`` as OTLP JSON lines of ``line_spans`` records, encoded in this
    process: the helper's work, and the writer's for frames made for a helper that is gone."""
    reader = reader or WireReader()
    records = [record for frame in frames for record in reader.records(frame)]
    return [encode_batch(records[i : i + line_spans]) for i in range(0, len(records), line_spans)]


def main() -> int:
    """The helper: frames in on stdin, lines out on stdout (the socket), until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this ends
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    reader = WireReader()
    stdout.write(_READY)
    stdout.flush()
    while True:
        head = stdin.read(_REQUEST.size)
        if len(head) != _REQUEST.size:
            return 0  # the writer is done, or gone
        length, line_spans, count = _REQUEST.unpack(head)
        body = stdin.read(length)
        if len(body) != length:
            return 0
        try:
            frames, at = [], 0
            for _ in range(count):
                (size,) = _FRAME.unpack_from(body, at)
                at += _FRAME.size
                frames.append(body[at : at + size])
                at += size
            lines = encode_frames_here(frames, line_spans, reader)
            text = "\n".join(lines) + "\n"
            status, payload = _LINES, text.encode("utf-8", "backslashreplace")  # as the file
        except Exception as exc:  # reported, and the writer encodes this batch itself
            status, payload = _ERROR, f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")
        stdout.write(_REPLY.pack(status, len(payload)))
        stdout.write(payload)
        stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
