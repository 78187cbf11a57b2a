"""OpenAILM against a real chat-completions server on loopback (tests/chat_server.py).

Every test talks HTTP to 127.0.0.1; timeouts and back-offs are made small so the whole file
stays fast, and nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from graphtrace import FillError, Graph, Node
from graphtrace.errors import (
    LMAuthenticationError,
    LMConnectionError,
    LMNotFoundError,
    LMRateLimitError,
    LMRefusalError,
    LMResponseError,
    LMStatusError,
    LMTimeoutError,
    LMTruncatedError,
)
from graphtrace.lm import FakeLM, Message, OpenAILM
from graphtrace.lm.caller import LMCaller
from graphtrace.lm.content import CAPTURE_ENV
from graphtrace.lm.retry import RetryPolicy, retry_after
from graphtrace.lm.specs import lm_from_spec
from tests.chat_server import ChatServer, Reply, Request, completion, error
from tests.conftest import TraceDir, run
from tests.otlp_validator import attributes

API_KEY = "sk-test-S3CRET-0123456789abcdefXYZ"
SCHEMA = {
    "title": "AnswerFields",
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}
PROMPT = [Message("system", "Reply with JSON."), Message("user", "What is six times seven?")]


class Answer(Node):
    """Answer the question in one word."""

    answer: str

    async def __call__(self) -> None: ...


class Ask(Node):
    question: str

    async def __call__(self) -> Answer: ...


GRAPH = Graph(start=Ask, name="qa")


def answer_of(lm: OpenAILM) -> str:
    """Run GRAPH once (its own event loop) and return the answer the LM filled."""
    last = GRAPH.run(lm=lm, question="six times seven?")
    assert isinstance(last, Answer)
    return last.answer


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # loopback must not go through a proxy, and the developer's own settings must not leak in
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        CAPTURE_ENV,
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def answers() -> Iterator[ChatServer]:
    """A server that always answers ``{"answer": "forty-two"}``."""
    with ChatServer(lambda req: completion({"answer": "forty-two"})) as server:
        yield server


def make_lm(server: ChatServer, **options: Any) -> OpenAILM:
    settings: dict[str, Any] = {"backoff": 0.001, "max_backoff": 0.002, "timeout": 5.0}
    settings.update(options)
    return OpenAILM("test-model", base_url=server.url, api_key=API_KEY, **settings)


async def ask(lm: OpenAILM, messages: list[Message] = PROMPT) -> Any:
    """One traced call the way the runtime makes it, then the pool closed."""
    try:
        return await LMCaller(lm).complete(messages, SCHEMA, purpose="fill", attempt=1)
    finally:
        await lm.aclose()


def chat_spans(traces: TraceDir) -> list[dict[str, Any]]:
    return [s for s in traces.finished() if s["name"] == "chat test-model"]


def failed_attempts(span: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        attributes(e)
        for e in span.get("events", [])
        if e["name"] == "graphtrace.lm.http_attempt_failed"
    ]


def wait_for(predicate: Any, bound: float = 10.0) -> bool:
    """Poll until ``predicate()``; the bound only stops a broken test from hanging."""
    deadline = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- answers --------------------------------------------------------------------------------


def test_a_run_fills_from_the_server_and_the_span_has_the_response(
    traces: TraceDir, answers: ChatServer
) -> None:
    lm = make_lm(answers)
    assert answer_of(lm) == "forty-two"

    (request,) = answers.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == "test-model"
    assert request.response_format == "json_schema"
    assert request.body["response_format"]["json_schema"]["strict"] is False
    assert request.schema["properties"]["answer"]["type"] == "string"
    assert "six times seven?" in request.last_message
    assert request.body["messages"][0]["role"] == "system"

    (span,) = chat_spans(traces)
    a = attributes(span)
    port = int(answers.url.split(":")[2].split("/")[0])
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "test-model"
    assert a["gen_ai.response.model"] == "test-model-2024-01-01"
    assert a["gen_ai.response.id"] == "chatcmpl-test-1"
    assert a["gen_ai.usage.input_tokens"] == 11
    assert a["gen_ai.usage.output_tokens"] == 7
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.output.type"] == "json"
    assert a["graphtrace.lm.http_attempts"] == 1
    assert a["graphtrace.lm.response_format"] == "json_schema"
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == port
    assert "error.type" not in a
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
    assert failed_attempts(span) == []
    assert span.get("status", {}).get("code", 0) != 2


def test_each_graph_run_gets_a_pool_on_its_own_event_loop(answers: ChatServer) -> None:
    lm = make_lm(answers)
    # graph.run() is asyncio.run(): a new loop each time, where the old pool's sockets are dead
    for _ in range(3):
        assert answer_of(lm) == "forty-two"
    assert len(answers.requests) == 3


# -- retries --------------------------------------------------------------------------------


def test_429_with_retry_after_is_retried_after_the_wait_the_server_asked_for(
    traces: TraceDir,
) -> None:
    replies = iter([error(429, "slow down", retry_after="0.05")])

    def respond(req: Request) -> Reply:
        return next(replies, None) or completion({"answer": "ok"})

    with ChatServer(respond) as server:
        result = run(ask(make_lm(server)))
    assert json.loads(result.text) == {"answer": "ok"}
    assert len(server.requests) == 2

    (span,) = chat_spans(traces)
    assert attributes(span)["graphtrace.lm.http_attempts"] == 2
    (event,) = failed_attempts(span)
    assert event["http.response.status_code"] == 429
    assert event["error.type"] == "429"
    assert event["graphtrace.lm.http_attempt"] == 1
    # the computed back-off is at most 0.002 s here: 0.05 is the server's Retry-After
    assert event["graphtrace.lm.retry_in_s"] == 0.05


def test_a_500_storm_exhausts_the_retries_and_fails_the_run(traces: TraceDir) -> None:
    with ChatServer(lambda req: error(500, "upstream exploded")) as server:
        lm = make_lm(server, max_attempts=3)
        with pytest.raises(FillError) as caught:
            GRAPH.run(lm=lm, question="q")
    message = str(caught.value)
    assert "HTTP 500" in message and "upstream exploded" in message
    assert "gave up after 3 attempts" in message
    # the runtime's fill retries (three calls) times the backend's attempts (three requests)
    assert len(server.requests) == 9

    spans = chat_spans(traces)
    assert [attributes(s)["graphtrace.lm.attempt"] for s in spans] == [1, 2, 3]
    for span in spans:
        a = attributes(span)
        assert a["error.type"] == "LMStatusError"
        assert a["graphtrace.lm.http_attempts"] == 3
        assert span["status"]["code"] == 2
        events = failed_attempts(span)
        assert [e["http.response.status_code"] for e in events] == [500, 500, 500]
        assert [e["graphtrace.lm.http_attempt"] for e in events] == [1, 2, 3]
        # a wait before each retry, none after the last attempt
        assert ["graphtrace.lm.retry_in_s" in e for e in events] == [True, True, False]
        assert any(e["name"] == "exception" for e in span["events"])


def test_a_server_may_forbid_a_retry_with_x_should_retry() -> None:
    with ChatServer(lambda req: error(503, "maintenance", x_should_retry="false")) as server:
        with pytest.raises(LMStatusError) as caught:
            run(ask(make_lm(server)))
    assert caught.value.status_code == 503
    assert len(server.requests) == 1


def test_a_slow_answer_hits_the_timeout_and_each_request_is_closed(traces: TraceDir) -> None:
    with ChatServer(lambda req: Reply(delay=30)) as server:
        with pytest.raises(LMTimeoutError, match=r"within 0.3 s.*gave up after 2 attempts"):
            run(ask(make_lm(server, timeout=0.3, max_attempts=2)))
        assert wait_for(lambda: server.hangups == 2)
    (span,) = chat_spans(traces)
    a = attributes(span)
    assert a["error.type"] == "LMTimeoutError"
    assert a["graphtrace.lm.http_attempts"] == 2
    assert [e["error.type"] for e in failed_attempts(span)] == ["timeout", "timeout"]


def test_an_unreachable_server_is_a_connection_error_after_the_retries(
    traces: TraceDir,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lm = OpenAILM(
        "test-model", base_url=f"http://127.0.0.1:{port}/v1", backoff=0.001, max_attempts=2
    )
    with pytest.raises(LMConnectionError, match=r"could not reach http://127.0.0.1:\d+/v1"):
        run(ask(lm))
    (span,) = chat_spans(traces)
    assert attributes(span)["graphtrace.lm.http_attempts"] == 2
    assert [e["error.type"] for e in failed_attempts(span)] == ["ConnectError"] * 2


# -- cancellation ---------------------------------------------------------------------------


def test_cancelling_a_run_closes_its_request_at_once(traces: TraceDir) -> None:
    with ChatServer(lambda req: Reply(hang=True)) as server:
        lm = make_lm(server, timeout=60.0)

        async def main() -> None:
            task = asyncio.create_task(GRAPH.arun(lm=lm, question="never answered"))
            assert await asyncio.to_thread(server.wait_until, server.received)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # the server sees the connection closed; nothing waited for the 60 s timeout
            assert await asyncio.to_thread(server.wait_until, server.hung_up)
            await lm.aclose()

        run(main())
        assert server.hangups == 1 and len(server.requests) == 1
    (span,) = chat_spans(traces)
    assert span["status"] == {"code": 2, "message": "cancelled"}
    assert attributes(span)["error.type"] == "CancelledError"
    (run_span,) = traces.by_name("run qa")
    assert attributes(run_span)["graphtrace.run.status"] == "cancelled"


# -- output the runtime must correct --------------------------------------------------------


def test_invalid_json_is_fed_back_and_the_corrected_reply_fills_the_node(
    traces: TraceDir,
) -> None:
    def respond(req: Request) -> Reply:
        if "not valid" in req.last_message:  # the runtime's feedback after a bad reply
            return completion({"answer": "fixed"}, response_id="chatcmpl-2")
        return completion('{"answer": forty-two', response_id="chatcmpl-1")

    with ChatServer(respond) as server:
        assert answer_of(make_lm(server)) == "fixed"
    first, second = server.requests
    assert second.body["messages"][: len(first.body["messages"])] == first.body["messages"]
    bad_reply, feedback = second.body["messages"][-2:]
    assert bad_reply == {"role": "assistant", "content": '{"answer": forty-two'}
    assert feedback["role"] == "user" and "not valid" in feedback["content"]

    spans = chat_spans(traces)
    assert [attributes(s)["graphtrace.lm.attempt"] for s in spans] == [1, 2]
    assert [attributes(s)["gen_ai.response.id"] for s in spans] == ["chatcmpl-1", "chatcmpl-2"]


def test_a_server_that_rejects_json_schema_gets_json_object_from_then_on(
    traces: TraceDir,
) -> None:
    def respond(req: Request) -> Reply:
        if req.response_format == "json_schema":
            return error(400, "response_format type 'json_schema' is not supported")
        return completion({"answer": "plain"})

    with ChatServer(respond) as server:
        lm = make_lm(server)
        assert answer_of(lm) == "plain"
        assert answer_of(lm) == "plain"
    # the refusal is paid once: the instance remembers
    assert [r.response_format for r in server.requests] == [
        "json_schema",
        "json_object",
        "json_object",
    ]
    assert lm.response_format == "json_object"
    first, second = chat_spans(traces)
    assert attributes(first)["graphtrace.lm.http_attempts"] == 2
    assert attributes(first)["graphtrace.lm.response_format"] == "json_object"
    (event,) = failed_attempts(first)
    assert event["http.response.status_code"] == 400
    assert "graphtrace.lm.retry_in_s" not in event
    assert attributes(second)["graphtrace.lm.http_attempts"] == 1
    assert "error.type" not in attributes(first)


def test_a_server_that_rejects_both_formats_is_asked_without_one() -> None:
    def respond(req: Request) -> Reply:
        if req.response_format is not None:
            return error(400, f"unknown response_format {req.response_format}")
        return completion({"answer": "prompted"})

    with ChatServer(respond) as server:
        reply = run(ask(make_lm(server)))
    assert json.loads(reply.text) == {"answer": "prompted"}
    assert [r.response_format for r in server.requests] == ["json_schema", "json_object", None]


def test_an_unrelated_400_is_not_mistaken_for_a_format_refusal() -> None:
    with ChatServer(lambda req: error(400, "context length exceeded")) as server:
        with pytest.raises(LMStatusError, match=r"HTTP 400\): context length exceeded"):
            run(ask(make_lm(server)))
    assert len(server.requests) == 1


# -- errors ---------------------------------------------------------------------------------


def test_a_bad_key_fails_the_run_clearly_and_the_key_never_reaches_the_trace(
    traces: TraceDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    # content capture on, and a server that quotes the key back as OpenAI's 401 does (worse:
    # unmasked): the key still must not appear anywhere in the trace
    monkeypatch.setenv(CAPTURE_ENV, "SPAN_AND_EVENT")
    reply = error(401, f"Incorrect API key provided: {API_KEY}.", code="invalid_api_key")
    with ChatServer(lambda req: reply) as server:
        with pytest.raises(FillError) as caught:
            GRAPH.run(lm=make_lm(server), question="q")
    message = str(caught.value)
    assert "refused the API key (HTTP 401)" in message and "check OPENAI_API_KEY" in message
    assert "invalid_api_key" in message
    assert API_KEY not in message and "S3CRET" not in message
    # a 401 is asked once: neither the backend nor the runtime's fill retries it
    assert [attributes(s)["graphtrace.lm.http_attempts"] for s in chat_spans(traces)] == [1]
    assert attributes(chat_spans(traces)[0])["error.type"] == "LMAuthenticationError"

    traces.spans()  # flushes
    files = list(traces.path.glob("*.jsonl"))
    assert files
    text = "".join(f.read_text() for f in files)
    assert "refused the API key" in text  # the error is in the trace ...
    assert "gen_ai.input.messages" in text  # ... and so is the captured prompt ...
    assert "S3CRET" not in text and "Bearer" not in text  # ... but never the key


def test_an_auth_error_is_an_lm_error_with_its_status() -> None:
    with ChatServer(lambda req: error(403, "forbidden")) as server:
        with pytest.raises(LMAuthenticationError) as caught:
            run(ask(make_lm(server)))
    assert caught.value.status_code == 403


def test_an_unknown_model_is_a_not_found_error(traces: TraceDir) -> None:
    reply = error(404, "The model `test-model` does not exist", code="model_not_found")
    with ChatServer(lambda req: reply) as server:
        with pytest.raises(LMNotFoundError) as caught:
            run(ask(make_lm(server)))
    assert caught.value.status_code == 404
    assert "model 'test-model'" in str(caught.value) and "OPENAI_BASE_URL" in str(caught.value)
    assert len(server.requests) == 1
    (span,) = chat_spans(traces)
    assert attributes(span)["error.type"] == "LMNotFoundError"
    assert failed_attempts(span)[0]["http.response.status_code"] == 404


def test_rate_limit_exhausted_is_a_rate_limit_error() -> None:
    with ChatServer(lambda req: error(429, "quota", retry_after="0")) as server:
        with pytest.raises(LMRateLimitError, match="gave up after 2 attempts"):
            run(ask(make_lm(server, max_attempts=2)))
    assert len(server.requests) == 2


def test_a_refusal_is_an_error_and_the_span_keeps_what_the_answer_said(
    traces: TraceDir,
) -> None:
    with ChatServer(lambda req: completion(None, refusal="I can't help with that.")) as server:
        with pytest.raises(LMRefusalError, match="refused: I can't help with that."):
            run(ask(make_lm(server)))
    (span,) = chat_spans(traces)
    a = attributes(span)
    assert a["error.type"] == "LMRefusalError"
    assert a["gen_ai.response.id"] == "chatcmpl-test-1"
    assert a["gen_ai.usage.output_tokens"] == 7


def test_a_truncated_reply_is_an_error_with_its_tokens_on_the_span(traces: TraceDir) -> None:
    reply = completion('{"answer": "forty', finish_reason="length", completion_tokens=16)
    with ChatServer(lambda req: reply) as server:
        with pytest.raises(LMTruncatedError, match=r"finish_reason=length after 16 output"):
            run(ask(make_lm(server)))
    (span,) = chat_spans(traces)
    a = attributes(span)
    assert a["error.type"] == "LMTruncatedError"
    assert a["gen_ai.response.finish_reasons"] == ["length"]
    assert a["gen_ai.usage.output_tokens"] == 16


def test_a_body_that_is_not_json_is_a_response_error() -> None:
    with ChatServer(lambda req: Reply(200, "<html>gateway says hi</html>")) as server:
        with pytest.raises(LMResponseError, match=r"not JSON \(text/html\).*gateway says hi"):
            run(ask(make_lm(server)))


def test_a_json_body_without_choices_is_a_response_error() -> None:
    with ChatServer(lambda req: Reply(200, {"object": "list", "data": []})) as server:
        with pytest.raises(LMResponseError, match="no 'choices'"):
            run(ask(make_lm(server)))


# -- content capture ------------------------------------------------------------------------


def test_content_is_recorded_only_when_asked(
    traces: TraceDir, answers: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CAPTURE_ENV, "true")
    run(ask(make_lm(answers)))
    monkeypatch.setenv(CAPTURE_ENV, "EVENT_ONLY")
    run(ask(make_lm(answers)))
    on_span, as_event = chat_spans(traces)

    a = attributes(on_span)
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Reply with JSON."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is six times seven?"}]},
    ]
    assert json.loads(a["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": '{"answer": "forty-two"}'}],
            "finish_reason": "stop",
        }
    ]
    assert not [e for e in on_span.get("events", []) if e["name"].startswith("gen_ai.")]

    assert "gen_ai.input.messages" not in attributes(as_event)
    (event,) = [e for e in as_event["events"] if e["name"].startswith("gen_ai.")]
    assert event["name"] == "gen_ai.client.inference.operation.details"
    assert json.loads(attributes(event)["gen_ai.output.messages"])[0]["finish_reason"] == "stop"


def test_an_unknown_capture_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CAPTURE_ENV, "ture")
    with pytest.raises(ValueError, match=r"'ture' is not understood; use true, false"):
        LMCaller(FakeLM())


# -- configuration --------------------------------------------------------------------------


def test_base_url_and_key_come_from_the_environment_like_the_sdk(
    answers: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", answers.url + "/")
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    lm = OpenAILM("env-model")
    assert lm.base_url == answers.url
    assert API_KEY not in repr(lm) and "api_key=set" in repr(lm)
    run(ask(lm))
    (request,) = answers.requests
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == "env-model"


def test_a_local_server_without_a_key_gets_no_authorization_header(
    answers: ChatServer,
) -> None:
    run(ask(OpenAILM("local", base_url=answers.url)))
    assert "authorization" not in answers.requests[0].headers


def test_extra_body_is_sent_with_the_request(answers: ChatServer) -> None:
    run(ask(make_lm(answers, extra_body={"temperature": 0, "max_tokens": 64})))
    body = answers.requests[0].body
    assert body["temperature"] == 0 and body["max_tokens"] == 64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "https://api.openai.com/v1"}, "OPENAI_API_KEY is not set"),
        ({"base_url": "ftp://user:pw@host/v1"}, "must be an http(s) URL"),
        ({"base_url": "not a url"}, "must be an http(s) URL"),
        ({"base_url": "http://h", "timeout": 0}, "timeout must be a positive"),
        ({"base_url": "http://h", "max_attempts": 0}, "max_attempts must be at least 1"),
        ({"base_url": "http://h", "extra_body": {"model": "x"}}, "must not set model"),
    ],
)
def test_bad_configuration_is_a_one_line_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        OpenAILM("m", **kwargs)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert "pw" not in str(caught.value)


# -- specs and the retry policy -------------------------------------------------------------


def test_lm_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = lm_from_spec("fake", seed=5)
    assert isinstance(fake, FakeLM) and fake.seed == 5
    seeded = lm_from_spec("fake:9", seed=5)
    assert isinstance(seeded, FakeLM) and seeded.seed == 9
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    ollama = lm_from_spec("openai:llama3.1:8b")
    assert isinstance(ollama, OpenAILM) and ollama.model == "llama3.1:8b"
    for bad in ("", "gpt-4o", "openai", "openai:", "anthropic:claude"):
        with pytest.raises(ValueError, match=r"use 'fake', 'fake:SEED' or 'openai:MODEL'"):
            lm_from_spec(bad)
    with pytest.raises(ValueError, match="must be an integer"):
        lm_from_spec("fake:seven")


def test_retry_after_forms() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "1.5", "retry-after-ms": "250"}) == 0.25
    now = 1_700_000_000.0
    assert retry_after({"retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"}, now=now) == 10.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({"retry-after": "-3"}) is None
    assert retry_after({}) is None


def test_retry_policy_backs_off_with_jitter_and_caps_what_it_honours() -> None:
    policy = RetryPolicy(backoff=1.0, max_backoff=4.0, max_retry_after=60.0, rng=lambda: 1.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.75, 1.5, 3.0, 3.0]
    assert RetryPolicy(backoff=1.0, rng=lambda: 0.0).delay(1) == 1.0
    assert policy.delay(1, {"retry-after": "30"}) == 30.0
    assert policy.delay(1, {"retry-after": "3600"}) == 0.75  # too long: our own back-off
    assert RetryPolicy.retries_status(429, {}) and RetryPolicy.retries_status(502, {})
    assert not RetryPolicy.retries_status(400, {})
    assert RetryPolicy.retries_status(400, {"x-should-retry": "true"})


def test_the_server_helper_sees_hangups_from_a_plain_socket() -> None:
    # the cancellation and timeout tests rely on this: a client that leaves is counted
    with ChatServer(lambda req: Reply(hang=True)) as server:
        host, port = server.url.removeprefix("http://").split("/")[0].split(":")
        with socket.create_connection((host, int(port))) as conn:
            conn.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
            )
            assert server.wait_until(server.received)
        assert server.wait_until(server.hung_up)
