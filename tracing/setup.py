"""Installing graphtrace's tracing: the provider, the live file processor, optional forwarding.

``configure()`` is idempotent per process: calling it again (another trace dir, a test's temp
dir) flushes and closes the previous file pipeline and routes spans to the new one. When the
application already installed an SDK ``TracerProvider``, graphtrace adds its processor to it
instead of replacing it.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from exporters.file import JsonlFileWriter
from exporters.forwarding.endpoint import parse_headers, traces_url
from exporters.forwarding.ledger import Ledger
from exporters.forwarding.processor import ForwardingSpanProcessor, ForwardReport
from tracing.live import LiveSpanProcessor
from tracing.open_spans import OpenSpans
from tracing.provider import FanOut, LeanTracerProvider
from tracing.watchdog import StallPolicy, Watchdog

SpanSink = TracerProvider | LeanTracerProvider

DEFAULT_TRACE_DIR = ".graphtrace"
DEFAULT_SERVICE_NAME = "graphtrace"
TRACE_DIR_ENV = "GRAPHTRACE_DIR"


def default_trace_dir() -> Path:
    """``$GRAPHTRACE_DIR`` or ``.graphtrace`` in the working directory."""
    return Path(os.environ.get(TRACE_DIR_ENV) or DEFAULT_TRACE_DIR)


class _Router(FanOut):
    """The one processor graphtrace adds to a provider; forwards to the current pipeline.

    SDK providers cannot remove a processor, so reconfiguring swaps what this one points at.
    """


@dataclass
class Tracing:
    """What :func:`configure` installed: the trace dir, the file pipeline, the provider."""

    trace_dir: Path
    provider: SpanSink
    live: LiveSpanProcessor
    forwarders: list[SpanProcessor] = field(default_factory=list)
    watchdog: Watchdog | None = None  # None when every stall threshold is off

    @property
    def files(self) -> list[Path]:
        """The trace files this process wrote."""
        return list(self.live.writer.paths)

    @property
    def lost_spans(self) -> int:
        return self.live.lost

    def flush(self, timeout: float = 30.0) -> bool:
        """Write every span ended so far (and every pending record) to the file."""
        ok = self.live.force_flush(int(timeout * 1000))
        return all([ok, *(f.force_flush(int(timeout * 1000)) for f in self.forwarders)])

    def finish_forwarding(self) -> list[ForwardReport]:
        """Stop forwarding (what is queued gets a few seconds) and say how it went.

        Call it before :meth:`flush`: the ``forward.lost`` records it writes go to the file.
        """
        reports = []
        for f in self.forwarders:
            f.shutdown()
            if isinstance(f, ForwardingSpanProcessor):
                reports.append(f.report())
        return reports

    def shutdown(self) -> None:
        """Flush and close the file; later spans go nowhere until configure() runs again."""
        if _router.targets and _router.targets[0] is self.live:
            _router.targets = ()
        if self.watchdog is not None:  # before the file closes: it writes to it
            self.watchdog.stop()
        for f in self.forwarders:  # before the file closes: they write what they lost to it
            f.shutdown()
        self.live.shutdown()


_lock = threading.Lock()
_router = _Router()
_installed_on: SpanSink | None = None
_current: Tracing | None = None


def configure(
    trace_dir: str | os.PathLike[str] | None = None,
    *,
    otlp_endpoint: str | None = None,
    otlp_headers: Mapping[str, str] | str | None = None,
    forward_pending: bool = False,
    service_name: str | None = None,
    flush_interval: float = 0.05,
    max_file_bytes: int = 64 * 2**20,
    stall_after: float | Mapping[str, float] | None = None,
) -> Tracing:
    """Trace every run to OTLP JSON files under ``trace_dir`` (and to ``otlp_endpoint``).

    ``trace_dir`` defaults to ``$GRAPHTRACE_DIR`` or ``.graphtrace``. A directory that cannot be
    created or written raises :class:`exporters.file.TraceDirError` at once.

    ``stall_after`` sets the stall watchdog's thresholds in seconds: one number for node, dep and
    chat spans, or a mapping per kind (``node``, ``dep``, ``chat``, and ``loop`` for the
    blocked-loop detector); ``math.inf`` turns a kind off. None: ``$GRAPHTRACE_STALL_AFTER`` or
    the defaults (node 30, dep 10, chat 60, loop 1). See :mod:`tracing.watchdog`.

    ``otlp_endpoint`` (a base URL such as ``http://localhost:4318``, or the full traces URL)
    also forwards every ended span over OTLP/HTTP, from a queue and thread of its own, so a
    slow or absent endpoint never slows the runs or the file; ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` do the same when it is None (unless the application
    installed its own SDK provider, whose exporter reads them itself). ``otlp_headers`` (a
    mapping, or ``k=v,k2=v2``) default to ``OTEL_EXPORTER_OTLP_HEADERS``. Pending records are
    forwarded only with ``forward_pending=True``. See :mod:`exporters.forwarding.processor`.

    ``service_name`` defaults to ``OTEL_SERVICE_NAME`` (or ``service.name`` in
    ``OTEL_RESOURCE_ATTRIBUTES``), else ``graphtrace``; both variables apply as the SDK reads
    them, when graphtrace installs the provider.

    Example::

        tracing = configure(trace_dir="traces")
        await graph.arun(lm=FakeLM(), ticket="...")
        tracing.flush()
    """
    global _installed_on, _current
    directory = Path(trace_dir) if trace_dir is not None else default_trace_dir()
    policy = StallPolicy.resolve(stall_after)  # a bad value fails before anything changes
    url = traces_url(otlp_endpoint)  # so does a bad endpoint (EndpointError)
    headers = parse_headers(otlp_headers)
    with _lock:
        writer = JsonlFileWriter(directory, max_bytes=max_file_bytes)
        provider = _provider(service_name)
        if _installed_on is not provider:
            provider.add_span_processor(_router)
            _installed_on = provider
        live = LiveSpanProcessor(writer, flush_interval=flush_interval)
        forwarders: list[SpanProcessor] = []
        # the variables alone do not forward from the application's own SDK provider: its
        # exporter reads them too and already sends graphtrace's spans
        if url is not None and (otlp_endpoint or isinstance(provider, LeanTracerProvider)):
            forwarders.append(
                ForwardingSpanProcessor(
                    url,
                    headers=headers,
                    forward_pending=forward_pending,
                    local=live.write,
                    ledger=Ledger(directory, url),
                )
            )
        previous = _current
        watchdog = None
        targets: tuple[SpanProcessor, ...] = (live, *forwarders)
        if policy.enabled:
            open_spans = OpenSpans.create()
            watchdog = Watchdog(policy, open_spans, live, forwarders, provider.resource)
            targets += (open_spans,)
        _router.targets = targets
        _current = Tracing(directory, provider, live, forwarders, watchdog)
    if watchdog is not None:
        watchdog.start()
    if previous is not None:
        if previous.watchdog is not None:
            previous.watchdog.stop()
        for f in previous.forwarders:
            f.shutdown()
        previous.live.shutdown()
    return _current


def current() -> Tracing | None:
    """The pipeline the last :func:`configure` installed, if any."""
    return _current


def _provider(service_name: str | None) -> SpanSink:
    """The application's SDK provider if it installed one, else our lean one, installed now."""
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider | LeanTracerProvider):
        return existing
    if not isinstance(existing, trace.ProxyTracerProvider):
        raise RuntimeError(
            f"the application installed a {type(existing).__name__}, which takes no span "
            f"processors; install opentelemetry.sdk.trace.TracerProvider or let graphtrace do it"
        )
    provider = LeanTracerProvider(_resource(service_name))
    trace.set_tracer_provider(provider)
    return provider


def _resource(service_name: str | None) -> Resource:
    """OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME as the SDK reads them; the service is
    ``graphtrace`` unless they (or ``service_name``) name another."""
    if service_name:
        return Resource.create({"service.name": service_name})
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    return resource


@atexit.register
def _flush_at_exit() -> None:
    if _current is not None:
        _current.shutdown()
