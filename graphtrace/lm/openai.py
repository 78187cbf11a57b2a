"""A backend for OpenAI-compatible chat-completions servers: OpenAI, vLLM, llama.cpp's server,
Ollama, LiteLLM proxies.

One call is ``POST {base_url}/chat/completions`` with structured output: a ``response_format`` of
type ``json_schema`` carrying the schema the runtime asks for. A server that refuses it (an HTTP
400 or 422 naming the response format) gets ``json_object`` instead, and one that refuses that
gets none (the runtime's prompt states the schema either way); the instance remembers, so only
its first call pays for the refusal.

The HTTP client is httpx rather than the official ``openai`` package: it is async on the same
event loop as the runs, keeps connections alive, takes separate connect and read timeouts, and
closes the connection when the awaiting task is cancelled; the SDK would add a second retry loop
and its own timeouts beneath ours, and a heavy dependency for one endpoint.

Retries (:class:`~graphtrace.lm.retry.RetryPolicy`) cover connection errors, timeouts, 408, 409,
429 and 5xx answers, honouring ``Retry-After``. Each failed request adds a
``graphtrace.lm.http_attempt_failed`` event to the current span (the runtime's ``chat {model}``
span) with its status code and ``error.type``; ``graphtrace.lm.http_attempts`` counts the requests
sent. The API key goes in the ``Authorization`` header only: it is never in a span, a log line or
an error message, and text quoted from the server is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx
from opentelemetry import trace
from opentelemetry.trace import Span

from graphtrace.errors import (
    LMAuthenticationError,
    LMConnectionError,
    LMError,
    LMNotFoundError,
    LMRateLimitError,
    LMRefusalError,
    LMResponseError,
    LMStatusError,
    LMTimeoutError,
    LMTruncatedError,
)
from graphtrace.lm.protocol import Completion, Message, Usage, role_and_content
from graphtrace.lm.retry import RetryPolicy
from tracing import names

__all__ = ["DEFAULT_BASE_URL", "OpenAILM"]

DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
_OPENAI_HOST: Final = "api.openai.com"
# structured-output modes, most to least exact; an instance only ever moves down the list
_FORMATS: Final = ("json_schema", "json_object", "none")
_RESERVED: Final = frozenset({"model", "messages", "response_format", "stream"})
_QUOTE_LIMIT: Final = 300
# key-shaped tokens a server may echo back (OpenAI quotes a masked key in its 401 message)
_KEYLIKE: Final = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_*.\-]{6,}|(?i:bearer)\s+\S+")
_SCHEMA_NAME: Final = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class _Failure:
    """One failed request: what to record on the span and what to raise if it is the last."""

    kind: type[LMError]
    message: str
    error_type: str
    retry: bool
    status: int | None = None
    headers: Mapping[str, str] | None = None
    cause: BaseException | None = None


class OpenAILM:
    """An LM served over the OpenAI chat-completions API.

    Args:
        model: the model name the server knows (``gpt-4o-mini``, ``llama3.1:8b``, ...).
        base_url: the API root, ending before ``/chat/completions``; default
            ``$OPENAI_BASE_URL``, else ``https://api.openai.com/v1`` (as the official SDK).
        api_key: default ``$OPENAI_API_KEY``. Required for api.openai.com; a local server that
            wants none gets no ``Authorization`` header.
        timeout: seconds one request may take in all (connect, send, wait, read).
        connect_timeout: seconds to establish the connection.
        max_attempts, backoff, max_backoff, max_retry_after: the retry policy
            (:class:`~graphtrace.lm.retry.RetryPolicy`); ``max_attempts`` counts the first
            request too.
        provider: ``gen_ai.provider.name`` on the spans (``openai`` as the conventions ask for
            OpenAI; name your server, e.g. ``vllm``, if you like).
        extra_body: more request fields, e.g. ``{"temperature": 0, "max_tokens": 512}``.

    Raises ``ValueError`` (one line) for a bad base URL, a missing key for api.openai.com, or
    an ``extra_body`` that sets what the backend sets itself.

    Calls raise :class:`~graphtrace.errors.LMError` subclasses: ``LMAuthenticationError``
    (401/403), ``LMNotFoundError`` (404: model or URL), ``LMRateLimitError`` (429 after the
    retries), ``LMStatusError`` (any other HTTP error), ``LMTimeoutError``,
    ``LMConnectionError``, ``LMRefusalError``, ``LMTruncatedError`` (``finish_reason`` length)
    and ``LMResponseError`` (an answer that is not a chat completion).

    The instance keeps one connection pool per event loop (``graph.run`` starts a new loop each
    time); ``await lm.aclose()`` or ``async with OpenAILM(...) as lm:`` closes the current one.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
        provider: str = "openai",
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if not isinstance(provider, str) or not provider.strip():
            raise ValueError(f"provider must be a non-empty string, got {provider!r}")
        self.model = model.strip()
        self.provider = provider
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.retry = RetryPolicy(
            max_attempts=max_attempts,
            backoff=backoff,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
        )
        self.extra_body = dict(extra_body or {})
        clash = sorted(_RESERVED & set(self.extra_body))
        if clash:
            raise ValueError(f"extra_body must not set {', '.join(clash)}: OpenAILM sets them")

        url = _base_url(base_url)
        self.base_url = _display(url)
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._api_key = key.strip() if key and key.strip() else None
        if self._api_key is None and url.host == _OPENAI_HOST:
            raise ValueError(
                f"OPENAI_API_KEY is not set: {_OPENAI_HOST} needs an API key "
                "(set the variable or pass api_key=)"
            )
        self._url = url.copy_with(path=url.path.rstrip("/") + "/chat/completions")
        self._headers = {"Accept": "application/json", "User-Agent": "graphtrace"}
        if self._api_key is not None:
            self._headers["Authorization"] = f"Bearer {self._api_key}"
        default_port = 80 if url.scheme == "http" else 443
        self._server: dict[str, str | int] = {
            names.SERVER_ADDRESS: url.host,
            names.SERVER_PORT: url.port or default_port,
        }
        self._format = 0
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        key = "set" if self._api_key else "unset"
        return f"OpenAILM(model={self.model!r}, base_url={self.base_url!r}, api_key={key})"

    @property
    def response_format(self) -> str:
        """The structured-output mode the next call asks for (it only ever steps down)."""
        return _FORMATS[self._format]

    # -- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections this instance holds on the running event loop."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> OpenAILM:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _client(self) -> httpx.AsyncClient:
        # a pool's connections belong to the loop that opened them; graph.run() makes a new loop
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                # the runtime's max_lm_calls is the cap; a second one here would turn a wait for
                # a pooled connection into a spurious timeout
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
                follow_redirects=False,  # never resend the key to wherever a redirect points
            )
            self._clients[loop] = client
        return client

    # -- the call ------------------------------------------------------------------------------

    async def complete(self, messages: Sequence[Message], schema: Mapping[str, Any]) -> Completion:
        """Ask the model; the reply's text should be JSON that follows ``schema``."""
        wire = [{"role": r, "content": c} for r, c in map(role_and_content, messages)]
        span = trace.get_current_span()
        span.set_attributes(self._server)
        sent = failed = 0
        level = self._format
        try:
            while True:
                level = self._format
                sent += 1
                failure: _Failure
                try:
                    response = await self._post(self._payload(wire, schema, level))
                except TimeoutError as exc:
                    failure = self._timeout(exc)
                except httpx.TimeoutException as exc:
                    if isinstance(exc, httpx.ConnectTimeout):
                        failure = self._unreachable(
                            exc, f"no connection within {self.connect_timeout:g} s"
                        )
                    else:
                        failure = self._timeout(exc)
                except httpx.TransportError as exc:
                    failure = self._unreachable(
                        exc, f"{type(exc).__name__}: {self._quote(str(exc))}"
                    )
                else:
                    if response.is_success:
                        return self._completion(response)
                    if self._refuses_format(response, level):
                        # not a failure of the call: ask again at once, one mode down
                        self._format = max(self._format, level + 1)
                        status = response.status_code
                        self._attempt_event(span, sent, str(status), status)
                        continue
                    failure = self._status_failure(response)
                failed += 1
                if not failure.retry or failed >= self.retry.max_attempts:
                    self._attempt_event(span, sent, failure.error_type, failure.status)
                    raise self._error(failure, failed) from failure.cause
                delay = self.retry.delay(failed, failure.headers)
                self._attempt_event(span, sent, failure.error_type, failure.status, delay)
                await asyncio.sleep(delay)
        finally:
            span.set_attributes(
                {names.LM_HTTP_ATTEMPTS: sent, names.LM_RESPONSE_FORMAT: _FORMATS[level]}
            )

    async def _post(self, payload: dict[str, Any]) -> httpx.Response:
        client = self._client()
        # httpx's timeouts bound each phase; this bounds the whole request. Leaving the block
        # early (timeout or cancellation) makes httpx close the connection at once.
        async with asyncio.timeout(self.timeout):
            return await client.post(self._url, json=payload, headers=self._headers)

    def _payload(
        self, wire: list[dict[str, str]], schema: Mapping[str, Any], level: int
    ) -> dict[str, Any]:
        body: dict[str, Any] = {**self.extra_body, "model": self.model, "messages": wire}
        if _FORMATS[level] == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": _schema_name(schema),
                    "schema": dict(schema),
                    # strict mode accepts a subset of JSON Schema that pydantic's schemas
                    # (defaults, optional fields) often leave; the runtime validates anyway
                    "strict": False,
                },
            }
        elif _FORMATS[level] == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    # -- answers -------------------------------------------------------------------------------

    def _completion(self, response: httpx.Response) -> Completion:
        try:
            data = response.json()
        except ValueError:  # json.JSONDecodeError and UnicodeDecodeError alike
            kind = response.headers.get("content-type", "no content type")
            raise LMResponseError(
                f"{self.base_url} answered HTTP {response.status_code} with a body that is not "
                f"JSON ({kind}): {self._quote(response.text)!r}"
            ) from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise LMResponseError(
                f"{self.base_url} answered without a chat completion (no 'choices'): "
                f"{self._quote(json.dumps(data))!r}"
            )
        choice = choices[0]
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        finish = choice.get("finish_reason")
        text = _text(message.get("content"))
        completion = Completion(
            text=text or "",
            usage=_usage(data.get("usage")),
            finish_reason=finish if isinstance(finish, str) and finish else "unknown",
            response_model=_str_or_none(data.get("model")),
            response_id=_str_or_none(data.get("id")),
        )
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal.strip():
            raise LMRefusalError(
                f"model {self.model} refused: {self._quote(refusal)}", completion=completion
            )
        if finish == "content_filter":
            raise LMRefusalError(
                f"the content filter of {self.base_url} stopped the reply from {self.model}",
                completion=completion,
            )
        if finish == "length":
            raise LMTruncatedError(
                f"the reply from {self.model} was cut off at the token limit "
                f"(finish_reason=length after {completion.usage.output_tokens} output tokens); "
                "allow more tokens or ask for less",
                completion=completion,
            )
        if text is None:
            raise LMResponseError(
                f"the reply from {self.model} has no text content "
                f"(finish_reason={completion.finish_reason})",
                completion=completion,
            )
        return completion

    def _refuses_format(self, response: httpx.Response, level: int) -> bool:
        if response.status_code not in (400, 422) or _FORMATS[level] == "none":
            return False
        text = response.text.lower()
        return "response_format" in text or _FORMATS[level] in text

    def _status_failure(self, response: httpx.Response) -> _Failure:
        status = response.status_code
        said = self._server_says(response)
        retry = RetryPolicy.retries_status(status, response.headers)
        # the conventions' error.type for an HTTP failure: the status code, low-cardinality
        error_type = str(status)
        if status in (401, 403):
            hint = "check OPENAI_API_KEY" if self._api_key else "set OPENAI_API_KEY"
            return _Failure(
                LMAuthenticationError,
                f"{self.base_url} refused the API key (HTTP {status}): {said}; {hint}",
                error_type,
                retry=False,
                status=status,
            )
        if status == 404:
            return _Failure(
                LMNotFoundError,
                f"model {self.model!r} or its endpoint not found at {self.base_url} "
                f"(HTTP 404): {said}; check the model name and OPENAI_BASE_URL",
                error_type,
                retry=False,
                status=status,
            )
        kind: type[LMError] = LMRateLimitError if status == 429 else LMStatusError
        what = "rate limited by" if status == 429 else "error from"
        return _Failure(
            kind,
            f"{what} {self.base_url} (HTTP {status}): {said}",
            error_type,
            retry=retry,
            status=status,
            headers=response.headers,
        )

    def _timeout(self, exc: BaseException) -> _Failure:
        return _Failure(
            LMTimeoutError,
            f"no answer from {self.base_url} within {self.timeout:g} s",
            "timeout",
            retry=True,
            cause=exc,
        )

    def _unreachable(self, exc: httpx.TransportError, what: str) -> _Failure:
        return _Failure(
            LMConnectionError,
            f"could not reach {self.base_url}: {what}",
            type(exc).__name__,
            retry=True,
            cause=exc,
        )

    def _error(self, failure: _Failure, failed: int) -> LMError:
        message = failure.message
        if failed > 1:
            message += f" (gave up after {failed} attempts)"
        if issubclass(failure.kind, LMStatusError):
            return failure.kind(message, status_code=failure.status or 0)
        return failure.kind(message)

    def _attempt_event(
        self,
        span: Span,
        attempt: int,
        error_type: str,
        status: int | None = None,
        retry_in: float | None = None,
    ) -> None:
        attributes: dict[str, Any] = {names.LM_HTTP_ATTEMPT: attempt, names.ERROR_TYPE: error_type}
        if status is not None:
            attributes[names.HTTP_STATUS_CODE] = status
        if retry_in is not None:
            attributes[names.LM_RETRY_IN_S] = round(retry_in, 3)
        span.add_event(names.LM_ATTEMPT_FAILED_EVENT, attributes)

    # -- quoting the server without leaking the key -------------------------------------------

    def _server_says(self, response: httpx.Response) -> str:
        try:
            data = response.json()
        except ValueError:
            data = None
        said = _error_message(data) or response.text or response.reason_phrase or "no message"
        request_id = response.headers.get("x-request-id")
        quoted = self._quote(said)
        return f"{quoted} (request id {self._quote(request_id)})" if request_id else quoted

    def _quote(self, text: str) -> str:
        """Server text made fit for an error: no key, one line, bounded."""
        if self._api_key:
            text = text.replace(self._api_key, "[redacted]")
        text = _KEYLIKE.sub("[redacted]", text)
        text = " ".join(text.split())
        return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 1] + "…"


