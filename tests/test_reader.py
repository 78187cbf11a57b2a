"""The tolerant reader: foreign OTLP JSON, damaged files, open spans of live and dead writers."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from exporters.reading.assemble import RunTrace, assemble
from exporters.reading.errors import ReaderError
from exporters.reading.records import records_of, tree_records
from exporters.reading.source import TraceSource, gc_paused
from tests.otlp_builder import (
    MS,
    T0,
    attrs,
    dead_pid,
    line,
    own_pid_file,
    pending,
    run_spans,
    span,
    writer_file,
)

TRACE_A = "0af7651916cd43dd8448eb211c80319c"
TRACE_B = "5b8efff798038103d269b633813fc60c"


def foreign_document() -> dict[str, object]:
    """Written from the OTLP JSON specification, as another tool might: pretty-printed later,
    upper-case ids, times as numbers, two resources, two scopes, unknown fields."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attrs(service__name="checkout"), "entityRefs": []},
                "scopeSpans": [
                    {
                        "scope": {"name": "http", "version": "1.0"},
                        "spans": [
                            {
                                "traceId": TRACE_A.upper(),
                                "spanId": "B7AD6B7169203331",
                                "name": "GET /cart",
                                "kind": 2,
                                "startTimeUnixNano": T0,
                                "endTimeUnixNano": T0 + 50 * MS,
                                "attributes": [{"key": "http.status", "value": {"intValue": 200}}],
                                "someFutureField": {"x": 1},
                            }
                        ],
                    },
                    {
                        "scope": {"name": "db"},
                        "spans": [
                            {
                                "traceId": TRACE_A.upper(),
                                "spanId": "00F067AA0BA902B7",
                                "parentSpanId": "B7AD6B7169203331",
                                "name": "SELECT cart",
                                "kind": "SPAN_KIND_CLIENT",
                                "startTimeUnixNano": str(T0 + 5 * MS),
                                "endTimeUnixNano": T0 + 45 * MS,
                                "status": {"code": "STATUS_CODE_ERROR", "message": "deadlock"},
                            }
                        ],
                    },
                ],
            },
            {
                "resource": {"attributes": attrs(service__name="payments")},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE_B,
                                "spanId": "1111111111111111",
                                "name": "charge",
                                "startTimeUnixNano": T0 + 100 * MS,
                                "endTimeUnixNano": T0 + 130 * MS,
                            }
                        ]
                    }
                ],
            },
        ]
    }


def test_pretty_printed_foreign_document_reads_as_runs_named_after_root_spans(
    tmp_path: Path,
) -> None:
    path = tmp_path / "collector.json"
    path.write_text(json.dumps(foreign_document(), indent=2))
    with TraceSource(tmp_path, [path]) as source:
        runs = {r.trace_id: r for r in source.runs()}
        assert set(runs) == {TRACE_A, TRACE_B}
        cart = runs[TRACE_A]
        # the run's status is its root's: the root answered, one span below it failed
        assert (cart.graph, cart.run_id, cart.status) == ("GET /cart", TRACE_A, "completed")
        assert cart.row.errors == 1
        assert cart.duration_ns == 50 * MS
        tree = source.load(source.resolve(TRACE_A[:6].upper()))
        assert [s.name for s in tree.root.walk()] == ["GET /cart", "SELECT cart"]
        child = tree.root.children[0]
        assert child.status == "error" and child.record.status_message == "deadlock"
        assert child.record.kind == 3 and child.record.scope == {"name": "db"}
        assert tree.root.record.resource == {"service.name": "checkout"}
        assert tree.root.attributes == {"http.status": 200}
        assert source.skip_report() == []


def test_ids_in_base64_as_protobuf_json_writes_them(tmp_path: Path) -> None:
    import base64

    doc = foreign_document()
    first = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]  # type: ignore[index]
    first["traceId"] = base64.b64encode(bytes.fromhex(TRACE_A)).decode()
    first["spanId"] = base64.b64encode(bytes.fromhex("b7ad6b7169203331")).decode()
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(doc) + "\n")
    with TraceSource(tmp_path, [path]) as source:
        tree = source.load(source.resolve(TRACE_A))
        assert [s.name for s in tree.root.walk()] == ["GET /cart", "SELECT cart"]


def test_damaged_lines_are_skipped_counted_and_reported_once(tmp_path: Path) -> None:
    path = writer_file(tmp_path, dead_pid())
    good = run_spans(TRACE_A, "aaaa00000001")
    with open(path, "wb") as f:
        f.write(line(*good[:5]).encode())
        f.write(b"this is not json\n")  # line 2
        f.write(b'{"resourceMetrics": []}\n')
        f.write(line(*good[5:]).encode())
        f.write(b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "\xff\xfe"}]}]}]}\n')
        f.write(b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 5}, ')
        f.write(json.dumps(span(TRACE_B, "2222222222222222", None, "x", 0, 1)).encode())
        f.write(b"]}]}]}\n")
        f.write(b'{"resourceSpans": [{"scopeSp')  # torn last line of a dead writer
    with TraceSource(tmp_path) as source:
        report = source.skip_report()
        assert report == [
            f"4 lines skipped in {path}: first at line 2: not valid JSON (invalid character "
            "(byte 4))",
            f"1 span skipped in {path}: first at line 6: unreadable span: "
            "Expected `str`, got `int` - at `$.traceId`",
        ]
        (run,) = [r for r in source.runs() if r.trace_id == TRACE_A]
        summary = (run.run_id, run.status, run.row.steps, run.row.tokens)
        assert summary == ("aaaa00000001", "completed", 2, 107)
        assert {r.trace_id for r in source.runs()} == {TRACE_A, TRACE_B}


