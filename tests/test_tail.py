"""``graphtrace tail``: the state it keeps, the gate prompt's parsing, line and JSON modes
against a scripted trace dir, and the real command in a terminal (tmux) answering the gates of
a real ``graphtrace run`` in another process."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from exporters.reading.follow import Follower
from exporters.reading.records import records_of
from graphtrace.cli.answer_cmd import parse_value
from graphtrace.control.discovery import WaitingGate
from tests.control_support import GATED_GRAPH, Runtime, wait_for_gates
from tests.otlp_builder import (
    MS,
    T0,
    attrs,
    dead_pid,
    document,
    line,
    own_pid_file,
    pending,
    run_spans,
    span,
    writer_file,
)
from viewer import keys
from viewer.gate_prompt import GateBoard, Pick, Problem, pick
from viewer.tail import TailState
from viewer.tail_feed import Feed
from viewer.tail_output import event_json, event_line, event_row, notable
from viewer.tail_records import tail_records

T = "ab" * 16


def records(*spans: dict[str, Any]) -> list[Any]:
    return records_of(line(*spans).encode()).records


def feed(state: TailState, *spans: dict[str, Any]) -> list[Any]:
    return [e for r in records(*spans) if (e := state.apply(r)) is not None]


# -- the state --------------------------------------------------------------------------------


def test_records_become_one_event_each_and_runs_end_with_status_and_error() -> None:
    state = TailState()
    events = feed(state, *run_spans(T, "r1"))
    kinds = [e.kind for e in events]
    assert kinds == [
        "run_start", "span_start", "span_start", "span_end", "span_end", "span_end",
        "span_start", "gate_answered", "span_end", "run_end",
    ]  # fmt: skip
    end = events[-1]
    assert (end.run_id, end.status, end.duration_ns) == ("r1", "completed", 32 * MS)
    assert state.counts() == {"running": 0, "waiting": 0, "done": 1, "failed": 0}

    t2, root, node = "cd" * 16, "1" * 16, "2" * 16
    events = feed(
        state,
        pending(t2, root, "run g", 0, {keys.RUN_ID: "r2", keys.GRAPH: "g"}),
        pending(t2, node, "node A", 1),
        span(t2, node, root, "node A", 1, 5, error="FillError: no valid output"),
        span(t2, root, None, "run g", 0, 6, {keys.RUN_ID: "r2", keys.RUN_STATUS: "failed"},
             error="FillError"),
    )  # fmt: skip
    assert events[2].kind == "span_end" and events[2].error == "FillError: no valid output"
    assert events[3].status == "failed" and events[3].error == "node A: FillError: no valid output"
    line_text = event_line(events[3])
    assert "r2  run    failed  g  6.00 ms  node A: FillError: no valid output" in line_text
    assert state.counts()["failed"] == 1


def test_gates_wait_until_their_end_and_stalls_and_blocked_loops_are_events() -> None:
    state = TailState()
    root, node, gate = "1" * 16, "2" * 16, "3" * 16
    schema = json.dumps({"type": "boolean"})
    events = feed(
        state,
        pending(T, root, "run g", 0, {keys.RUN_ID: "r1", keys.GRAPH: "g"}),
        pending(T, node, "node Escalate", 1),
        pending(T, gate, "gate Escalate.approved", 2,
                {keys.GATE_ID: "Escalate.approved", keys.GATE_PROMPT: "Escalate?",
                 keys.GATE_SCHEMA: schema, keys.GATE_SOCKET: "/tmp/x.sock"}),
        span(T, "4" * 16, node, "stall", 1001, 1001,
             {keys.STALLED_SPAN: "node Escalate", keys.STALL_ELAPSED_S: 1.0,
              keys.STALL_CALL_GRAPH: "coroutine run\n  awaits wait_for_answer()"}),
        pending(T, "5" * 16, "loop.blocked", 1500,
                {keys.LOOP_BLOCKED_S: 1.2, keys.LOOP_STACK: "  File x.py, line 3, in spin"}),
    )  # fmt: skip
    waiting = events[2]
    assert waiting.kind == "gate_waiting" and waiting.gate is not None
    assert (waiting.gate.gate_id, waiting.gate.expected_type) == ("Escalate.approved", "bool")
    assert waiting.gate.socket == Path("/tmp/x.sock")
    assert state.counts() == {"running": 0, "waiting": 1, "done": 0, "failed": 0}
    stall, blocked = events[3], events[4]
    assert stall.kind == "stall" and stall.run_id == "r1"
    text = event_line(stall)
    assert "stall  node Escalate open 1.00 s" in text and "\n      awaits wait_for_answer()" in text
    assert blocked.kind == "loop_blocked" and "in spin" in event_line(blocked)
    assert json.loads(event_json(stall))["call_graph"].endswith("awaits wait_for_answer()")
    # the stall is no span of the run's own: nothing of it stays open
    assert "4" * 16 not in state.model.runs[T].open
    answered = feed(
        state,
        span(T, gate, node, "gate Escalate.approved", 2, 3000,
             {keys.GATE_ID: "Escalate.approved", keys.GATE_ANSWER: "true",
              keys.GATE_ANSWERED_BY: "socket"}),
    )  # fmt: skip
    assert answered[0].kind == "gate_answered" and state.waiting_gates() == []
    assert "answered true (socket) after 3.00 s" in event_line(answered[0])
    # what the screen prints above its prompt
    console = Console(file=io.StringIO(), width=120, color_system=None)
    for event in [*events, *answered]:
        if notable(event):
            console.print(event_row(event))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "? Escalate.approved waits: Escalate? (bool)" in shown
    assert "⚠ stall node Escalate open 1.00 s" in shown
    assert "      awaits wait_for_answer()" in shown  # the call graph, as captured
    assert "⚠ event loop blocked 1.20 s" in shown and "in spin" in shown
    assert "✓ Escalate.approved answered true (socket)" in shown
    assert "node Escalate" not in shown.split("\n")[1]  # span starts stay in the live panel


def test_memory_stays_flat_over_many_runs_and_late_records_are_dropped() -> None:
    state = TailState(keep_ended=5)
    for n in range(300):
        feed(state, *run_spans(f"{n + 1:032x}", f"r{n}", start_ms=n))
    assert len(state.model.runs) == 5
    assert state.counts()["done"] == 300
    assert feed(state, *run_spans(f"{1:032x}", "r0")) == []  # that run is over


def test_a_run_whose_process_is_gone_ends_as_interrupted() -> None:
    state = TailState()
    root = "1" * 16
    path = Path("traces-20260101T000000-h-1-000.jsonl")
    for record in records(pending(T, root, "run g", 0, {keys.RUN_ID: "r1"})):
        state.apply(record, path)
    assert state.open_run_paths() == {T: path}
    event = state.interrupt(T, T0 + 50 * MS)
    assert event is not None and event.status == "interrupted"
    assert state.counts() == {"running": 0, "waiting": 0, "done": 0, "failed": 1}


def test_a_gone_writers_last_lines_are_read_before_its_open_runs_count_as_interrupted(
    tmp_path: Path,
) -> None:
    path = writer_file(tmp_path, 4242)
    root, other = "1" * 16, "2" * 16
    t2 = "cd" * 16
    path.write_text(
        line(pending(T, root, "run g", 0, {keys.RUN_ID: "r1"}))
        + line(pending(t2, other, "run g", 0, {keys.RUN_ID: "r2"}))
    )
    state = TailState()
    events: list[Any] = []
    with Follower(tmp_path, start="start") as follower:
        feed = Feed(follower, state, events.extend, warn=print, sweep_s=0, alive=lambda p: False)
        asyncio.run(feed.step())  # both runs start; their writer is found gone
        assert [e.kind for e in events] == ["run_start", "run_start"]
        # its last line was written before it went, and not read yet: it ends r1
        with open(path, "a") as f:
            f.write(line(span(T, root, None, "run g", 0, 5, {keys.RUN_ID: "r1"})))
        asyncio.run(feed.step())
        assert [(e.run_id, e.status) for e in events[2:]] == [("r1", "completed")]
        asyncio.run(feed.step())  # nothing more of it: r2 never ends
        assert [(e.run_id, e.status) for e in events[3:]] == [("r2", "interrupted")]


def test_after_a_poll_that_found_something_the_next_comes_sooner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = writer_file(tmp_path, os.getpid())
    path.write_text("")
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 1:
            torn = line(pending(T, "1" * 16, "run g", 0, {keys.RUN_ID: "r1"}))[:20]
            path.write_text(torn)
        elif len(delays) == 3:
            raise asyncio.CancelledError

    monkeypatch.setattr("viewer.tail_feed.asyncio.sleep", sleep)
    with Follower(tmp_path) as follower:
        feed = Feed(follower, TailState(), print, warn=print, poll_s=0.5, busy_poll_s=0.01)
        with pytest.raises(asyncio.CancelledError):
            asyncio.run(feed.run())
    # nothing; then part of a line (its writer is busy); then nothing again
    assert delays == [0.5, 0.01, 0.5]


def _fields(record: Any) -> tuple[Any, ...]:
    return (
        record.trace_id, record.span_id, record.parent_id, record.name, record.start_ns,
        record.end_ns, record.attributes, record.status, record.status_message,
        list(record.events), record.pending,
    )  # fmt: skip


def test_tail_reads_every_record_as_the_reader_does() -> None:
    """tail's own decoding (kept lean for its rate) gives the fields ``records_of`` gives, and
    the same errors and counts: ids in other spellings and bad ids, errors with their
    exception events, values that are no strings, a document readable only span by span, and
    ones not readable at all; with ``--run``'s filter and without."""
    root, node = "1" * 16, "2" * 16
    b64_trace = base64.b64encode(bytes.fromhex(T)).decode()
    b64_span = base64.b64encode(bytes.fromhex("ab" * 8)).decode()
    exception = {
        "name": "exception",
        "timeUnixNano": str(T0 + 4 * MS),
        "attributes": [
            {"key": "exception.type", "value": {"stringValue": "FillError"}},
            {"key": "exception.message", "value": {"stringValue": "no valid output"}},
        ],
    }
    values = span(T, "3" * 16, node, "chat x", 1, 2, {"n": 3, "f": 1.5, "b": False})
    values["attributes"] += [
        {"key": "list", "value": {"arrayValue": {"values": [{"intValue": "1"}]}}},
        {"key": "map", "value": {"kvlistValue": {"values": [attrs(k="v")[0]]}}},
        {"key": "none"},
    ]
    bad_own = pending(T, "4" * 16, "dep d", 1)
    bad_own["spanId"] = "not an id"
    no_parent = pending(T, "5" * 16, "dep e", 1)
    del no_parent["parentSpanId"]
    with_parent = pending(T, "6" * 16, "dep f", 1)
    with_parent["attributes"].append(
        {"key": "graphtrace.pending.parent_span_id", "value": {"stringValue": node.upper()}}
    )
    backwards = span(T, "7" * 16, node, "dep g", 5, 3)
    refused = {"traceId": T, "spanId": "a" * 16, "name": 5}  # the typed decoder refuses it
    span_by_span = document(refused, span(T, "b" * 16, None, "ok", 0, 1))
    documents = [
        line(*run_spans(T, "r1")),
        line(pending(T, root, "run g", 0, {keys.RUN_ID: "r1", keys.GRAPH: "g"})),
        line(span(T, node, root, "node A", 1, 5, error="FillError", events=[exception])),
        line(values, bad_own, no_parent, with_parent, backwards),
        line(span(T.upper(), "AB" * 8, None, "upper", 0, 1)),
        line(span(b64_trace, b64_span, None, "base64", 0, 1)),
        line(span("0" * 32, "8" * 16, None, "zero trace", 0, 1)),
        line(span(T, "zz" * 8, None, "bad span", 0, 1), span("cd" * 16, "9" * 16, None, "c", 0, 1)),
        json.dumps(span_by_span),
        "not json",
        '{"resourceMetrics": []}',
        line(span(T, "c" * 16, None, "cut short", 0, 1))[:60],
    ]
    for text in documents:
        data = text.encode()
        for trace_id in (None, T):
            want = records_of(data, trace_id=trace_id)
            got = tail_records(data, trace_id=trace_id)
            assert (got.error, got.bad_spans, got.bad_reason) == (
                want.error,
                want.bad_spans,
                want.bad_reason,
            )
            assert [_fields(r) for r in got.records] == [_fields(r) for r in want.records]