def _base_url(given: str | None) -> httpx.URL:
    raw = given if given is not None else os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    try:
        url = httpx.URL(raw.strip())
    except (httpx.InvalidURL, TypeError, AttributeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        shown = _display(url) if url is not None and url.host else "a value that is not a URL"
        raise ValueError(
            f"OPENAI_BASE_URL must be an http(s) URL such as {DEFAULT_BASE_URL}, got {shown}"
        )
    return url


def _display(url: httpx.URL) -> str:
    """The URL without credentials, query or fragment: the parts that may hold a secret."""
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}{url.path.rstrip('/')}"


def _schema_name(schema: Mapping[str, Any]) -> str:
    # OpenAI requires ^[a-zA-Z0-9_-]{1,64}$
    title = schema.get("title")
    name = _SCHEMA_NAME.sub("_", title)[:64] if isinstance(title, str) else ""
    return name or "reply"


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts, as some servers send
        texts = [p.get("text") for p in content if isinstance(p, dict)]
        joined = "".join(t for t in texts if isinstance(t, str))
        return joined if any(isinstance(t, str) for t in texts) else None
    return None


def _usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _error_message(data: Any) -> str | None:
    """The message of the error shapes servers use: OpenAI and llama.cpp nest it under
    ``error``, Ollama makes ``error`` a string, older vLLM puts ``message`` at the top."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, str) and error:
        return error
    if isinstance(error, dict):
        message, code = error.get("message"), error.get("code")
        if isinstance(message, str) and message:
            return f"{message} [{code}]" if isinstance(code, str) and code else message
    message = data.get("message")
    return message if isinstance(message, str) and message else None
