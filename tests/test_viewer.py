"""The viewer's outputs against golden files, the critical path, folding, replay and the CLI.

Golden files live in tests/golden/; regenerate them with GRAPHTRACE_UPDATE_GOLDEN=1 after a
deliberate change, and read the diff before committing it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from exporters.reading.assemble import RunTrace
from exporters.reading.otlp_out import otlp_document
from exporters.reading.source import TraceSource
from tests.otlp_builder import MS, dead_pid, line, pending, run_spans, span, writer_file
from tests.test_cli import graphtrace as run_cli
from viewer import keys
from viewer.chrome import chrome_trace
from viewer.critical import critical_path
from viewer.fold import Folded, visible_children
from viewer.live import LiveModel, render_live
from viewer.replay import replay, replay_events
from viewer.runlist import runs_json, runs_table
from viewer.show import render_run
from viewer.tree_json import tree_json

GOLDEN = Path(__file__).parent / "golden"
DEMO = GOLDEN / "demo-traces.jsonl"
UPDATE = bool(os.environ.get("GRAPHTRACE_UPDATE_GOLDEN"))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    text = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def rendered(renderable: Any, width: int = 150) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False).print(renderable)
    return out.getvalue()


@pytest.fixture
def demo(tmp_path: Path) -> TraceSource:
    source = TraceSource(tmp_path, [DEMO])
    yield source  # type: ignore[misc]
    source.close()


def test_show_tree_text_and_json_match_golden_files(demo: TraceSource) -> None:
    trace = demo.load(demo.resolve("last"))
    check_golden("show-last.txt", rendered(render_run(trace)))
    check_golden("show-last.json", json.dumps(tree_json(trace), indent=2, ensure_ascii=False))


def test_ls_json_and_table_match_golden_files(demo: TraceSource, monkeypatch: Any) -> None:
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    runs = demo.runs()
    check_golden("ls.json", json.dumps(runs_json(runs), indent=2))
    check_golden("ls.txt", rendered(runs_table(runs, demo.count(), "demo-traces.jsonl")))
    for run in runs_json(runs):
        assert set(run) >= {"run_id", "trace_id", "graph", "status", "start", "duration_ms"}


def test_chrome_export_matches_golden_and_nests_on_each_lane(demo: TraceSource) -> None:
    trace = demo.load(demo.resolve("last"))
    document = chrome_trace(trace)
    check_golden("export-last.chrome.json", json.dumps(document, indent=1))
    complete = [e for e in document["traceEvents"] if e["ph"] == "X"]
    assert len(complete) == len(trace.spans)
    by_lane: dict[int, list[dict[str, Any]]] = {}
    for event in complete:
        by_lane.setdefault(event["tid"], []).append(event)
    for events in by_lane.values():  # on one lane, events are nested or disjoint
        for a in events:
            for b in events:
                a_end, b_end = a["ts"] + a["dur"], b["ts"] + b["dur"]
                overlap = a["ts"] < b["ts"] < a_end < b_end
                assert not overlap, (a["name"], b["name"])


def test_otlp_export_reads_back_as_the_same_tree(demo: TraceSource, tmp_path: Path) -> None:
    trace = demo.load(demo.resolve("last"))
    exported = tmp_path / "run.json"
    exported.write_text(json.dumps(otlp_document(trace)))
    with TraceSource(tmp_path, [exported]) as again:
        (run,) = again.runs()
        assert run.run_id == trace.run_id
        assert tree_json(again.load(run)) == tree_json(trace)


def synthetic(tmp_path: Path, spans: list[dict[str, Any]]) -> RunTrace:
    path = writer_file(tmp_path / "t", dead_pid())
    path.write_text(line(*spans))
    with TraceSource(tmp_path / "t") as source:
        return source.load(source.resolve("last"))


T = "7" * 32


def test_critical_path_follows_what_the_end_waited_for(tmp_path: Path) -> None:
    root, a, b, c, d = ("1" * 16, "2" * 16, "3" * 16, "4" * 16, "5" * 16)
    trace = synthetic(
        tmp_path,
        [
            span(T, root, None, "run g", 0, 100, {keys.RUN_ID: "r1"}),
            span(T, a, root, "dep short", 0, 10),
            span(T, b, root, "dep long", 0, 60),  # the last node waited for it...
            span(T, c, root, "dep overlap", 20, 50),  # ...not for these, done while it ran
            span(T, d, root, "node last", 60, 100),
        ],
    )
    names = {s.name for s in trace.root.walk() if id(s) in critical_path(trace.root)}
    assert names == {"run g", "node last", "dep long"}


def test_long_runs_of_similar_siblings_fold_into_one_row(tmp_path: Path) -> None:
    root = "1" * 16
    deps = [
        span(T, f"{i + 2:016x}", root, "dep fetch", i, i + (50 if i == 20 else 1))
        for i in range(40)
    ]
    trace = synthetic(tmp_path, [span(T, root, None, "run g", 0, 100, {keys.RUN_ID: "r1"}), *deps])
    visible = visible_children(trace.root, critical_path(trace.root))
    folds = [v for v in visible if isinstance(v, Folded)]
    assert len(folds) == 1 and folds[0].count == 40 - (len(visible) - 1)
    shown = [v for v in visible if not isinstance(v, Folded)]
    assert any(s.duration_ns == 50 * MS for s in shown)  # the slowest stays visible
    assert folds[0].total_ns == sum(s.duration_ns for s in trace.root.children) - sum(
        s.duration_ns for s in shown
    )
    text = rendered(render_run(trace))
    assert f"… {folds[0].count} more dep fetch" in text


def test_replay_plays_spans_in_recorded_order_on_a_scaled_clock(tmp_path: Path) -> None:
    trace = synthetic(tmp_path, run_spans(T, "run000000001"))
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    model = replay(trace, console, speed=2.0, sleep=sleep, clock=lambda: now[0])
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("start  run g") and lines[-2].endswith("end    run g  32.0 ms  ok")
    assert len(lines) == 2 * len(trace.spans) + 1
    assert now[0] == pytest.approx(0.016, abs=1e-6)  # 32 ms recorded, played at ×2
    assert model.counts() == {"running": 0, "waiting": 0, "done": 1, "failed": 0}
    starts = [e.span.name for e in replay_events(trace) if e.starts]
    assert starts[:2] == ["run g", "node A"]


def test_live_model_shows_open_spans_and_waiting_gates(tmp_path: Path) -> None:
    model = LiveModel()
    model.started(T, "1" * 16, None, "run g", 0, {keys.RUN_ID: "r1", keys.GRAPH: "g"})
    model.started(T, "2" * 16, "1" * 16, "node A", 1 * MS, {keys.NODE_STEP: 1})
    model.started(
        T,
        "3" * 16,
        "2" * 16,
        "gate A.ok",
        2 * MS,
        {keys.GATE_ID: "A.ok", keys.GATE_PROMPT: "Ship?"},
    )
    text = rendered(render_live(model, 1_500 * MS))
    assert "r1 g" in text and "at A" in text and "gate A.ok" in text and "waiting: Ship?" in text
    assert "running 0 · waiting 1 · done 0 · failed 0" in text
    model.ended(T, "3" * 16, 3 * MS)
    model.ended(T, "2" * 16, 4 * MS, status="error", status_message="boom")
    model.ended(T, "1" * 16, 5 * MS, status="error", attributes={keys.RUN_STATUS: "failed"})
    assert model.counts()["failed"] == 1 and model.runs[T].error == "node A: boom"


def test_viewer_keys_match_the_tracing_contract() -> None:
    from tracing import names

    for key in (
        "RUN_ID", "GRAPH", "RUN_STATUS", "NODE_STEP", "DEP_CACHED", "GATE_ID", "GATE_PROMPT",
        "GATE_ANSWER", "GATE_WAIT_MS", "GATE_ANSWERED_BY", "STALL_SPAN_NAME", "STALL_ELAPSED_S",
        "STALL_CALL_GRAPH", "LOOP_BLOCKED_SPAN_NAME", "LOOP_BLOCKED_S", "LOOP_STACK",
    ):  # fmt: skip
        assert getattr(keys, key) == getattr(names, key), key


def test_stall_snapshot_is_shown_with_its_call_graph(tmp_path: Path) -> None:
    root, dep = "1" * 16, "2" * 16
    graph = "coroutine dep fetch\n  awaits helper()\n    awaits Event.wait()"
    trace = synthetic(
        tmp_path,
        [
            pending(T, root, "run g", 0, {keys.RUN_ID: "r1"}),
            pending(T, dep, "dep fetch", 1),
            span(T, "3" * 16, dep, "stall", 2001, 2001,
                 {keys.STALL_ELAPSED_S: 2.0, keys.STALL_CALL_GRAPH: graph}),
        ],
    )  # fmt: skip
    text = rendered(render_run(trace))
    assert "⚠ stall" in text and "stalled 2.00 s" in text
    assert "awaits helper()" in text and "awaits Event.wait()" in text
    assert "interrupted" in text


def graphtrace(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env={"COLUMNS": "150"})


def test_cli_show_ls_export_and_clear_errors(tmp_path: Path) -> None:
    shutil.copy(DEMO, tmp_path / "demo.jsonl")
    out = graphtrace("ls", "--json", "--trace-dir", ".", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [r["run_id"] for r in json.loads(out.stdout)] == [
        r["run_id"] for r in json.loads((GOLDEN / "ls.json").read_text())
    ]
    out = graphtrace("show", "last", "--trace-dir", ".", "--svg", "t.svg", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "critical path" in out.stdout and (tmp_path / "t.svg").read_text().startswith("<svg")
    out = graphtrace("show", "nope", "--trace-dir", ".", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("graphtrace: error: no run matches 'nope'")
    assert "Traceback" not in out.stderr
    out = graphtrace("ls", "--status", "weird", "--trace-dir", ".", cwd=tmp_path)
    assert out.returncode == 2 and "unknown status 'weird'" in out.stderr
    out = graphtrace("export", "last", "--format", "otlp", "--file", "demo.jsonl", cwd=tmp_path)
    assert out.returncode == 0 and json.loads(out.stdout)["resourceSpans"]
