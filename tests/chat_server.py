"""A real HTTP server on loopback that speaks the chat-completions API, scripted by a test.

It runs ``http.server`` (HTTP/1.1, keep-alive) in a thread on a free port of 127.0.0.1. Each
``POST /v1/chat/completions`` is recorded (path, headers, JSON body) and answered by the test's
``respond(request)``, which returns a :class:`Reply`: a status, headers, a body (a dict is sent as
JSON), an optional delay, or ``hang=True`` to never answer. While it waits, the server watches the
socket, so a client that hangs up is seen at once: :attr:`ChatServer.hangups` counts them.

    with ChatServer(lambda req: completion({"answer": "42"})) as server:
        lm = OpenAILM("m", base_url=server.url, api_key="k")
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    path: str
    headers: Mapping[str, str]
    body: Any  # the parsed JSON, or the raw text when it is not JSON

    @property
    def response_format(self) -> str | None:
        fmt = self.body.get("response_format") if isinstance(self.body, dict) else None
        return fmt.get("type") if isinstance(fmt, dict) else None

    @property
    def schema(self) -> dict[str, Any]:
        """The JSON Schema asked for, from ``response_format`` (empty for json_object/none)."""
        fmt = self.body.get("response_format") or {}
        return fmt.get("json_schema", {}).get("schema", {})

    @property
    def last_message(self) -> str:
        return str(self.body["messages"][-1]["content"])


@dataclass(frozen=True)
class Reply:
    """What to answer: ``body`` a dict (JSON), str or bytes; ``delay`` seconds first;
    ``hang`` never answers (the handler waits for the client to hang up)."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False


def completion(
    content: str | Mapping[str, Any] | None,
    *,
    finish_reason: str = "stop",
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
    model: str = "test-model-2024-01-01",
    response_id: str = "chatcmpl-test-1",
    refusal: str | None = None,
) -> Reply:
    """A successful chat completion; a Mapping ``content`` is sent as JSON text."""
    text = content if content is None or isinstance(content, str) else json.dumps(content)
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if refusal is not None:
        message["refusal"] = refusal
    return Reply(
        body={
            "id": response_id,
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def error(status: int, message: str, *, code: str | None = None, **headers: str) -> Reply:
    """An error answer in OpenAI's shape; ``headers`` use ``_`` for ``-`` (``retry_after``)."""
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return Reply(status, body, {k.replace("_", "-"): v for k, v in headers.items()})


Responder = Callable[[Request], Reply]


class ChatServer:
    """The scripted server; a context manager that starts and stops it."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.requests: list[Request] = []
        self.hangups = 0
        self.received = threading.Event()  # set by every request, for tests that wait for one
        self.hung_up = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        # a short poll so that stopping the server (every test does) is quick
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()  # releases handlers that wait or hang
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _record(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
        self.received.set()
        return self.respond(request)

    def _hung_up(self) -> None:
        with self._lock:
            self.hangups += 1
        self.hung_up.set()

    def wait_until(self, event: threading.Event, timeout: float = 10.0) -> bool:
        """Block until ``event`` is set (a bound for a broken test, not a timing assertion)."""
        return event.wait(timeout)


def _handler(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a test's output is not the place for an access log

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = server._record(Request(self.path, headers, body))
            if reply.hang or reply.delay:
                if self._client_left(None if reply.hang else reply.delay):
                    server._hung_up()
                    self.close_connection = True
                    return
            if isinstance(reply.body, Mapping):
                payload = json.dumps(reply.body).encode()
                kind = "application/json"
            elif isinstance(reply.body, bytes):
                payload, kind = reply.body, "text/plain"
            else:
                payload, kind = str(reply.body or "").encode(), "text/html"
            self.send_response(reply.status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                server._hung_up()

        def _client_left(self, delay: float | None) -> bool:
            """Wait ``delay`` seconds (None: until the server stops); True if the client hung
            up meanwhile, seen as end-of-file on the socket."""
            sock: socket.socket = self.connection
            deadline = None if delay is None else time.monotonic() + delay
            while not server._stop.is_set():
                left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
                if left <= 0:
                    return False
                readable, _, _ = select.select([sock], [], [], left)
                if readable:
                    try:
                        data = sock.recv(1, socket.MSG_PEEK)
                    except (ConnectionResetError, OSError):
                        return True
                    if not data:
                        return True
            return False

    return Handler
