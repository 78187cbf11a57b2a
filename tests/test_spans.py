"""Every span's name, attributes and parent, read back from the file through the validator."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import pytest

from graphtrace import Dep, FakeLM, Gate, Graph, Node
from tests.conftest import TraceDir, decide, run
from tests.otlp_validator import attributes


async def words(topic: str) -> list[str]:
    await asyncio.sleep(0)
    return topic.split()


def count(found: Annotated[list[str], Dep(words)]) -> int:
    return len(found)


class Answer(Node):
    """Answer the question."""

    text: str
    ok: Annotated[bool, Gate("Send it?", default=True)]

    async def __call__(self) -> None: ...


class Question(Node):
    topic: str
    found: Annotated[list[str], Dep(words)]
    n: Annotated[int, Dep(count)]

    async def __call__(self) -> Answer | None: ...


def _tree(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["spanId"]: s for s in spans}


def test_span_names_attributes_and_parents(traces: TraceDir) -> None:
    graph = Graph(start=Question, name="qa")
    r = graph.new_run(lm=FakeLM(respond=decide("Answer")), auto_answer=True, topic="a b c")
    run(r.execute())
    spans = [s for s in traces.finished() if s["traceId"] == r.trace_id]
    by_id = _tree(spans)
    names = sorted(s["name"] for s in spans)
    assert names == sorted(
        [
            "run qa",
            "node Question",
            "dep words",
            "dep words",
            "dep count",
            "chat fake",
            "node Answer",
            "chat fake",
            "gate Answer.ok",
        ]
    )

    def parent(s: dict[str, Any]) -> str:
        return by_id[s["parentSpanId"]]["name"] if "parentSpanId" in s else "-"

    (root,) = [s for s in spans if s["name"] == "run qa"]
    assert "parentSpanId" not in root
    ra = attributes(root)
    assert ra["graphtrace.run.id"] == r.run_id and ra["graphtrace.graph"] == "qa"
    assert ra["graphtrace.run.status"] == "completed"
    assert root["kind"] == 1 and root.get("status", {}).get("code", 0) != 2

    nodes = sorted(
        (s for s in spans if s["name"].startswith("node ")),
        key=lambda s: attributes(s)["graphtrace.node.step"],
    )
    assert [attributes(n)["graphtrace.node.step"] for n in nodes] == [1, 2]
    assert all(parent(n) == "run qa" for n in nodes)
    state = json.loads(attributes(nodes[0])["graphtrace.node.state"])
    assert state == {"topic": "a b c", "found": ["a", "b", "c"], "n": 3}

    # dep chain nested: count -> words (cached, the other field resolved it first or after)
    deps = [s for s in spans if s["name"].startswith("dep ")]
    assert {parent(d) for d in deps} == {"node Question", "dep count"}
    cached = sorted(
        attributes(d)["graphtrace.dep.cached"] for d in deps if d["name"] == "dep words"
    )
    assert cached == [False, True]

    chats = [s for s in spans if s["name"] == "chat fake"]
    assert {parent(c) for c in chats} == {"node Question", "node Answer"}
    for c in chats:
        a = attributes(c)
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "graphtrace.fake"
        assert a["gen_ai.request.model"] == "fake"
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
        assert a["gen_ai.response.finish_reasons"] == ["stop"]

    (gate,) = [s for s in spans if s["name"] == "gate Answer.ok"]
    ga = attributes(gate)
    assert parent(gate) == "node Answer"
    assert ga["graphtrace.gate.id"] == "Answer.ok"
    assert ga["graphtrace.gate.prompt"] == "Send it?"
    assert json.loads(ga["graphtrace.gate.schema"]) == {"type": "boolean"}
    assert json.loads(ga["graphtrace.gate.answer"]) is True


def test_pending_record_for_every_span(traces: TraceDir) -> None:
    r = Graph(start=Question).new_run(lm=FakeLM(respond=decide("END")), topic="x")
    run(r.execute())
    spans = [s for s in traces.spans() if s["traceId"] == r.trace_id]
    finished = {s["spanId"]: s for s in spans if not attributes(s).get("graphtrace.pending")}
    pending = [s for s in spans if attributes(s).get("graphtrace.pending")]
    assert len(pending) == len(finished)
    for p in pending:
        started = finished[p["parentSpanId"]]
        assert p["spanId"] not in finished
        assert p["name"] == started["name"]
        assert p["startTimeUnixNano"] == p["endTimeUnixNano"] == started["startTimeUnixNano"]
        # where the open span sits in the tree, known before its end record arrives
        assert attributes(p).get("graphtrace.pending.parent_span_id") == started.get("parentSpanId")


def test_pending_record_is_in_the_file_while_the_span_is_open(traces: TraceDir) -> None:
    async def main() -> None:
        r = Graph(start=Answer).new_run(lm=FakeLM(), text="t")
        task = asyncio.create_task(r.execute())
        while not r.waiting_gates:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.15)  # the writer flushes every 10 ms in this fixture
        from tests.otlp_validator import read_spans

        on_disk = read_spans(traces.path)  # no flush(): what a live reader would see
        open_gate = [s for s in on_disk if s["name"] == "gate Answer.ok"]
        assert len(open_gate) == 1 and attributes(open_gate[0])["graphtrace.pending"] is True
        assert attributes(open_gate[0])["graphtrace.gate.prompt"] == "Send it?"
        r.answer(None, False)
        await task

    run(main())


class Explodes(Node):
    async def __call__(self) -> None:
        raise ZeroDivisionError("boom")


def test_exception_becomes_an_event_with_status_error(traces: TraceDir) -> None:
    r = Graph(start=Explodes).new_run(lm=FakeLM())
    with pytest.raises(ZeroDivisionError):
        run(r.execute())
    spans = {s["name"]: s for s in traces.finished() if s["traceId"] == r.trace_id}
    node, root = spans["node Explodes"], spans["run Explodes"]
    assert node["status"]["code"] == 2 and "boom" in node["status"]["message"]
    (event,) = node["events"]
    assert event["name"] == "exception"
    ev = attributes(event)
    assert ev["exception.type"] == "ZeroDivisionError" and ev["exception.message"] == "boom"
    assert root["status"]["code"] == 2
    assert attributes(root)["graphtrace.run.status"] == "failed"


def test_cancelled_run_is_recorded_as_cancelled(traces: TraceDir) -> None:
    async def main() -> str:
        r = Graph(start=Answer).new_run(lm=FakeLM(), text="t")
        task = asyncio.create_task(r.execute())
        while not r.waiting_gates:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert r.state.value == "cancelled"
        return r.trace_id or ""

    trace_id = run(main())
    spans = {s["name"]: s for s in traces.finished() if s["traceId"] == trace_id}
    assert attributes(spans["run Answer"])["graphtrace.run.status"] == "cancelled"
    for name in ("run Answer", "node Answer", "gate Answer.ok"):
        assert spans[name]["status"] == {"code": 2, "message": "cancelled"}


APP_PROVIDER_SCRIPT = """
import sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from graphtrace import configure
from graphtrace.demo import graph
from graphtrace import FakeLM

app_spans = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(app_spans))
trace.set_tracer_provider(provider)
tracing = configure(sys.argv[1])
assert trace.get_tracer_provider() is provider, "configure replaced the app's provider"
assert tracing.provider is provider
graph.run(lm=FakeLM(), auto_answer=True)
tracing.flush()
names = sorted({s.name for s in app_spans.get_finished_spans()})
print(",".join(names))
"""


def test_configure_adds_to_an_application_provider(tmp_path: Any) -> None:
    import subprocess
    import sys

    from tests.otlp_validator import read_spans

    out = (
        subprocess.run(
            [sys.executable, "-c", APP_PROVIDER_SCRIPT, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        .stdout.strip()
        .split(",")
    )
    assert "run support-triage" in out and "node Triage" in out
    in_file = {s["name"] for s in read_spans(tmp_path)}
    assert set(out) <= in_file