# -- picking the gate a typed line answers ----------------------------------------------------


def gate(run: str, gate_id: str, started: int, schema: dict[str, Any] | None = None) -> WaitingGate:
    return WaitingGate(
        run, run * 4, "g", gate_id, "?", schema or {"type": "boolean"}, None, started
    )


def test_one_gate_takes_the_whole_line_and_several_are_picked_by_number_or_id() -> None:
    board = GateBoard()
    a = gate("r1", "Escalate.approved", 1, {"type": "integer", "default": 3})
    one = board.number([a])
    assert pick("true", one, parse_value) == Pick(a, True)
    assert pick("two words", one, parse_value) == Pick(a, "two words")
    assert pick("", one, parse_value) == Pick(a, 3)  # the schema's default
    assert pick("1 5", one, parse_value) == Pick(a, 5)
    b, c = gate("r2", "Escalate.approved", 2), gate("r2", "Note.text", 3)
    several = board.number([a, b, c])
    assert [n for n, _ in several] == [1, 2, 3]
    assert pick("2 false", several, parse_value) == Pick(b, False)
    assert pick("Note.text hello there", several, parse_value) == Pick(c, "hello there")
    problem = pick("Escalate.approved true", several, parse_value)
    assert isinstance(problem, Problem) and "pick one by its number" in problem.message
    assert isinstance(pick("true", several, parse_value), Problem)
    # a number stays with its gate and is never given to another one
    d = gate("r3", "Other.x", 4)
    assert board.number([c, d]) == [(3, c), (4, d)]
    assert isinstance(pick("", board.number([]), parse_value), Problem)


