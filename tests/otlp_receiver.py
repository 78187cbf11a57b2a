"""A real OTLP/HTTP trace receiver on loopback, for the forwarding tests.

It runs ``http.server`` in a thread on a free port of 127.0.0.1 and takes ``POST /v1/traces``
with a protobuf ``ExportTraceServiceRequest`` (gzip or deflate too), decoded with
opentelemetry-proto. Its behaviour can change while it runs: ``status`` answers every request
with that HTTP status (503: the exporter retries, then gives up), ``hold()`` makes requests wait
until ``release()``. ``spans`` are the spans it accepted, ``requests`` every request it saw.

    with OtlpReceiver() as receiver:
        configure(tmp, otlp_endpoint=receiver.url)
"""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver decoded it."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int
    start_ns: int
    end_ns: int


@dataclass
class OtlpReceiver:
    """``url`` is the base URL (``http://127.0.0.1:PORT``); spans go to ``url + /v1/traces``."""

    status: int = 200
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)  # the headers of each

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def hold(self) -> None:
        """Requests from now on wait (unanswered) until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def names(self) -> list[str]:
        with self._lock:
            return [s.name for s in self.spans]

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def _take(self, headers: dict[str, str], body: bytes) -> int:
        self._open.wait(timeout=60)  # bounded: a forgotten release() cannot hang the suite
        with self._lock:
            self.requests.append(headers)
            if self.status != 200:
                return self.status
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received = list(_spans(request))
        with self._lock:
            self.spans.extend(received)
        return 200


def free_port() -> int:
    """A loopback port nothing listens on (bound and closed again): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            if self.path != "/v1/traces":
                self._answer(404, b"")
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver._take(headers, body)
            payload = ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
            self._answer(status, payload)

        def _answer(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the test reads what it needs from the receiver

    return Handler


def _spans(request: ExportTraceServiceRequest) -> Any:
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield ReceivedSpan(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_id=span.parent_span_id.hex(),
                    name=span.name,
                    attributes={kv.key: _value(kv.value) for kv in span.attributes},
                    resource=resource,
                    status_code=span.status.code,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                )


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None
