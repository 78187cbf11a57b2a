"""`graphtrace run` at scale: --inputs, the caps and timeout flags, Ctrl-C and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.otlp_validator import attributes, read_spans
from tests.test_cli import graphtrace

SLOW_GRAPH = """
import asyncio
from typing import Annotated
from graphtrace import Dep, Graph, Node

async def wait_long(label: str) -> str:
    await asyncio.sleep(3600)
    return label

class Slow(Node):
    label: str = "x"
    value: Annotated[str, Dep(wait_long)]
    async def __call__(self) -> None: ...

graph = Graph(start=Slow)
"""


def test_inputs_file_one_run_per_line_bad_lines_fail_alone(tmp_path: Path) -> None:
    lines = [
        json.dumps({"customer": "c-1"}),
        "{not json",
        json.dumps({"customer": "c-2", "colour": "red"}),
        json.dumps(["not", "an", "object"]),
        "",
        json.dumps({"customer": "c-3", "ticket": "Login loops"}),
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    out = graphtrace(
        "run",
        "graphtrace.demo:graph",
        "--inputs",
        "in.jsonl",
        "--auto-answer",
        "--max-runs",
        "2",
        "--max-lm-calls",
        "1",
        "--trace-dir",
        "tr",
        cwd=tmp_path,
    )
    assert out.returncode == 1, out.stderr
    assert "in.jsonl:2: not JSON" in out.stdout
    assert "in.jsonl:3: unknown input(s) 'colour'" in out.stdout
    assert "in.jsonl:4: expected a JSON object, got list" in out.stdout
    roots = [
        s
        for s in read_spans(tmp_path / "tr")
        if s["name"] == "run support-triage" and not attributes(s).get("graphtrace.pending")
    ]
    assert len(roots) == 2
    customers = set()
    for s in read_spans(tmp_path / "tr"):
        if s["name"] == "node Triage" and not attributes(s).get("graphtrace.pending"):
            customers.add(json.loads(attributes(s)["graphtrace.node.state"])["customer"])
    assert customers == {"c-1", "c-3"}


def test_timeout_flag_times_runs_out(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW_GRAPH)
    out = graphtrace(
        "run", "slow.py:graph", "--runs", "3", "--timeout", "0.2", "--trace-dir", "tr", cwd=tmp_path
    )
    assert out.returncode == 1
    assert out.stdout.count("timed_out") >= 3
    roots = [
        s
        for s in read_spans(tmp_path / "tr")
        if s["name"] == "run Slow" and not attributes(s).get("graphtrace.pending")
    ]
    assert [attributes(r)["graphtrace.run.status"] for r in roots] == ["timed_out"] * 3


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_cancels_runs_and_flushes(tmp_path: Path, sig: int, code: int) -> None:
    (tmp_path / "slow.py").write_text(SLOW_GRAPH)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "graphtrace",
            "run",
            "slow.py:graph",
            "--runs",
            "5",
            "--max-runs",
            "3",
            "--trace-dir",
            "tr",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a process still going long after the signal prints every thread's stack on SIGABRT
        env={**os.environ, "GRAPHTRACE_DIR": "", "PYTHONFAULTHANDLER": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        open_deps = 0
        while time.monotonic() < deadline and open_deps < 3:
            time.sleep(0.05)
            if list((tmp_path / "tr").glob("*.jsonl")):
                spans = read_spans(tmp_path / "tr", allow_torn_tail=True)
                open_deps = sum(1 for s in spans if s["name"] == "dep wait_long")
        assert open_deps == 3, "three runs should be waiting in their dep"
        proc.send_signal(sig)
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            stdout, stderr = proc.communicate(timeout=10)
            pytest.fail(f"graphtrace run was still going 30 s after the signal:\n{stderr[-6000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, stderr
    assert "interrupted" in stdout
    finished = [
        s for s in read_spans(tmp_path / "tr") if not attributes(s).get("graphtrace.pending")
    ]
    roots = [s for s in finished if s["name"] == "run Slow"]
    assert len(roots) == 3, "the two queued runs never started"
    assert {attributes(r)["graphtrace.run.status"] for r in roots} == {"cancelled"}
    deps = [s for s in finished if s["name"] == "dep wait_long"]
    assert len(deps) == 3 and all(d["status"] == {"code": 2, "message": "cancelled"} for d in deps)


STUCK_GRAPH = """
import asyncio
from typing import Annotated
from graphtrace import Dep, Graph, Node

async def waits_forever() -> int:
    await asyncio.Event().wait()
    return 1

class Stuck(Node):
    value: Annotated[int, Dep(waits_forever)]
    async def __call__(self) -> None: ...

graph = Graph(start=Stuck)
"""


def test_stall_after_flag_writes_stall_snapshots(tmp_path: Path) -> None:
    (tmp_path / "stuck.py").write_text(STUCK_GRAPH)
    out = graphtrace(
        "run",
        "stuck.py:graph",
        "--stall-after",
        "0.2",
        "--timeout",
        "1",
        "--trace-dir",
        "tr",
        cwd=tmp_path,
    )
    assert out.returncode == 1
    spans = read_spans(tmp_path / "tr")
    by_id = {s["spanId"]: s for s in spans}
    stalls = [s for s in spans if s["name"] == "stall"]
    assert stalls, "no stall record for a dep open for a second with --stall-after 0.2"
    # one threshold for every kind: the dep and the node around it both stall
    assert {by_id[s["parentSpanId"]]["name"] for s in stalls} == {"dep waits_forever", "node Stuck"}
    assert all("waits_forever" in attributes(s)["graphtrace.stall.call_graph"] for s in stalls)
    bad = graphtrace(
        "run", "stuck.py:graph", "--stall-after", "0", "--trace-dir", "tr", cwd=tmp_path
    )
    assert bad.returncode == 2 and "--stall-after" in bad.stderr
