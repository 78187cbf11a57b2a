"""What the forwarding tests share: running tests/forward_graph.py and reading what it wrote."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.otlp_validator import attributes, read_spans
from tests.test_cli import graphtrace

GRAPH_FILE = str(Path(__file__).with_name("forward_graph.py")) + ":graph"
KINDS = ("run ", "node ", "dep ", "chat ", "gate ")  # every run of that graph has each


def run_graph(
    cwd: Path, endpoint: str, runs: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``graphtrace run`` of the forward graph into ``cwd/tr``, forwarding to ``endpoint``."""
    args = ["--runs", str(runs), "--auto-answer", "--trace-dir", "tr", "--otlp-endpoint", endpoint]
    return graphtrace("run", GRAPH_FILE, *args, cwd=cwd, env=env)


def final_spans(trace_dir: Path) -> list[dict[str, Any]]:
    """The spans a backend should get: the file's final spans, without pending records and
    ``forward.lost`` records."""
    return [
        s
        for s in read_spans(trace_dir)
        if not attributes(s).get("graphtrace.pending") and s["name"] != "forward.lost"
    ]


def kind_of(name: str) -> str:
    return next(k for k in KINDS if name.startswith(k))


def push(
    cwd: Path, *args: str, endpoint: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``graphtrace push ARGS --endpoint ENDPOINT`` of the runs in ``cwd/tr``."""
    return graphtrace("push", *args, "--endpoint", endpoint, "--trace-dir", "tr", cwd=cwd, env=env)
