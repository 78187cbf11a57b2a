"""The real `graphtrace` command in a subprocess: the demo, Mermaid, and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.otlp_validator import attributes, read_spans


def graphtrace(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphtrace", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "GRAPHTRACE_DIR": "", **(env or {})},
    )


def test_demo_runs_unattended_and_writes_valid_traces(tmp_path: Path) -> None:
    out = graphtrace(
        "run",
        "graphtrace.demo:graph",
        "--auto-answer",
        "--runs",
        "4",
        "--trace-dir",
        "tr",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = [
        line for line in out.stdout.splitlines() if " completed " in line and "run(s)" not in line
    ]
    assert len(lines) == 4
    run_ids = {line.split()[0] for line in lines}
    spans = read_spans(tmp_path / "tr")
    roots = [
        s
        for s in spans
        if s["name"] == "run support-triage" and not attributes(s).get("graphtrace.pending")
    ]
    assert {attributes(r)["graphtrace.run.id"] for r in roots} == run_ids
    assert all(attributes(r)["graphtrace.run.status"] == "completed" for r in roots)
    (where,) = [
        line.split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("traces: ")
    ]
    assert (tmp_path / where).is_file() and (tmp_path / where).parent == tmp_path / "tr"


def test_trace_dir_defaults_to_env_then_dot_graphtrace(tmp_path: Path) -> None:
    out = graphtrace(
        "run",
        "graphtrace.demo:graph",
        "--auto-answer",
        cwd=tmp_path,
        env={"GRAPHTRACE_DIR": str(tmp_path / "from-env")},
    )
    assert out.returncode == 0, out.stderr
    assert list((tmp_path / "from-env").glob("*.jsonl"))
    out = graphtrace("run", "graphtrace.demo:graph", "--auto-answer", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert list((tmp_path / ".graphtrace").glob("*.jsonl"))


def test_inputs_from_the_command_line(tmp_path: Path) -> None:
    out = graphtrace(
        "run",
        "graphtrace.demo:graph",
        "--auto-answer",
        "-i",
        "customer=c-7",
        "-i",
        "ticket=App crashes on login",
        "--trace-dir",
        "tr",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    (triage,) = [
        s
        for s in read_spans(tmp_path / "tr")
        if s["name"] == "node Triage" and not attributes(s).get("graphtrace.pending")
    ]
    state = attributes(triage)["graphtrace.node.state"]
    assert '"customer":"c-7"' in state and "App crashes on login" in state


def test_graph_prints_mermaid(tmp_path: Path) -> None:
    out = graphtrace("graph", "graphtrace.demo:graph", cwd=tmp_path)
    assert out.returncode == 0
    assert out.stdout.startswith("flowchart TD")
    assert "Triage -->|LM| Escalate" in out.stdout


BAD_TARGETS = {
    "missing_module": ("no_such_module_xyz:graph", "no module named 'no_such_module_xyz'"),
    "not_a_graph": ("graphtrace.demo:Triage", "is a ModelMetaclass, not a graphtrace.Graph"),
    "missing_attr": ("graphtrace.demo:nope", "graphtrace.demo has no attribute 'nope'"),
    "missing_file": ("nowhere/graph.py:graph", "no such file: nowhere/graph.py"),
}


@pytest.mark.parametrize("case", sorted(BAD_TARGETS))
def test_bad_targets_give_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    target, message = BAD_TARGETS[case]
    out = graphtrace("run", target, "--trace-dir", "tr", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr


def test_module_that_fails_to_import(tmp_path: Path) -> None:
    (tmp_path / "broken_graph.py").write_text("import json\nraise RuntimeError('db is down')\n")
    out = graphtrace("graph", "broken_graph:graph", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "graphtrace: error: importing broken_graph failed: RuntimeError: db is down"
    )
    debug = graphtrace("graph", "broken_graph:graph", "--debug", cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["-i", "ticket"], "bad -i value 'ticket': expected KEY=VALUE"),
        (["-i", "colour=red"], "unknown input(s) 'colour' for Triage"),
        (["-i", "profile={}"], "Triage.profile is a dep field"),
        (["-i", "customer=[1, 2]"], "input 'customer' of Triage"),
        (["--lm", "gpt"], "--lm: unknown LM spec 'gpt': use 'fake', 'fake:SEED' or 'openai:MODEL'"),
    ],
)
def test_bad_inputs(tmp_path: Path, args: list[str], message: str) -> None:
    out = graphtrace("run", "graphtrace.demo:graph", *args, "--trace-dir", "tr", cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr and out.stderr.count("\n") == 1, out.stderr


def test_trace_dir_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    out = graphtrace(
        "run",
        "graphtrace.demo:graph",
        "--auto-answer",
        "--trace-dir",
        str(tmp_path / "a-file" / "traces"),
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("graphtrace: error: ") and out.stderr.count("\n") == 1
    assert "a-file" in out.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_trace_dir_that_cannot_be_written(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    out = graphtrace(
        "run", "graphtrace.demo:graph", "--auto-answer", "--trace-dir", str(ro), cwd=tmp_path
    )
    assert out.returncode == 2 and "ro" in out.stderr
