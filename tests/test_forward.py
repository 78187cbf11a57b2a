"""OTLP forwarding against a real OTLP/HTTP receiver on loopback: live, slow, failing, absent.

The receiver (tests/otlp_receiver.py) decodes what the SDK's exporter sends with
opentelemetry-proto. What the tests hold on to: the runs and the local file never wait for the
endpoint; every span that does not get through is counted, reported and recorded in the trace;
``graphtrace push`` delivers it afterwards, and a second push sends nothing again.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exporters.forwarding.endpoint import EndpointError, parse_headers, traces_url
from exporters.forwarding.failures import describe
from exporters.forwarding.ledger import Ledger
from exporters.forwarding.loss import LOST, LOST_IDS, LOST_SPAN_NAME
from exporters.forwarding.processor import ForwardingSpanProcessor
from graphtrace import FakeLM, PendingGate, configure
from graphtrace.cli.app import app
from tests.forward_graph import graph
from tests.forward_support import GRAPH_FILE, KINDS, final_spans, kind_of, push, run_graph
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan, free_port
from tests.otlp_validator import attributes, read_spans
from tests.test_cli import graphtrace


@pytest.fixture(autouse=True)
def _no_ambient_otlp(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own OTEL_* settings must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


def loss_records(trace_dir: Path) -> list[dict[str, Any]]:
    return [s for s in read_spans(trace_dir) if s["name"] == LOST_SPAN_NAME]


def by_id(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.span_id: s for s in spans}


async def run_many(n: int, **kwargs: Any) -> list[Any]:
    return await asyncio.gather(
        *(graph.arun(lm=FakeLM(seed=i), auto_answer=True, **kwargs) for i in range(n))
    )


# -- where spans go -------------------------------------------------------------------------


def test_endpoint_is_read_like_the_sdk_reads_it() -> None:
    assert traces_url("http://c:4318", {}) == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/", {}) == "http://c:4318/v1/traces"
    assert traces_url("https://c/api/v1/traces", {}) == "https://c/api/v1/traces"
    assert traces_url(None, {}) is None
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318/"}
    assert traces_url(None, env) == "http://base:4318/v1/traces"
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://t:1/custom"  # the SDK takes it as is
    assert traces_url(None, env) == "http://t:1/custom"
    assert traces_url("http://explicit:2", env) == "http://explicit:2/v1/traces"
    with pytest.raises(EndpointError, match="must be an http"):
        traces_url("localhost:4318", {})
    assert parse_headers("authorization=Bearer%20x, x-team=a") == {
        "authorization": "Bearer x",
        "x-team": "a",
    }
    with pytest.raises(EndpointError, match="key=value"):
        parse_headers("novalue")


def test_failure_reasons_are_short() -> None:
    refused = (
        "Failed to export spans batch code: None, reason: HTTPConnectionPool(host='127.0.0.1', "
        "port=9): Max retries exceeded (Caused by NewConnectionError('<conn>: Failed to "
        "establish a new connection: [Errno 111] Connection refused'))"
    )
    assert describe(["Transient error x encountered", refused]) == "connection refused"
    assert describe(["Failed to export spans batch code: 401, reason: Unauthorized"]) == (
        "HTTP 401 Unauthorized"
    )
    retried = [
        "Transient error Service Unavailable encountered while exporting span batch, retrying",
        "Failed to export span batch due to timeout, max retries or shutdown.",
    ]
    assert describe(retried) == "Service Unavailable"


# -- live ------------------------------------------------------------------------------------


def test_runs_are_forwarded_live_with_parents_and_attributes(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    tracing = configure(tmp_path / "tr", otlp_endpoint=receiver.url, flush_interval=0.01)
    try:
        asyncio.run(run_many(3))
        reports = tracing.finish_forwarding()
        assert tracing.flush()
    finally:
        tracing.shutdown()
    written = final_spans(tmp_path / "tr")
    got = by_id(receiver.spans)
    assert set(got) == {s["spanId"] for s in written}  # every final span, nothing else
    assert len(receiver.spans) == len(written)  # each once
    for span in written:
        assert got[span["spanId"]].parent_id == span.get("parentSpanId", "")
        assert got[span["spanId"]].name == span["name"]
    assert {kind_of(s.name) for s in receiver.spans} == set(KINDS)
    chat = next(s for s in receiver.spans if s.name.startswith("chat "))
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.usage.input_tokens"] > 0
    assert not any(s.attributes.get("graphtrace.pending") for s in receiver.spans)
    assert not loss_records(tmp_path / "tr")
    [report] = reports
    assert (report.sent, report.lost) == (len(written), 0)
    assert "forwarded" in report.summary()
    runs = {s.trace_id for s in receiver.spans if s.name.startswith("run ")}
    known = Ledger(tmp_path / "tr", report.endpoint).load()
    assert {t for t, k in known.items() if k.live} == runs


def test_pending_records_are_forwarded_only_when_asked(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    tracing = configure(
        tmp_path / "tr", otlp_endpoint=receiver.url, forward_pending=True, flush_interval=0.01
    )
    try:
        asyncio.run(run_many(1))
        tracing.finish_forwarding()
    finally:
        tracing.shutdown()
    pending = [s for s in receiver.spans if s.attributes.get("graphtrace.pending")]
    ended = by_id([s for s in receiver.spans if not s.attributes.get("graphtrace.pending")])
    assert {p.name for p in pending} == {s.name for s in ended.values()}
    for record in pending:  # the started span is the record's parent, as in the file
        started = ended[record.parent_id]
        assert (record.name, record.start_ns, record.end_ns) == (
            started.name,
            started.start_ns,
            started.start_ns,
        )
        if started.parent_id:
            assert record.attributes["graphtrace.pending.parent_span_id"] == started.parent_id


# -- independence ----------------------------------------------------------------------------


def test_an_endpoint_that_does_not_answer_holds_up_neither_runs_nor_file(
    tmp_path: Path, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "60")  # the exporter keeps waiting
    receiver.hold()
    tracing = configure(tmp_path / "tr", otlp_endpoint=receiver.url, flush_interval=0.01)
    try:
        results = asyncio.run(run_many(20))
        assert tracing.live.force_flush(30_000)
        # every run has ended and its file is complete, while the endpoint has yet to answer
        # a single request
        assert len(results) == 20
        written = final_spans(tmp_path / "tr")
        runs = [s for s in written if s["name"].startswith("run ")]
        assert [attributes(s)["graphtrace.run.status"] for s in runs] == ["completed"] * 20
        assert receiver.spans == []
        receiver.release()
        assert tracing.flush()
        [report] = tracing.finish_forwarding()
    finally:
        receiver.release()
        tracing.shutdown()
    assert report.lost == 0
    assert {s.span_id for s in receiver.spans} == {s["spanId"] for s in written}


def test_a_failing_endpoint_loses_spans_counted_and_recorded_in_the_trace(
    tmp_path: Path, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0.5")  # no time for a retry
    receiver.status = 503
    tracing = configure(tmp_path / "tr", otlp_endpoint=receiver.url, flush_interval=0.01)
    try:
        asyncio.run(run_many(5))
        [report] = tracing.finish_forwarding()
        assert tracing.flush()
    finally:
        tracing.shutdown()
    written = final_spans(tmp_path / "tr")
    assert receiver.requests  # it was tried
    assert report.sent == 0
    assert report.lost == len(written)
    assert report.reason is not None and "503" in report.reason
    assert "could not be forwarded" in report.summary()
    records = loss_records(tmp_path / "tr")
    assert sum(int(attributes(r)[LOST]) for r in records) == report.lost
    listed = {i for r in records for i in attributes(r)[LOST_IDS]}
    assert listed == {s["spanId"] for s in written}
    ids = {s["spanId"] for s in written}
    for record in records:  # each hangs in its own run's tree
        assert record["parentSpanId"] in ids
        assert record["traceId"] in {s["traceId"] for s in written}
    # the file itself is complete: five finished runs
    runs = [s for s in written if s["name"].startswith("run ")]
    assert [attributes(s)["graphtrace.run.status"] for s in runs] == ["completed"] * 5


def test_a_full_queue_drops_instead_of_waiting(receiver: OtlpReceiver) -> None:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext

    receiver.hold()
    forwarder = ForwardingSpanProcessor(
        receiver.url + "/v1/traces", max_queue=10, batch_size=5, drain_timeout=0.0, timeout=60
    )
    written: list[ReadableSpan] = []
    forwarder.local = written.append
    spans = [
        ReadableSpan(f"s{i}", SpanContext(7, i + 1, False), None, start_time=1, end_time=2)
        for i in range(200)
    ]
    for span in spans:  # never blocks: 200 spans into a queue of 10 while nothing is answered
        forwarder.on_end(span)
    forwarder.shutdown()
    receiver.release()
    assert forwarder.sent + forwarder.lost == 200
    assert forwarder.lost >= 185  # the queue holds 10, at most one batch of 5 was in flight
    counts = [(r.attributes or {}).get(LOST) for r in written]
    assert sum(c for c in counts if isinstance(c, int)) == forwarder.lost
    assert {r.name for r in written} == {LOST_SPAN_NAME}


# -- the command line: run, then push --------------------------------------------------------


def test_run_with_the_endpoint_down_then_push_delivers_once(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    out = run_graph(tmp_path, dead, runs=3)
    assert out.returncode == 0, out.stderr
    written = final_spans(tmp_path / "tr")
    runs = [s for s in written if s["name"].startswith("run ")]
    assert len(runs) == 3
    line = next(x for x in out.stdout.splitlines() if "could not be forwarded" in x)
    lost = int(line.split()[0].replace(",", ""))
    assert lost == len(written)
    assert "connection refused" in line
    assert f"graphtrace push --all --endpoint {dead}/v1/traces" in line
    assert sum(int(attributes(r)[LOST]) for r in loss_records(tmp_path / "tr")) == lost

    pushed = push(tmp_path, "--all", endpoint=receiver.url)
    assert pushed.returncode == 0, pushed.stderr
    assert f"pushed 3 run(s), {len(written)} span(s)" in pushed.stdout
    assert {s.span_id for s in receiver.spans} == {s["spanId"] for s in written}
    assert len(receiver.spans) == len(written)
    got = by_id(receiver.spans)
    for span in written:
        assert got[span["spanId"]].parent_id == span.get("parentSpanId", "")
        assert got[span["spanId"]].end_ns == int(span["endTimeUnixNano"])

    again = push(tmp_path, "--all", endpoint=receiver.url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already pushed") == 3
    assert len(receiver.spans) == len(written)  # nothing sent twice

    refused = push(  # a shorter timeout: the exporter's retries give up sooner
        tmp_path, "--all", endpoint=dead, env={"OTEL_EXPORTER_OTLP_TIMEOUT": "1"}
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("graphtrace: error: ")
    assert "connection refused" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_push_sends_only_what_was_lost_from_a_run_forwarded_live(
    tmp_path: Path, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's first spans fail (503) while it waits at its gate; its end gets through. The
    ledger knows the run went live, its forward.lost records list what did not: push sends
    exactly those."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0.5")
    tracing = configure(tmp_path / "tr", otlp_endpoint=receiver.url, flush_interval=0.01)

    async def scenario() -> None:
        waiting: asyncio.Queue[PendingGate] = asyncio.Queue()
        run = asyncio.create_task(graph.arun(lm=FakeLM(), on_gate=waiting.put_nowait))
        gate = await waiting.get()
        receiver.status = 503
        await asyncio.to_thread(tracing.flush)  # the spans ended so far: refused
        receiver.status = 200
        gate.answer(True)
        await run

    try:
        asyncio.run(scenario())
        [report] = tracing.finish_forwarding()
        assert tracing.flush()
    finally:
        tracing.shutdown()
    assert report.lost > 0 and report.sent > 0
    first = {s.span_id for s in receiver.spans}
    written = final_spans(tmp_path / "tr")
    assert first < {s["spanId"] for s in written}

    pushed = push(tmp_path, "last", endpoint=receiver.url)
    assert pushed.returncode == 0, pushed.stderr
    assert f"the {report.lost} span(s) lost while forwarding live" in pushed.stdout
    assert sorted(s.span_id for s in receiver.spans) == sorted(s["spanId"] for s in written)
    again = push(tmp_path, "last", endpoint=receiver.url)
    assert "already pushed" in again.stdout
    assert len(receiver.spans) == len(written)


def test_runs_forwarded_live_are_not_pushed_again(tmp_path: Path, receiver: OtlpReceiver) -> None:
    out = run_graph(tmp_path, receiver.url, runs=2)
    assert out.returncode == 0, out.stderr
    count = len(receiver.spans)
    assert f"forwarded {count} span(s) to {receiver.url}/v1/traces" in out.stdout
    pushed = push(tmp_path, "--since", "1h", endpoint=receiver.url)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.count("already forwarded live") == 2
    assert len(receiver.spans) == count
    forced = push(tmp_path, "--all", "--force", endpoint=receiver.url)
    assert "pushed 2 run(s)" in forced.stdout
    assert len(receiver.spans) == 2 * count


def test_standard_variables_choose_endpoint_headers_and_resource(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20t0k,x-team=support",
        "OTEL_SERVICE_NAME": "triage-worker",
        "OTEL_RESOURCE_ATTRIBUTES": "openinference.project.name=support,deployment.environment=ci",
    }
    out = graphtrace("run", GRAPH_FILE, "--auto-answer", "--trace-dir", "tr", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert receiver.spans
    assert receiver.requests[0]["authorization"] == "Bearer t0k"
    assert receiver.requests[0]["x-team"] == "support"
    resource = receiver.spans[0].resource
    assert resource["service.name"] == "triage-worker"
    assert resource["openinference.project.name"] == "support"
    assert resource["deployment.environment"] == "ci"
    # the file has the same resource: push later lands in the same place
    [line] = (tmp_path / "tr").glob("*.jsonl")
    first = json.loads(line.read_text().splitlines()[0])
    keys = {a["key"] for a in first["resourceSpans"][0]["resource"]["attributes"]}
    assert {"service.name", "openinference.project.name"} <= keys


def test_an_applications_own_provider_is_not_forwarded_to_twice(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        trace.set_tracer_provider(TracerProvider())
        from graphtrace import configure
        # its own exporter reads the variable: graphtrace adds no second path
        assert configure({str(tmp_path / "a")!r}).forwarders == []
        # asked in so many words, it forwards
        tracing = configure({str(tmp_path / "b")!r}, otlp_endpoint="http://127.0.0.1:9")
        assert len(tracing.forwarders) == 1
        print("ok")
        """
    )
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_push_and_run_say_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "tr").mkdir()
    cases = [
        (("push", "--endpoint", "http://x:1"), "say which runs"),
        (("push", "last", "--all", "--endpoint", "http://x:1"), "say which runs"),
        (("push", "--all"), "no endpoint"),
        (("push", "--all", "--endpoint", "x:1"), "must be an http(s) URL"),
        (("push", "--since", "soon", "--endpoint", "http://x:1"), "not a duration"),
        (("push", "nosuchrun", "--endpoint", "http://x:1"), "no run matches"),
        (("run", GRAPH_FILE, "--otlp-endpoint", "nope"), "must be an http(s) URL"),
    ]
    for args, message in cases:
        out = CliRunner().invoke(app, [*args, "--trace-dir", str(tmp_path / "tr")])
        assert out.exit_code == 2, (args, out.stderr)
        assert out.stderr.startswith("graphtrace: error: "), (args, out.stderr)
        assert message in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
