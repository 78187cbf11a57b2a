"""The encoder process: the same lines as the writer thread makes, and nothing lost to it."""

from __future__ import annotations

import enum
import json
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Status, StatusCode

from exporters.encoder_process import EncoderProcess, encode_frames_here
from exporters.file import JsonlFileWriter
from exporters.otlp_json import PENDING_ATTRIBUTE, Started, encode_batch
from exporters.wire import WireError, WireReader, WireWriter
from tests.otlp_validator import read_spans, validate_line
from tracing.live import LiveSpanProcessor
from tracing.provider import LeanTracerProvider

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and sessions")


class Mood(enum.StrEnum):
    CALM = "calm"


def varied_records() -> list[Any]:
    """Starts and ends of spans with every kind of content the runtime writes."""
    provider = LeanTracerProvider(Resource({"service.name": "wire", "n": 3}, "https://schema"))
    tracer = provider.get_tracer("graphtrace", "1.2")
    other = LeanTracerProvider(Resource({"service.name": "other"})).get_tracer("x")
    records: list[Any] = []
    root: Any = tracer.start_span("run g", attributes={"graphtrace.run.id": "r1"})
    records.append(Started(root, root._start_attributes))
    for i in range(40):
        span: Any = tracer.start_child(
            f"node Step{i % 3}", {"graphtrace.node.step": i, "ratio": i / 7, "ok": i % 2 == 0}, root
        )
        records.append(Started(span, span._start_attributes))
        span.set_attributes(
            {
                "text": 'quotes " \\ tab\t newline\n ünï ✓ 😀 \u2028',
                "lone": "\ud800",
                "big": 2**70,
                "tokens": ("a", "b"),
                "nums": (1, 2),
                "nan": float("nan"),
                "inf": float("-inf"),
            }
        )
        if i % 5 == 0:
            span.record_exception(ValueError(f"bad {i}"))
            span.set_status(Status(StatusCode.ERROR, f"ValueError: bad {i}"))
        span.end()
        records.append(span)
    elsewhere: Any = other.start_span("chat fake")
    elsewhere.end()
    records += [Started(elsewhere, {}), elsewhere]
    root.end()
    records.append(root)
    return records


