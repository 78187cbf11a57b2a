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
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from exporters.file import JsonlFileWriter
from tracing.live import LiveSpanProcessor
from tracing.provider import LeanTracerProvider

SpanSink = TracerProvider | LeanTracerProvider

DEFAULT_TRACE_DIR = ".graphtrace"
TRACE_DIR_ENV = "GRAPHTRACE_DIR"


def default_trace_dir() -> Path:
    """``$GRAPHTRACE_DIR`` or ``.graphtrace`` in the working directory."""
    return Path(os.environ.get(TRACE_DIR_ENV) or DEFAULT_TRACE_DIR)


class _Router(SpanProcessor):
    """The one processor graphtrace adds to a provider; forwards to the current pipeline.

    SDK providers cannot remove a processor, so reconfiguring swaps what this one points at.
    """

    def __init__(self) -> None:
        self.targets: tuple[SpanProcessor, ...] = ()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for target in self.targets:
            target.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for target in self.targets:
            target.on_end(span)

    def shutdown(self) -> None:
        for target in self.targets:
            target.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(t.force_flush(timeout_millis) for t in self.targets)


@dataclass
class Tracing:
    """What :func:`configure` installed: the trace dir, the file pipeline, the provider."""

    trace_dir: Path
    provider: SpanSink
    live: LiveSpanProcessor
    forwarders: list[SpanProcessor] = field(default_factory=list)

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

    def shutdown(self) -> None:
        """Flush and close the file; later spans go nowhere until configure() runs again."""
        if _router.targets and _router.targets[0] is self.live:
            _router.targets = ()
        self.live.shutdown()
        for f in self.forwarders:
            f.shutdown()


_lock = threading.Lock()
_router = _Router()
_installed_on: SpanSink | None = None
_current: Tracing | None = None


def configure(
    trace_dir: str | os.PathLike[str] | None = None,
    *,
    otlp_endpoint: str | None = None,
    service_name: str = "graphtrace",
    flush_interval: float = 0.05,
    max_file_bytes: int = 64 * 2**20,
) -> Tracing:
    """Trace every run to OTLP JSON files under ``trace_dir`` (and to ``otlp_endpoint``).

    ``trace_dir`` defaults to ``$GRAPHTRACE_DIR`` or ``.graphtrace``. A directory that cannot be
    created or written raises :class:`exporters.file.TraceDirError` at once.

    Example::

        tracing = configure(trace_dir="traces")
        await graph.arun(lm=FakeLM(), ticket="...")
        tracing.flush()
    """
    global _installed_on, _current
    directory = Path(trace_dir) if trace_dir is not None else default_trace_dir()
    with _lock:
        writer = JsonlFileWriter(directory, max_bytes=max_file_bytes)
        provider = _provider(service_name)
        if _installed_on is not provider:
            provider.add_span_processor(_router)
            _installed_on = provider
        live = LiveSpanProcessor(writer, flush_interval=flush_interval)
        forwarders: list[SpanProcessor] = []
        if otlp_endpoint:
            forwarders.append(_otlp_forwarder(otlp_endpoint))
        previous = _current
        _router.targets = (live, *forwarders)
        _current = Tracing(directory, provider, live, forwarders)
    if previous is not None:
        previous.live.shutdown()
        for f in previous.forwarders:
            f.shutdown()
    return _current


def current() -> Tracing | None:
    """The pipeline the last :func:`configure` installed, if any."""
    return _current


def _provider(service_name: str) -> SpanSink:
    """The application's SDK provider if it installed one, else our lean one, installed now."""
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider | LeanTracerProvider):
        return existing
    if not isinstance(existing, trace.ProxyTracerProvider):
        raise RuntimeError(
            f"the application installed a {type(existing).__name__}, which takes no span "
            f"processors; install opentelemetry.sdk.trace.TracerProvider or let graphtrace do it"
        )
    provider = LeanTracerProvider(Resource.create({"service.name": service_name}))
    trace.set_tracer_provider(provider)
    return provider


def _otlp_forwarder(endpoint: str) -> SpanProcessor:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    return BatchSpanProcessor(OTLPSpanExporter(endpoint=url))


@atexit.register
def _flush_at_exit() -> None:
    if _current is not None:
        _current.shutdown()
