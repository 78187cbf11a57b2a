"""Why an export failed, although the SDK's OTLP exporter only says SUCCESS or FAILURE.

Two sources, both through the exporter's public surface. An
:class:`~exporters.forwarding.session.ObservedSession` is the ``requests.Session`` we hand the
exporter: it notes the last HTTP status or connection error.
:func:`capture` keeps what the exporter logs on the calling thread (instead of printing a burst
of retry warnings into the live view of ``graphtrace run``); other threads, such as the
application's own exporters, log as before. :func:`describe` makes one short reason of them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from exporters.forwarding.session import ObservedSession

__all__ = ["ERRNO", "capture", "describe"]

# The loggers the SDK's OTLP/HTTP span exporter writes to, across the versions we accept.
_LOGGERS: Final = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.exporter.otlp.common.http",
)
_KEEP: Final = 8  # the last few messages of one export are enough to say why it failed


class _Capture(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.sinks: dict[int, list[str]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        sink = self.sinks.get(record.thread or 0)
        if sink is None:
            return True
        try:
            sink.append(record.getMessage())
        except Exception:  # a bad format string must not break the export
            sink.append(str(record.msg))
        del sink[:-_KEEP]
        return False


_capture = _Capture()
_install_lock = threading.Lock()
_installed = False


def _install() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            for name in _LOGGERS:
                logging.getLogger(name).addFilter(_capture)
            _installed = True


@contextlib.contextmanager
def capture() -> Iterator[list[str]]:
    """Keep (instead of print) what the exporter logs on this thread; yields the messages."""
    _install()
    ident = threading.get_ident()
    messages: list[str] = []
    previous = _capture.sinks.get(ident)
    _capture.sinks[ident] = messages
    try:
        yield messages
    finally:
        if previous is None:
            _capture.sinks.pop(ident, None)
        else:
            _capture.sinks[ident] = previous


# a socket error inside an error message: "[Errno 111] Connection refused"
ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
_CODE = re.compile(r"code: (\d{3})\b(?:, reason: ([^\n]*))?")
_TRANSIENT = re.compile(r"Transient error (.+?) encountered")


def describe(messages: list[str], session: ObservedSession | None = None) -> str:
    """A short reason: ``connection refused``, ``HTTP 503 Service Unavailable``, ``timed out``.

    What the session saw comes first; then the exporter's messages.

    Of the messages, the most specific thing said wins: a status code, then a socket error,
    then the error a retry was for (the last message of a retried export only says that it
    gave up).
    """
    if session is not None and session.last:
        return session.last
    for pattern in (_CODE, ERRNO, _TRANSIENT):
        for message in reversed(messages):
            if match := pattern.search(message):
                if pattern is _CODE:
                    reason = (match.group(2) or "").strip()
                    if reason in ("None", "unknown"):
                        reason = ""
                    return f"HTTP {match.group(1)}" + (f" {reason}" if reason else "")
                text = match.group(1).strip()
                return text.lower() if pattern is ERRNO else _cut(text)
    for message in reversed(messages):
        if "timed out" in message.lower() or "timeout" in message.lower():
            return "timed out"
    if messages and messages[-1].strip():
        return _cut(messages[-1].strip().splitlines()[0])
    return "the exporter failed without saying why"


def _cut(text: str) -> str:
    return text if len(text) <= 160 else text[:157] + "..."