def pending_ids_blanked(lines: list[str]) -> list[Any]:
    """The documents, with each pending record's own (random) span id blanked."""
    documents = [json.loads(line) for line in lines]
    for document in documents:
        for resource in document["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    if any(a["key"] == PENDING_ATTRIBUTE for a in span.get("attributes", ())):
                        span["spanId"] = "-"
    return documents


@pytest.fixture
def helper() -> Any:
    process = EncoderProcess.spawn()
    assert process is not None
    deadline = time.monotonic() + 30
    while not process.ready:
        assert time.monotonic() < deadline, "the encoder process never got ready"
        time.sleep(0.01)
    yield process
    process.close()


def test_the_helper_writes_what_the_writer_thread_would(helper: EncoderProcess) -> None:
    records = varied_records()
    data = helper.encode(records, 0, 16)
    assert data is not None and data.endswith(b"\n")
    lines = data.decode("utf-8").splitlines()
    here = [encode_batch(records[i : i + 16]) for i in range(0, len(records), 16)]
    assert [len(validate_line(line)) for line in lines] == [len(validate_line(h)) for h in here]
    assert pending_ids_blanked(lines) == pending_ids_blanked(here)
    # every frame defines the resources and scopes it names: the next encodes the same
    again = helper.encode(records, 0, 16)
    assert again is not None
    assert pending_ids_blanked(again.decode().splitlines()) == pending_ids_blanked(here)
    assert helper.encoded == 2 * len(records)


def test_every_frame_reads_back_on_its_own() -> None:
    records = varied_records()
    writer = WireWriter()
    first, second = writer.frame(records[:20]), writer.frame(records[20:])
    here = [encode_batch(records[20 + i : 20 + i + 16]) for i in range(0, len(records) - 20, 16)]
    # a reader that never saw the first frame (a helper that is gone: this process reads it)
    alone = encode_frames_here([second], 16)
    assert pending_ids_blanked(alone) == pending_ids_blanked(here)
    reader = WireReader()
    earlier: Any = reader.records(first)
    later: Any = reader.records(second)
    # a resource every frame defines again is read as the same object: one group in a line
    resource = next(r for r in earlier if not isinstance(r, Started))._resource
    assert sum(r._resource is resource for r in later if not isinstance(r, Started)) >= 10


def test_one_request_carries_many_frames(helper: EncoderProcess) -> None:
    records = varied_records()
    writer = WireWriter()  # frames from another writer than the helper's own, as producers make
    frames = [writer.frame(records[i : i + 7]) for i in range(0, len(records), 7)]
    data = helper.encode_frames(frames, len(records), 16)
    assert data is not None
    here = [encode_batch(records[i : i + 16]) for i in range(0, len(records), 16)]
    assert pending_ids_blanked(data.decode().splitlines()) == pending_ids_blanked(here)
    assert helper.encoded == len(records)


def framing_processor(directory: Path) -> tuple[LiveSpanProcessor, Any]:
    """A live processor (and a tracer feeding it) whose helper has answered: from now on the
    threads that end spans frame them."""
    processor = LiveSpanProcessor(JsonlFileWriter(directory), encoder_process=True)
    provider = LeanTracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    deadline = time.monotonic() + 30
    while processor._producer_wire is None:
        assert time.monotonic() < deadline, "the helper never encoded anything"
        for _ in range(50):
            tracer.start_span("warm-up").end()
        processor.force_flush()
    return processor, tracer


def ended_records(directory: Path) -> tuple[list[str], list[str]]:
    """Names of the pending records and of the ended spans in the file, in file order."""
    pending: list[str] = []
    ended: list[str] = []
    for span in read_spans(directory):
        keys = {a["key"] for a in span.get("attributes", ())}
        (pending if PENDING_ATTRIBUTE in keys else ended).append(span["name"])
    return pending, ended


def test_once_the_helper_answers_the_thread_that_ends_spans_frames_them(tmp_path: Path) -> None:
    processor, tracer = framing_processor(tmp_path)
    processor.flush_interval = 60.0  # the writer sleeps: what happens now happens here
    processor.force_flush()
    spans = [tracer.start_span(f"s{i}", attributes={"i": i}) for i in range(300)]
    alive = [weakref.ref(span) for span in spans]
    for span in spans:
        span.end()
    del spans, span
    assert processor.producer_frames >= 2
    # framed as they ended, and freed with it: not kept until the writer's next pass
    assert sum(ref() is None for ref in alive) >= 256
    processor.shutdown()
    pending, ended = ended_records(tmp_path)
    names = [f"s{i}" for i in range(300)]
    assert [n for n in ended if n != "warm-up"] == names
    assert [n for n in pending if n != "warm-up"] == names
    assert processor.lost == 0 and processor.queued == 0


def test_frames_made_for_a_helper_that_died_are_encoded_here(tmp_path: Path) -> None:
    processor, tracer = framing_processor(tmp_path)
    encoder = processor.encoder_process
    assert encoder is not None
    os.kill(encoder.pid, signal.SIGKILL)
    encoder._process.wait()
    before = processor.producer_frames
    for i in range(1000):
        tracer.start_span("after", attributes={"i": i}).end()
    assert processor.producer_frames > before  # made before the writer found the helper gone
    processor.shutdown()
    _, ended = ended_records(tmp_path)
    assert ended.count("after") == 1000
    assert processor.lost == 0
    assert processor.encoder_process is None and processor._producer_wire is None


def test_spans_ended_on_many_threads_are_written_once_each_start_before_its_end(
    tmp_path: Path,
) -> None:
    processor, tracer = framing_processor(tmp_path)

    def produce(thread: int) -> None:
        for i in range(3000):
            span = tracer.start_span(f"t{thread}-{i}")
            tracer.start_span("child").end()  # starts and ends interleave across threads
            span.end()

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    processor.shutdown()
    assert processor.producer_frames > 0 and processor.lost == 0
    seen_start: set[str] = set()
    ends: list[str] = []
    for span in read_spans(tmp_path):
        keys = {a["key"] for a in span.get("attributes", ())}
        if span["name"].startswith("t"):
            if PENDING_ATTRIBUTE in keys:
                seen_start.add(span["name"])
            else:
                assert span["name"] in seen_start, f"{span['name']} ended before it started"
                ends.append(span["name"])
    assert sorted(ends) == sorted(f"t{t}-{i}" for t in range(4) for i in range(3000))


def test_a_package_of_the_same_name_in_the_working_directory_does_not_shadow_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shadow = tmp_path / "exporters"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("")
    (shadow / "encoder_process.py").write_text("raise SystemExit('the wrong package')\n")
    monkeypatch.chdir(tmp_path)
    process = EncoderProcess.spawn()
    assert process is not None
    try:
        deadline = time.monotonic() + 30
        while not process.ready and not process.failed:
            assert time.monotonic() < deadline, "the encoder process never got ready"
            time.sleep(0.01)
        records = varied_records()
        data = process.encode(records, 0, 16)
        assert data is not None and len(data.decode().splitlines()) == -(-len(records) // 16)
    finally:
        process.close()


def test_starts_as_the_live_processor_queues_them(helper: EncoderProcess) -> None:
    # the processor queues a LeanSpan itself at its start: its start attributes stay put
    tracer = LeanTracerProvider().get_tracer("t")
    spans: list[Any] = [tracer.start_span(f"s{i}", attributes={"i": i}) for i in range(3)]
    for span in spans:
        span.set_attribute("late", True)  # copy on write: the start attributes keep i alone
        span.end()
    data = helper.encode([*spans, *spans], 3, 512)
    assert data is not None
    here = encode_batch([*(Started(s, {"i": s.attributes["i"]}) for s in spans), *spans])
    assert pending_ids_blanked(data.decode().splitlines()) == pending_ids_blanked([here])


def test_a_batch_the_wire_cannot_carry_is_left_to_the_caller(helper: EncoderProcess) -> None:
    span: Any = LeanTracerProvider().get_tracer("t").start_span("s", attributes={"m": Mood.CALM})
    span.end()
    with pytest.raises(WireError):
        WireWriter().frame([span])  # a str subclass: marshal does not write it
    assert helper.encode([span], 0, 16) is None
    assert not helper.failed  # only that batch: the helper goes on
    plain: Any = LeanTracerProvider().get_tracer("t").start_span("s", attributes={"m": "calm"})
    plain.end()
    assert helper.encode([plain], 0, 16) is not None


def test_a_dead_helper_makes_the_writer_encode_and_loses_nothing(tmp_path: Path) -> None:
    processor = LiveSpanProcessor(JsonlFileWriter(tmp_path), encoder_process=True)
    provider = LeanTracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    for i in range(300):
        tracer.start_span("before", attributes={"i": i}).end()
    deadline = time.monotonic() + 30
    while processor.encoder_process is None or not processor.encoder_process.encoded:
        assert time.monotonic() < deadline, "the helper never encoded anything"
        processor.force_flush()
        tracer.start_span("before", attributes={"i": -1}).end()
    encoder = processor.encoder_process
    assert encoder is not None
    os.kill(encoder.pid, signal.SIGKILL)
    for i in range(300):
        tracer.start_span("after", attributes={"i": i}).end()
    processor.shutdown()
    spans = read_spans(tmp_path)
    ended = [s for s in spans if PENDING_ATTRIBUTE not in {a["key"] for a in s["attributes"]}]
    assert sum(s["name"] == "after" for s in ended) == 300
    assert processor.lost == 0
    assert processor.encoder_process is None  # given up on, not restarted


def test_the_helper_ends_with_its_writer_and_ignores_ctrl_c(tmp_path: Path) -> None:
    processor = LiveSpanProcessor(JsonlFileWriter(tmp_path), encoder_process=True)
    provider = LeanTracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    deadline = time.monotonic() + 30
    while processor.encoder_process is None or not processor.encoder_process.encoded:
        assert time.monotonic() < deadline, "the helper never encoded anything"
        tracer.start_span("s").end()
        processor.force_flush()
    encoder = processor.encoder_process
    assert encoder is not None
    os.kill(encoder.pid, signal.SIGINT)
    tracer.start_span("after ctrl-c").end()
    processor.force_flush()
    assert processor.encoder_process is encoder and not encoder.failed
    processor.shutdown()
    assert encoder._process.poll() is not None  # ended when its input closed


def test_the_helper_ends_when_its_process_is_killed(tmp_path: Path) -> None:
    code = f"""
import sys, time
from exporters.file import JsonlFileWriter
from tracing.live import LiveSpanProcessor
from tracing.provider import LeanTracerProvider
processor = LiveSpanProcessor(JsonlFileWriter({str(tmp_path)!r}), encoder_process=True)
provider = LeanTracerProvider()
provider.add_span_processor(processor)
tracer = provider.get_tracer("t")
while processor.encoder_process is None or not processor.encoder_process.encoded:
    tracer.start_span("s").end()
    processor.force_flush()
print(processor.encoder_process.pid, flush=True)
time.sleep(60)
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    try:
        assert parent.stdout is not None
        helper_pid = int(parent.stdout.readline())
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(helper_pid):
            assert time.monotonic() < deadline, "the helper outlived its process"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()


def test_the_variable_keeps_encoding_in_the_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPHTRACE_ENCODER_PROCESS", "0")
    processor = LiveSpanProcessor(JsonlFileWriter(tmp_path))
    provider = LeanTracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    for _ in range(5000):  # well past the volume that starts a helper
        tracer.start_span("s").end()
    processor.shutdown()
    assert processor.encoder_process is None
    assert len(read_spans(tmp_path)) == 10_000


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by its parent, init here) counts as ended
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