# -- line and JSON modes against a scripted trace dir -----------------------------------------


class Tail:
    """``graphtrace tail`` in a subprocess whose stdout is a pipe, read by a thread."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graphtrace", "tail", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "GRAPHTRACE_DIR": ""},
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.errors), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for text in stream:
            into.append(text.rstrip("\n"))

    def wait_for(
        self, predicate: Callable[[list[str]], bool], what: str, *, stderr: bool = False
    ) -> list[str]:
        deadline = time.monotonic() + 15
        lines = self.errors if stderr else self.lines
        while not predicate(list(lines)):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(
                    f"{what}: not seen in\n"
                    + "\n".join(self.lines)
                    + "\n--\n"
                    + "\n".join(self.errors)
                )
            time.sleep(0.02)
        return list(lines)

    def ready(self) -> None:
        self.wait_for(lambda ls: any("following" in x for x in ls), "ready", stderr=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=5)


def has(text: str) -> Callable[[list[str]], bool]:
    return lambda lines: any(text in x for x in lines)


def test_line_mode_follows_new_lines_rotation_new_writers_and_torn_lines(tmp_path: Path) -> None:
    traces = tmp_path / "tr"
    first = own_pid_file(traces)  # this process: a writer that is alive
    rotated = first.with_name(first.name.replace("-000.jsonl", "-001.jsonl"))
    root, node = "1" * 16, "2" * 16
    old = "ee" * 16
    first.write_text(
        "".join(line(s) for s in run_spans(old, "finished1"))  # over before tail started
        + line(pending(T, root, "run g", 0, {keys.RUN_ID: "open1", keys.GRAPH: "g"}))
        + line(pending(T, node, "node A", 1))
    )
    tail = Tail(tmp_path, "--trace-dir", "tr")
    try:
        tail.ready()
        # what is open now is shown first; what ended before is not
        lines = tail.wait_for(has("start  node A"), "the open run's snapshot")
        assert any("open1  run    started  g" in x for x in lines)
        assert not any("finished1" in x for x in lines)
        with open(first, "a") as f:
            f.write(line(span(T, node, root, "node A", 1, 11)))
        tail.wait_for(has("open1  end    node A  10.0 ms  ok"), "an appended end")
        # the writer rotates: its next file is read from the start
        rotated.write_text(line(pending(T, "3" * 16, "node B", 12)))
        tail.wait_for(has("open1  start  node B"), "the rotated file")
        # a torn line: the first half now, the rest later; a second writer shows its run meanwhile
        torn = line(span(T, "3" * 16, root, "node B", 12, 20))
        with open(rotated, "a") as f:
            f.write(torn[:25])
        other = "77" * 16
        writer_file(traces, dead_pid()).write_text(
            "".join(line(s) for s in run_spans(other, "second1", start_ms=5))
        )
        tail.wait_for(has("second1  run    completed  g"), "a new writer's run")
        with open(rotated, "a") as f:
            f.write(torn[25:])
        tail.wait_for(has("open1  end    node B  8.00 ms  ok"), "the completed torn line")
        assert not any("skipping" in x for x in tail.errors)
    finally:
        tail.stop()


def test_json_mode_one_object_per_event_and_run_stops_when_that_run_ends(tmp_path: Path) -> None:
    traces = tmp_path / "tr"
    path = own_pid_file(traces)
    root, node = "1" * 16, "2" * 16
    path.write_text(line(pending(T, root, "run g", 0, {keys.RUN_ID: "r1", keys.GRAPH: "g"})))
    tail = Tail(tmp_path, "--trace-dir", "tr", "--json", "--run", "r1")
    try:
        tail.ready()
        with open(path, "a") as f:
            f.write(line(pending("99" * 16, "9" * 16, "run g", 0, {keys.RUN_ID: "other"})))
            f.write(line(pending(T, node, "node A", 1)))
            f.write(line(span(T, node, root, "node A", 1, 3, error="boom")))
            end = {keys.RUN_ID: "r1", keys.RUN_STATUS: "failed"}
            f.write(line(span(T, root, None, "run g", 0, 4, end, error="boom")))
        assert tail.proc.wait(timeout=15) == 1  # the run it followed failed
        tail.stop()
        events = [json.loads(x) for x in tail.lines]
        assert [e["event"] for e in events] == ["run_start", "span_start", "span_end", "run_end"]
        assert {e["run_id"] for e in events} == {"r1"}  # the other run is not followed
        end = events[-1]
        assert end["status"] == "failed" and end["duration_ms"] == 4.0
        assert end["error"] == "node A: boom" and end["time"].endswith("Z")
        assert events[2]["error"] == "boom" and events[2]["name"] == "node A"
    finally:
        tail.stop()


def test_from_start_reads_finished_runs_and_an_unknown_run_is_a_clear_error(
    tmp_path: Path,
) -> None:
    traces = tmp_path / "tr"
    writer_file(traces, dead_pid()).write_text("".join(line(s) for s in run_spans(T, "done1")))
    out = subprocess.run(
        [sys.executable, "-m", "graphtrace", "tail", "--trace-dir", "tr", "--from-start",
         "--run", "done1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].endswith("done1  run    completed  g  32.0 ms")
    out = subprocess.run(
        [sys.executable, "-m", "graphtrace", "tail", "--trace-dir", "tr", "--run", "nope"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and out.stderr.startswith("graphtrace: error: no run matches 'nope'")


# -- the real thing in a terminal -------------------------------------------------------------


class Tmux:
    """A tmux server of our own with one window running a command."""

    def __init__(self, tmp_path: Path, command: str, cwd: Path) -> None:
        self.socket = str(tmp_path / "tmux.sock")
        self._tmux("new-session", "-d", "-x", "130", "-y", "40", "-c", str(cwd), command)

    def _tmux(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        return out.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-S", "-200")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", *keys)

    def wait_for(self, text: str, *, after: str = "", timeout: float = 20) -> str:
        """The screen once ``text`` is on it (below the last ``after``, when given)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen.split(after)[-1] if after else text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on the screen:\n{screen}")
            time.sleep(0.05)

    def close(self) -> None:
        self._tmux("kill-server")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")
