"""One export through the SDK's OTLP/HTTP exporter, and in a few words why it failed.

Both the live forwarder and ``graphtrace push`` send through a :class:`Sender`: the SDK's
``OTLPSpanExporter`` (the protocol, retries, headers, TLS and compression are the SDK's), with an
:class:`~exporters.forwarding.session.ObservedSession` and the exporter's log captured
(:mod:`exporters.forwarding.failures`), so a failure reads ``connection refused`` or
``HTTP 503 Service Unavailable`` instead of a burst of retry warnings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from exporters.forwarding.failures import capture, describe

if TYPE_CHECKING:
    from exporters.forwarding.session import ObservedSession

__all__ = ["Sender"]

# The SDK's experimental way to supply a session of one's own (auth); ours must not replace it.
_SESSION_ENV: Final = "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER"


class Sender:
    """Exports batches to ``endpoint`` (a full traces URL), or through ``exporter`` when given.

    Headers, timeout, compression and certificates not given here come from the standard
    variables, which the SDK's exporter reads itself.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        exporter: SpanExporter | None = None,
    ) -> None:
        self.session: ObservedSession | None = None
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            from exporters.forwarding.session import ObservedSession  # requests: only now

            self.session = None if os.environ.get(_SESSION_ENV) else ObservedSession()
            exporter = OTLPSpanExporter(
                endpoint=endpoint, headers=headers, timeout=timeout, session=self.session
            )
        self.exporter = exporter
        self.messages: list[str] = []  # what the exporter said during the latest export

    def export(self, batch: Sequence[ReadableSpan]) -> str | None:
        """Send ``batch``: None when the endpoint took it, else why not."""
        if not batch:
            return None
        if self.session is not None:
            self.session.last = None
        with capture() as messages:
            self.messages = messages
            try:
                result = self.exporter.export(batch)
            except Exception as exc:  # an exporter must not raise; one that does lost the batch
                return f"{type(exc).__name__}: {exc}"
        return None if result is SpanExportResult.SUCCESS else self.reason()

    def retrying(self) -> bool:
        """Whether the export under way has met an error (the exporter is retrying it)."""
        return bool(self.messages) or (self.session is not None and self.session.last is not None)

    def reason(self) -> str:
        """Why the latest export failed (or is failing), in a few words."""
        return describe(list(self.messages), self.session)

    def shutdown(self) -> None:
        """Close the exporter; a retry it is waiting on ends now."""
        self.exporter.shutdown()
