"""Integration with a real backend: Arize Phoenix, from PyPI, on loopback.

Phoenix takes OTLP/HTTP at ``/v1/traces``, files spans under the project named by the resource
attribute ``openinference.project.name`` and gives them back through its REST API. It stores
what it receives asynchronously, so the tests poll it. When Phoenix cannot be installed the
tests are skipped, saying why (tests/phoenix_server.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.forward_support import KINDS, final_spans, kind_of, push, run_graph
from tests.otlp_receiver import free_port
from tests.otlp_validator import attributes
from tests.phoenix_server import PhoenixServer, install_phoenix


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    executable = install_phoenix()
    server = PhoenixServer.start(executable, tmp_path_factory.mktemp("phoenix"))
    try:
        yield server
    finally:
        server.stop()


def project_env(project: str) -> dict[str, str]:
    return {"OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}"}


def assert_same_tree(stored: list[dict[str, Any]], written: list[dict[str, Any]]) -> None:
    """Phoenix holds exactly the written spans, each under the same parent."""
    by_id = {s["context"]["span_id"]: s for s in stored}
    assert sorted(by_id) == sorted(s["spanId"] for s in written)
    assert len(stored) == len(written)
    for span in written:
        got = by_id[span["spanId"]]
        assert got["name"] == span["name"]
        assert got["context"]["trace_id"] == span["traceId"]
        assert (got.get("parent_id") or "") == span.get("parentSpanId", "")


def test_a_run_forwarded_live_arrives_whole(tmp_path: Path, phoenix: PhoenixServer) -> None:
    project = f"graphtrace-live-{uuid.uuid4().hex[:8]}"
    out = run_graph(tmp_path, phoenix.url, runs=2, env=project_env(project))
    assert out.returncode == 0, out.stderr
    written = final_spans(tmp_path / "tr")
    assert f"forwarded {len(written)} span(s) to {phoenix.url}/v1/traces" in out.stdout
    stored = phoenix.wait_for_spans(project, lambda spans: len(spans) >= len(written))
    assert_same_tree(stored, written)
    assert {kind_of(s["name"]) for s in stored} == set(KINDS)

    by_id = {s["context"]["span_id"]: s for s in stored}
    for span in written:
        if span["name"].startswith("chat "):
            mine, theirs = attributes(span), by_id[span["spanId"]]["attributes"]
            gen_ai = {k: v for k, v in mine.items() if k.startswith("gen_ai.")}
            assert {"gen_ai.operation.name", "gen_ai.usage.input_tokens"} <= gen_ai.keys()
            for key, value in gen_ai.items():
                assert theirs[key] == value, key
        if span["name"].startswith("run "):
            run = by_id[span["spanId"]]
            assert run["attributes"]["graphtrace.run.status"] == "completed"
            assert run["parent_id"] is None
        if span["name"].startswith("gate "):
            gate = by_id[span["spanId"]]["attributes"]
            assert gate["graphtrace.gate.answer"] == attributes(span)["graphtrace.gate.answer"]


def test_endpoint_down_during_the_run_then_push_delivers_it(
    tmp_path: Path, phoenix: PhoenixServer
) -> None:
    project = f"graphtrace-push-{uuid.uuid4().hex[:8]}"
    dead = f"http://127.0.0.1:{free_port()}"
    out = run_graph(tmp_path, dead, runs=3, env=project_env(project))
    assert out.returncode == 0, out.stderr  # the runs completed
    written = final_spans(tmp_path / "tr")
    runs = [s for s in written if s["name"].startswith("run ")]
    assert [attributes(r)["graphtrace.run.status"] for r in runs] == ["completed"] * 3
    assert f"{len(written)} span(s) could not be forwarded to {dead}/v1/traces" in out.stdout

    pushed = push(tmp_path, "--all", endpoint=phoenix.url)
    assert pushed.returncode == 0, pushed.stderr
    assert f"pushed 3 run(s), {len(written)} span(s)" in pushed.stdout
    stored = phoenix.wait_for_spans(project, lambda spans: len(spans) >= len(written))
    assert_same_tree(stored, written)

    again = push(tmp_path, "--all", endpoint=phoenix.url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already pushed") == 3
    assert "pushed 0 run(s), 0 span(s)" in again.stdout