def test_tail_in_a_terminal_answers_the_gates_of_a_run_in_another_process(tmp_path: Path) -> None:
    (tmp_path / "gated.py").write_text(GATED_GRAPH)
    runtime = Runtime(tmp_path, "gated.py:graph", "--trace-dir", "tr")
    done = tmp_path / "tail.exit"
    screen: Tmux | None = None
    try:
        (waiting,) = wait_for_gates(tmp_path / "tr", 1)
        run_id = waiting.run_id
        command = f"{sys.executable} -m graphtrace tail --trace-dir tr; echo $? > {done}; sleep 60"
        screen = Tmux(tmp_path, command, tmp_path)
        # the gate that waited before tail started is offered at once
        screen.wait_for("Review.approved — Approve the refund? (bool)")
        screen.wait_for("answer ›")
        screen.keys("maybe", "Enter")
        screen.wait_for("✗ refused for Review.approved")  # not a bool: refused
        screen.wait_for("Review.approved — Approve the refund?", after="✗ refused")  # still open
        screen.keys("true", "Enter")
        screen.wait_for(f"✓ Review.approved of run {run_id}: accepted true")
        # the run resumes and waits at two gates at once, numbered
        screen.wait_for("Note.priority — Priority? (int)")
        screen.wait_for("answer with its number or gate id first")
        # one is answered from another process: it leaves the prompt, the other stays
        out = subprocess.run(
            [sys.executable, "-m", "graphtrace", "answer", run_id, "Note.priority", "5",
             "--trace-dir", "tr"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        screen.wait_for("type the answer, Enter", after="Note.priority answered 5")
        assert "Note.priority —" not in screen.screen().split("Note.priority answered 5")[-1]
        screen.keys("Note.text all good", "Enter")  # picked by its id
        screen.wait_for(f'Note.text of run {run_id}: accepted "all good"')
        screen.wait_for("gated completed after")  # the run's end is shown
        assert runtime.wait(timeout=30) == 0
        screen.keys("C-d")
        deadline = time.monotonic() + 15
        while not done.exists() or not done.read_text().strip():
            assert time.monotonic() < deadline, screen.screen()
            time.sleep(0.05)
        assert done.read_text().strip() == "0"
    finally:
        if screen is not None:
            screen.close()
        runtime.stop()
