"""The span processor that forwards spans over OTLP/HTTP without ever holding up the runs.

Spans are put on a bounded queue of their own (an append; nothing else on the caller's thread)
and a worker thread sends them in batches through the SDK's ``OTLPSpanExporter``. A slow
endpoint makes the queue grow, an absent or failing one makes batches fail: neither touches
the event loop or the local file, which has its own queue and writer. What cannot be forwarded
is counted (``lost``) and written into the trace as ``forward.lost`` records
(:mod:`exporters.forwarding.loss`), so ``graphtrace push`` can send it later.

Pending records stay local unless ``forward_pending=True``: the file has them for the live
view, while a backend would show each as an extra zero-length span.

At shutdown the endpoint gets up to ``drain_timeout`` seconds to take what is queued, and no more
once an export is being retried (waiting out the retries of a dead endpoint would only hold up
the exit); the rest is counted as lost.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from exporters.forwarding.ledger import Ledger
from exporters.forwarding.loss import LossTally
from exporters.forwarding.sender import Sender
from exporters.otlp_json import PENDING_ATTRIBUTE, PENDING_PARENT_ATTRIBUTE, Started

__all__ = ["ForwardReport", "ForwardingSpanProcessor"]

log = logging.getLogger("graphtrace")

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


@dataclass(frozen=True, slots=True)
class ForwardReport:
    """How forwarding to one endpoint went, for the end of ``graphtrace run``."""

    endpoint: str
    sent: int
    lost: int
    reason: str | None  # why spans were lost (the latest failure), if any were

    def summary(self, trace_dir: Path | None = None) -> str:
        """One line: what was forwarded, or what was lost and how to send it later."""
        if not self.lost:
            return f"forwarded {self.sent:,} span(s) to {self.endpoint}"
        push = f"graphtrace push --all --endpoint {self.endpoint}"
        if trace_dir is not None:
            push += f" --trace-dir {trace_dir}"
        because = f" ({self.reason})" if self.reason else ""
        return (
            f"{self.lost:,} span(s) could not be forwarded to {self.endpoint}{because}; "
            f"{self.sent:,} were. The trace files hold them all; send the rest with  {push}"
        )


class ForwardingSpanProcessor(SpanProcessor):
    """Forwards ended spans (and pending records when asked) to an OTLP/HTTP endpoint.

    ``local`` writes a record to the local trace file (the live processor's ``write``): the
    ``forward.lost`` records go there. ``ledger`` remembers the runs delivered whole.

    Example::

        forwarder = ForwardingSpanProcessor("http://localhost:4318/v1/traces")
        provider.add_span_processor(forwarder)
        ...
        forwarder.shutdown()
        print(forwarder.report().summary())
    """

    def __init__(
        self,
        endpoint: str,
        *,
        headers: dict[str, str] | None = None,
        exporter: SpanExporter | None = None,
        forward_pending: bool = False,
        local: Callable[[ReadableSpan], None] | None = None,
        ledger: Ledger | None = None,
        max_queue: int = 32_768,
        batch_size: int = 512,
        interval: float = 0.2,
        drain_timeout: float = 5.0,
        timeout: float | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.sender = Sender(endpoint, headers=headers, timeout=timeout, exporter=exporter)
        self.forward_pending = forward_pending
        self.local = local
        self.ledger = ledger
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.interval = interval
        self.drain_timeout = drain_timeout
        self.sent = 0
        self.last_error: str | None = None
        self._losses = LossTally()
        self._queue: deque[ReadableSpan | Started] = deque()
        self._lock = threading.Lock()  # guards _batch between the worker and shutdown
        self._batch: list[ReadableSpan] | None = None  # being exported now
        self._wake = threading.Event()
        self._passes = threading.Condition()
        self._pass_count = 0
        self._closed = False
        self._abandoned = False
        self._ledger_error_logged = False
        self._warned = False  # about the first failed export; the summary says the rest
        self._thread = threading.Thread(target=self._run, name="graphtrace-forwarder", daemon=True)
        self._thread.start()

    @property
    def lost(self) -> int:
        """Spans (and pending records) that could not be forwarded so far."""
        return self._losses.total

    def report(self) -> ForwardReport:
        """What was sent and lost so far."""
        return ForwardReport(self.endpoint, self.sent, self.lost, self.last_error)

    # -- producer side: any thread, usually the event loop; never waits ----------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not self.forward_pending:
            return
        # the attributes the span started with, before the code that opened it changes them
        attributes = getattr(span, "_start_attributes", None)
        if attributes is None:
            attributes = dict(span.attributes or {})
        self._put(Started(span, attributes))

    def on_end(self, span: ReadableSpan) -> None:
        self._put(span)

    def _put(self, item: ReadableSpan | Started) -> None:
        queue = self._queue
        if self._closed or len(queue) >= self.max_queue:
            # a full queue means the endpoint is slower than the runs: drop rather than wait
            reason = "forwarding had stopped" if self._closed else "the forwarding queue was full"
            self._losses.add([_span_of(item)], reason)
            return
        queue.append(item)
        if len(queue) == self.batch_size:
            self._wake.set()

    # -- the worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self._send_queued()
            except Exception as exc:  # a bug here must not stop forwarding for good
                log.error("graphtrace: forwarding to %s failed: %s", self.endpoint, exc)
            self._write_losses()
            with self._passes:
                self._pass_count += 1
                self._passes.notify_all()
            if self._abandoned or (self._closed and not self._queue):
                return

    def _send_queued(self) -> None:
        queue = self._queue
        while queue and not self._abandoned:
            batch: list[ReadableSpan] = []
            while queue and len(batch) < self.batch_size:
                item = queue.popleft()
                batch.append(_pending_span(item) if isinstance(item, Started) else item)
            with self._lock:
                self._batch = batch
            reason = self.sender.export(batch)
            with self._lock:
                mine = self._batch is batch  # else shutdown gave up on it and counted it
                self._batch = None
            if not mine:
                return
            if reason is None:
                self.sent += len(batch)
                self._remember_delivered(batch)
            else:
                self.last_error = reason
                self._losses.add(batch, reason)
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "graphtrace: cannot forward spans to %s (%s); they stay in the trace "
                        "files and are counted",
                        self.endpoint,
                        reason,
                    )
                self._write_losses()

    def _remember_delivered(self, batch: list[ReadableSpan]) -> None:
        if self.ledger is None:
            return
        roots = [
            s.context.trace_id.to_bytes(16, "big").hex()
            for s in batch
            if s.context is not None
            and (s.parent is None or s.parent.is_remote)
            and (s.attributes or {}).get(PENDING_ATTRIBUTE) is not True
        ]
        if not roots:
            return
        try:
            self.ledger.record_live(roots)
        except OSError as exc:
            if not self._ledger_error_logged:
                self._ledger_error_logged = True
                log.error(
                    "graphtrace: cannot record forwarded runs in %s: %s (graphtrace push will "
                    "send them again)",
                    self.ledger.path,
                    exc,
                )

    def _write_losses(self) -> None:
        records = self._losses.records(self.endpoint)
        if records and self.local is not None:
            for record in records:
                self.local(record)

    # -- lifecycle -----------------------------------------------------------------------------

    def _struggling(self) -> bool:
        """The export under way is failing: the exporter is retrying it (it said so, or our
        session saw the error)."""
        with self._lock:
            in_flight = self._batch is not None
        return in_flight and self.sender.retrying()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Send everything queued so far; True when done within the timeout."""
        deadline = time.monotonic() + timeout_millis / 1000.0
        with self._passes:
            # the pass under way may have started before this call: wait for the one after it
            target = self._pass_count + 2
            while self._pass_count < target and self._thread.is_alive():
                self._wake.set()
                if not self._passes.wait(timeout=max(0.0, deadline - time.monotonic())):
                    return False
        return not self._queue

    def shutdown(self) -> None:
        """Send what is queued within ``drain_timeout`` (less if the endpoint is failing),
        count the rest as lost and write their ``forward.lost`` records, stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        deadline = time.monotonic() + self.drain_timeout
        struggling = False
        while self._thread.is_alive() and time.monotonic() < deadline:
            if struggling := self._struggling():
                break  # waiting out the exporter's retries on a failing endpoint is pointless
            self._thread.join(timeout=0.05)
        if self._thread.is_alive():  # the endpoint is slow or down: stop waiting for it
            if struggling:
                reason = self.sender.reason()
            else:
                reason = f"not taken within {self.drain_timeout:g} s of the end"
            with self._lock:
                self._abandoned = True
                batch, self._batch = self._batch, None
            left = [_span_of(item) for item in _take_all(self._queue)]
            self._losses.add([*(batch or []), *left], reason)
            self.last_error = reason
        self.sender.shutdown()  # also cuts short a retry the exporter is waiting on
        self._write_losses()


def _take_all(queue: deque[ReadableSpan | Started]) -> list[ReadableSpan | Started]:
    out = []
    while True:
        try:
            out.append(queue.popleft())
        except IndexError:
            return out


def _span_of(item: ReadableSpan | Started) -> ReadableSpan:
    return _pending_span(item) if isinstance(item, Started) else item


def _pending_span(item: Started) -> ReadableSpan:
    """The pending record of a span that started, as the file has it: a zero-length span with
    its own id, the started span as parent and ``graphtrace.pending = true``."""
    span = item.span
    ctx = span.context
    attributes = dict(item.attributes)
    attributes[PENDING_ATTRIBUTE] = True
    if span.parent is not None:
        attributes[PENDING_PARENT_ATTRIBUTE] = span.parent.span_id.to_bytes(8, "big").hex()
    trace_id = ctx.trace_id if ctx is not None else 0
    return ReadableSpan(
        name=span.name,
        context=SpanContext(trace_id, random.getrandbits(64) or 1, False, _SAMPLED),
        parent=ctx,
        resource=span.resource,
        attributes=attributes,
        kind=span.kind,
        start_time=span.start_time,
        end_time=span.start_time,
        instrumentation_scope=span.instrumentation_scope,
    )