def test_killed_writer_leaves_interrupted_spans_with_the_time_they_ran(tmp_path: Path) -> None:
    path = writer_file(tmp_path, dead_pid())
    root, node, dep = "1" * 16, "2" * 16, "3" * 16
    path.write_text(
        line(
            pending(TRACE_A, root, "run g", 0, {"graphtrace.run.id": "dead00000001"}),
            pending(TRACE_A, node, "node A", 1, {"graphtrace.node.step": 1}),
            pending(TRACE_A, dep, "dep slow", 2),
            span(TRACE_A, "4" * 16, node, "dep fast", 2, 40),
        )
    )
    with TraceSource(tmp_path) as source:
        (run,) = source.runs()
        assert (run.status, run.duration_ns) == ("interrupted", 40 * MS)
        assert source.runs(statuses=["interrupted"]) and not source.runs(statuses=["running"])
        tree = source.load(run)
        by_name = {s.name: s for s in tree.root.walk()}
        assert tree.status == "interrupted"
        assert by_name["dep slow"].status == "interrupted"
        assert by_name["dep slow"].duration_ns == 38 * MS
        # open spans are placed under the open span above them: dep under node under run
        assert by_name["dep slow"].parent_id == node and by_name["node A"].parent_id == root
        assert by_name["dep fast"].status == "ok"


def test_live_writer_shows_running_runs_and_their_waiting_gates(tmp_path: Path) -> None:
    path = own_pid_file(tmp_path)
    root, node, gate = "1" * 16, "2" * 16, "3" * 16
    path.write_text(
        line(
            pending(TRACE_A, root, "run g", 0, {"graphtrace.run.id": "live00000001"}),
            pending(TRACE_A, node, "node A", 1, {"graphtrace.node.step": 1}),
            pending(
                TRACE_A,
                gate,
                "gate A.ok",
                2,
                {"graphtrace.gate.id": "A.ok", "graphtrace.gate.prompt": "Ship it?"},
            ),
        )
    )
    with TraceSource(tmp_path, clock=lambda: T0 + 5_000 * MS) as source:
        (run,) = source.runs()
        assert (run.status, run.waiting_gates, run.duration_ns) == ("running", 1, 5_000 * MS)
        (gate_open,) = source.open_gates()
        assert gate_open.alive and gate_open.span.gate == "A.ok"
        assert gate_open.attributes["graphtrace.gate.prompt"] == "Ship it?"
        tree = source.load(run)
        assert {s.status for s in tree.root.walk()} == {"running"}
        assert tree.root.duration_ns == 5_000 * MS


def test_missing_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ReaderError, match="no trace directory"):
        TraceSource(tmp_path / "nope")
    with pytest.raises(ReaderError, match="no such file"):
        TraceSource(tmp_path, [tmp_path / "missing.jsonl"])


def _shape(trace: RunTrace) -> list[tuple[object, ...]]:
    """Everything a viewer reads of a tree, span by span in tree order."""
    return [(trace.trace_id, trace.run_id, trace.graph, trace.status, len(trace.spans))] + [
        (
            s.span_id,
            s.parent_id,
            s.name,
            s.status,
            s.start_ns,
            s.end_ns,
            s.attributes,
            [child.span_id for child in s.children],
            s.record,
        )
        for s in trace.root.walk()
    ]


def test_load_builds_the_tree_of_all_records_without_converting_superseded_pending_ones(
    tmp_path: Path,
) -> None:
    path = writer_file(tmp_path, dead_pid())
    spans = run_spans(TRACE_A, "feed00000001")
    node1 = spans[1]["parentSpanId"]
    never, late = "5" * 16, "6" * 16
    extra = [
        pending(TRACE_A, never, "dep never", 3, {"graphtrace.dep.cached": False}),
        pending(TRACE_A, never, "dep never", 4, {"graphtrace.dep.cached": True}),  # first wins
        pending(TRACE_A, node1.upper(), "node A", 1),  # its span ended, spelt otherwise
        span(TRACE_A.upper(), late, node1, "dep late", 5, 6),
        pending(TRACE_A, late, "dep late", 5),  # read after its final record
    ]
    other = run_spans(TRACE_B, "feed00000002")
    path.write_text(line(*spans[:4], *other[:5], *extra) + line(*spans[4:], *other[5:]))
    with TraceSource(tmp_path) as source:
        run = source.resolve("feed00000001")
        everything = assemble(
            source.records(run),
            now_ns=source.clock(),
            alive=source.alive,
            last_write_ns=source.last_write_ns,
        )
        loaded = source.load(run)
    assert _shape(loaded) == _shape(everything)
    by_name = {s.name: s for s in loaded.root.walk()}
    assert by_name["dep never"].status == "interrupted"
    assert by_name["dep never"].attributes == {"graphtrace.dep.cached": False}
    assert by_name["dep late"].record.trace_id == TRACE_A


def test_tree_records_keep_final_records_and_the_pending_ones_of_open_spans() -> None:
    spans = run_spans(TRACE_A, "feed00000001")
    data = line(*spans, pending(TRACE_A, "5" * 16, "dep never", 3)).encode()
    all_records = records_of(data, 7, trace_id=TRACE_A).records
    kept = tree_records([(data, 7)], TRACE_A)
    assert [r for r in kept if not r.pending] == [r for r in all_records if not r.pending]
    assert [(r.span_id, r.source) for r in kept if r.pending] == [("5" * 16, 7)]
    assert tree_records([(data, 7)], TRACE_B) == []


def test_gc_paused_restores_the_collector_as_it_was() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # left off by whoever turned it off
    finally:
        gc.enable()
