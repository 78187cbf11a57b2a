"""The sidecar index: incremental growth, torn lines, rebuilds, and naming a run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from exporters.reading.errors import AmbiguousRun, RunNotFound
from exporters.reading.source import INDEX_PATH, TraceSource
from tests.otlp_builder import dead_pid, line, run_spans, writer_file
from viewer.runlist import runs_json


def trace(n: int) -> str:
    return f"{n:08x}" + "ab" * 12


def listing(directory: Path) -> list[dict[str, object]]:
    with TraceSource(directory) as source:
        return runs_json(source.runs())


def test_index_is_rebuilt_after_deletion_with_the_same_answers(tmp_path: Path) -> None:
    path = writer_file(tmp_path, dead_pid())
    path.write_text(
        "".join(line(*run_spans(trace(i), f"run{i:09d}", start_ms=i * 100)) for i in range(5))
    )
    before = listing(tmp_path)
    assert (tmp_path / INDEX_PATH).is_file()
    assert [r["run_id"] for r in before] == [f"run{i:09d}" for i in reversed(range(5))]
    shutil.rmtree(tmp_path / ".index")
    assert listing(tmp_path) == before
    (tmp_path / INDEX_PATH).write_bytes(b"garbage, not a database")
    assert listing(tmp_path) == before


def test_growing_file_is_indexed_incrementally_and_a_torn_line_once_completed(
    tmp_path: Path,
) -> None:
    path = writer_file(tmp_path, dead_pid())
    first = run_spans(trace(1), "run000000001")
    path.write_text(line(*first[:4]))  # the run has started: pending records, one dep done
    with TraceSource(tmp_path) as source:
        (run,) = source.runs()
        assert (run.status, run.row.spans) == ("interrupted", 3)
    rest = line(*first[4:])
    with open(path, "a") as f:
        f.write(rest[:40])  # torn: the writer is in the middle of its line
    with TraceSource(tmp_path) as source:
        (run,) = source.runs()
        assert run.status == "interrupted" and run.row.spans == 3
    with open(path, "a") as f:
        f.write(rest[40:])
        f.write(line(*run_spans(trace(2), "run000000002", start_ms=1000)))
    with TraceSource(tmp_path) as source:
        runs = source.runs()
        assert [(r.run_id, r.status) for r in runs] == [
            ("run000000002", "completed"),
            ("run000000001", "completed"),
        ]
        # each span counted once, though its pending record and its end came in two updates
        assert [(r.row.spans, r.row.steps, r.row.llm_calls, r.row.tokens) for r in runs] == [
            (6, 2, 1, 107),
            (6, 2, 1, 107),
        ]
        assert source.index.open_spans() == []
        assert source.skip_report() == []
        tree = source.load(runs[1])
        assert [s.name for s in tree.root.walk()] == [
            "run g", "node A", "dep load", "chat fake", "node B", "gate B.ok",
        ]  # fmt: skip


def test_a_replaced_or_removed_file_makes_the_index_start_again(tmp_path: Path) -> None:
    one = writer_file(tmp_path, dead_pid(), seq=0)
    two = writer_file(tmp_path, dead_pid(), seq=1)
    one.write_text(line(*run_spans(trace(1), "run000000001")))
    two.write_text(line(*run_spans(trace(2), "run000000002")))
    assert len(listing(tmp_path)) == 2
    one.write_text(line(*run_spans(trace(3), "run000000003")))  # same size, other content
    assert {r["run_id"] for r in listing(tmp_path)} == {"run000000002", "run000000003"}
    two.unlink()
    assert [r["run_id"] for r in listing(tmp_path)] == ["run000000003"]


def test_run_resolution_by_id_prefix_trace_prefix_and_last(tmp_path: Path) -> None:
    path = writer_file(tmp_path, dead_pid())
    ids = ["c0ffee000001", "c0ffee000002", "beef00000003"]
    path.write_text(
        "".join(line(*run_spans(trace(i), rid, start_ms=i * 100)) for i, rid in enumerate(ids))
    )
    with TraceSource(tmp_path) as source:
        assert source.resolve("beef00000003").run_id == "beef00000003"
        assert source.resolve("bee").run_id == "beef00000003"
        assert source.resolve("last").run_id == "beef00000003"
        assert source.resolve(trace(1)[:8]).run_id == "c0ffee000002"
        assert source.resolve(trace(1)[:8].upper()).run_id == "c0ffee000002"
        with pytest.raises(AmbiguousRun) as ambiguous:
            source.resolve("c0ffee")
        message = str(ambiguous.value)
        assert message.startswith("'c0ffee' matches 2 runs; give more of the id:")
        assert "c0ffee000001" in message and "c0ffee000002" in message
        with pytest.raises(RunNotFound, match="no run matches 'zzz'"):
            source.resolve("zzz")
