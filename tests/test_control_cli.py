"""Gates across processes, end to end: a `graphtrace run` without a terminal waits at gates, and
another process answers through the control socket (`graphtrace answer`, the client library)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from graphtrace.control.client import ACCEPTED, NO_PROCESS, REFUSED, answer, send
from graphtrace.control.protocol import Refusal, Request
from graphtrace.control.sockets import owner_pid
from tests.control_support import (
    GATED_GRAPH,
    TIMED_GRAPH,
    Runtime,
    gates_in,
    wait_for_gates,
    wait_until_gone,
)
from tests.otlp_validator import attributes, read_spans
from tests.test_cli import graphtrace

RUNS = 10


class Shared:
    """One `graphtrace run` of the gated graph with RUNS runs, shared by the tests below; each
    test claims runs of its own."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.trace_dir = cwd / "tr"
        (cwd / "gated.py").write_text(GATED_GRAPH)
        self.runtime = Runtime(cwd, "gated.py:graph", "--runs", str(RUNS), "--trace-dir", "tr")
        self.gates = wait_for_gates(self.trace_dir, RUNS)
        self._free = [g.run_id for g in self.gates]

    def claim(self) -> str:
        return self._free.pop()

    def socket(self) -> Path:
        (path,) = {g.socket for g in self.gates}
        assert path is not None
        return path

    def answer_cli(self, *args: str) -> tuple[int, str, str]:
        out = graphtrace("answer", *args, "--trace-dir", "tr", cwd=self.cwd)
        return out.returncode, out.stdout, out.stderr

    def cli_at_once(self, *commands: list[str]) -> list[tuple[int, str, str]]:
        """Several `graphtrace` commands run side by side (each takes a second to start)."""
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "graphtrace", *args, "--trace-dir", "tr"],
                cwd=self.cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "GRAPHTRACE_DIR": "", "COLUMNS": "200"},
            )
            for args in commands
        ]
        outputs = [p.communicate(timeout=60) for p in procs]
        return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


@pytest.fixture(scope="module")
def shared() -> Iterator[Shared]:
    # under /tmp with mode 0755 rather than pytest's 0700 tmp dir, so that another uid can reach
    # the trace dir in the peer-uid test and be stopped by the control dir and the socket
    cwd = Path(tempfile.mkdtemp(prefix="gt-control-", dir="/tmp"))
    os.chmod(cwd, 0o755)
    state = None
    try:
        state = Shared(cwd)
        yield state
    finally:
        if state is not None:
            state.runtime.stop()
        shutil.rmtree(cwd, ignore_errors=True)


def gate_spans(trace_dir: Path, run_id: str) -> tuple[list[dict], list[dict]]:
    """(pending records, final spans) of the gate spans of ``run_id``'s trace."""
    spans = read_spans(trace_dir, allow_torn_tail=True)  # the writer may be mid-line
    roots = [s for s in spans if attributes(s).get("graphtrace.run.id") == run_id]
    trace_id = roots[0]["traceId"]
    gates = [s for s in spans if s["traceId"] == trace_id and s["name"].startswith("gate ")]
    pending = [s for s in gates if attributes(s).get("graphtrace.pending")]
    final = [s for s in gates if not attributes(s).get("graphtrace.pending")]
    return pending, final


def test_answer_is_accepted_resumes_the_run_and_is_recorded(shared: Shared) -> None:
    run = shared.claim()
    code, out, err = shared.answer_cli(run, "true")  # GATE left out: the run waits at one
    assert (code, err) == (0, "")
    assert out.strip() == f"run {run} gate Review.approved: accepted true"
    # the run resumed: it now waits at Note's two gates
    waiting = wait_for_gates(shared.trace_dir, 2, run_id=run)
    assert sorted(g.gate_id for g in waiting) == ["Note.priority", "Note.text"]
    pending, final = gate_spans(shared.trace_dir, run)
    (review,) = [s for s in final if s["name"] == "gate Review.approved"]
    attrs = attributes(review)
    assert attrs["graphtrace.gate.answer"] == "true"
    assert attrs["graphtrace.gate.answered_by"] == "socket"
    assert attrs["graphtrace.gate.wait_ms"] > 0
    sockets = {attributes(p)["graphtrace.gate.socket"] for p in pending}
    assert sockets == {str(shared.socket())}
    assert shared.socket().is_absolute() and shared.socket().parent == shared.trace_dir / "control"
    # said once per gate, with the command to use
    hint = (
        f"run {run} waits at gate Review.approved: answer it with  "
        f"graphtrace answer {run} Review.approved VALUE --trace-dir tr"
    )
    assert shared.runtime.lines.count(hint) == 1


def test_gates_and_ls_waiting_list_the_waiting_gates(shared: Shared) -> None:
    (code_json, as_json, _), (code_table, table, _) = shared.cli_at_once(
        ["gates", "--json"], ["ls", "--waiting"]
    )
    assert (code_json, code_table) == (0, 0)
    listed = {g["run_id"]: g for g in json.loads(as_json)}
    unclaimed = set(shared._free)
    assert unclaimed <= set(listed)
    one = listed[next(iter(unclaimed))]
    assert one["gate_id"] == "Review.approved" and one["prompt"] == "Approve the refund?"
    assert one["expected_type"] == "bool" and one["schema"] == {"type": "boolean"}
    assert one["waited_s"] > 0 and one["socket"] == str(shared.socket())
    assert one["graph"] == "gated"
    assert "gate(s) waiting in tr" in table
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in table.splitlines()]
    for run in unclaimed:
        assert [run, "Review.approved", "Approve the refund?", "bool"] in [r[:4] for r in rows]


def test_invalid_value_is_refused_and_the_gate_keeps_waiting(shared: Shared) -> None:
    run = shared.claim()
    code, out, err = shared.answer_cli(run, "Review.approved", "perhaps")
    assert code == 1 and out == ""
    assert err.startswith("graphtrace: refused: 'perhaps' is not a valid bool for Review.approved")
    assert [g.gate_id for g in gates_in(shared.trace_dir) if g.run_id == run] == ["Review.approved"]
    # still answerable: the client library, in this process
    outcome = answer(shared.trace_dir, run, "Review.approved", False)
    assert (outcome.code, outcome.value, outcome.gate_id) == (ACCEPTED, False, "Review.approved")


def test_unknown_run_exits_2_and_unknown_gate_exits_1(shared: Shared) -> None:
    run = shared.claim()
    unknown_run, unknown_gate = shared.cli_at_once(
        ["answer", "0123456789ab", "true"], ["answer", run, "Review.nope", "true"]
    )
    assert unknown_run[0] == 2 and "no run matches '0123456789ab'" in unknown_run[2]
    assert unknown_gate[0] == 1
    message = f"run {run} has no waiting gate 'Review.nope' (waiting: Review.approved)"
    assert unknown_gate[2] == f"graphtrace: refused: {message}\n"
    # the socket itself, asked for a run its process does not hold
    reply = send(shared.socket(), Request("fedcba987654", None, True))
    assert (reply.ok, reply.reason) == (False, Refusal.UNKNOWN_RUN)


def test_second_answer_is_refused_and_several_gates_need_a_name(shared: Shared) -> None:
    run = shared.claim()
    assert answer(shared.trace_dir, run, None, True).code == ACCEPTED
    code, _, err = shared.answer_cli(run, "Review.approved", "false")
    assert code == 1
    assert f"gate Review.approved of run {run} was already answered (socket)" in err
    wait_for_gates(shared.trace_dir, 2, run_id=run)
    outcome = answer(shared.trace_dir, run, None, "hello")
    assert outcome.code == REFUSED and outcome.reason is Refusal.GATE_NEEDED
    assert "waits at 2 gates (Note.text, Note.priority): name one" in outcome.message
    # answered in any order, each by its id
    assert answer(shared.trace_dir, run, "Note.priority", "7").value == 7
    assert answer(shared.trace_dir, run, "Note.text", "all done").value == "all done"
    assert " completed " in shared.runtime.wait_for_line(f"{run} ")
    assert shared.runtime.proc.poll() is None  # the other runs still wait


def test_concurrent_answers_exactly_one_wins(shared: Shared) -> None:
    runs = [shared.claim() for _ in range(3)]
    for run in runs:
        barrier = threading.Barrier(2)
        replies: list = [None, None]

        def client(index: int, value: bool, run: str = run, barrier=barrier, replies=replies):
            request = Request(run, "Review.approved", value)
            barrier.wait()
            replies[index] = send(shared.socket(), request)

        threads = [threading.Thread(target=client, args=(i, i == 0)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [r for r in replies if r.ok]
        losers = [r for r in replies if not r.ok]
        assert len(winners) == 1 and len(losers) == 1, replies
        assert losers[0].reason is Refusal.ANSWERED
        wait_until_gone(shared.trace_dir, run, "Review.approved")
        _, final = gate_spans(shared.trace_dir, run)
        (span,) = [s for s in final if s["name"] == "gate Review.approved"]
        assert attributes(span)["graphtrace.gate.answer"] == json.dumps(winners[0].value)


def test_nothing_a_client_sends_hurts_the_runtime(shared: Shared) -> None:
    run = shared.claim()
    path = shared.socket()

    def raw(data: bytes, *, close_write: bool = True) -> dict:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(path))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                s.sendall(data)
                if close_write:
                    s.shutdown(socket.SHUT_WR)
            return json.loads(s.makefile("rb").readline())

    # a client that connects and sends nothing holds no one up
    with socket.socket(socket.AF_UNIX) as idle:
        idle.connect(str(path))
        assert raw(b"{nope\n")["reason"] == "malformed"
        assert raw(b'["run"]\n')["reason"] == "malformed"
        assert raw(b'{"run": "x", "value": 1, "extra": 2}\n')["reason"] == "malformed"
        assert raw(b"")["reason"] == "malformed"
        assert raw(b"[" * 50_000 + b"\n")["reason"] == "malformed"  # too deep for json
        big = raw(b'{"run": "' + b"x" * 70_000 + b'"}\n', close_write=False)
        assert big["reason"] == "too_large" and "65536" in big["error"]
        assert raw(b'{"run": "%s", "gate": null, "value": true}\n' % run.encode())["ok"]
    assert shared.runtime.proc.poll() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client under another uid")
def test_another_uid_is_refused(shared: Shared) -> None:
    run = shared.claim()
    path = shared.socket()
    control = path.parent
    assert stat.S_IMODE(control.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    request = Request(run, None, True).encode()
    # the modes keep another user out before the server is even reached
    assert as_uid(65534, lambda: _try(path, request)) == "PermissionError"
    # with the modes widened by hand, the server still refuses by the peer's uid
    os.chmod(control, 0o711)
    os.chmod(path, 0o666)
    try:
        reply = json.loads(as_uid(65534, lambda: _try(path, request)))
    finally:
        os.chmod(control, 0o700)
        os.chmod(path, 0o600)
    assert reply["ok"] is False and reply["reason"] == "forbidden"
    assert "uid 65534 may not answer" in reply["error"]
    assert [g.run_id for g in gates_in(shared.trace_dir) if g.run_id == run] == [run]


def _try(path: Path, request: bytes) -> str:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(path))
            with contextlib.suppress(BrokenPipeError):  # refused before it read the request
                s.sendall(request)
            return s.makefile("rb").readline().decode()
    except OSError as exc:
        return type(exc).__name__


def as_uid(uid: int, fn: Callable[[], str]) -> str:
    """``fn()`` in a forked child running as ``uid``; its result through a pipe."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: the child
        pid = os.fork()  # only makes a socket call and exits
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgid(uid)
            os.setuid(uid)
            os.write(write, fn().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read().decode()
    os.waitpid(pid, 0)
    return data


def test_gate_timeout_across_processes(tmp_path: Path) -> None:
    (tmp_path / "timed.py").write_text(TIMED_GRAPH)
    runtime = Runtime(tmp_path, "timed.py:graph", "--trace-dir", "tr")
    try:
        trace_dir = tmp_path / "tr"
        (first,) = wait_for_gates(trace_dir, 1)
        assert first.gate_id == "Lenient.name"
        # the default came after the timeout and the run moved on to the gate without one
        wait_for_gates(trace_dir, 1, gate_id="Strict.sure")
        assert runtime.wait() == 1
    finally:
        runtime.stop()
    assert "timed out after 1.0s and has no default" in runtime.output
    _, final = gate_spans(trace_dir, first.run_id)
    by_name = {s["name"]: s for s in final}
    lenient = attributes(by_name["gate Lenient.name"])
    assert (lenient["graphtrace.gate.answer"], lenient["graphtrace.gate.answered_by"]) == (
        '"anon"',
        "timeout",
    )
    assert by_name["gate Strict.sure"]["status"]["code"] == 2
    # nobody holds the run any more; its socket went with the last waiting gate
    assert not list((trace_dir / "control").iterdir())
    outcome = answer(trace_dir, first.run_id, None, True)
    assert outcome.code == NO_PROCESS and "has finished (failed)" in outcome.message


def test_stale_socket_of_a_killed_process_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "gated.py").write_text(GATED_GRAPH)
    trace_dir = tmp_path / "tr"
    killed = Runtime(tmp_path, "gated.py:graph", "--trace-dir", "tr")
    (dead,) = wait_for_gates(trace_dir, 1)
    killed.proc.send_signal(signal.SIGKILL)
    killed.wait()
    assert dead.socket is not None and dead.socket.exists()  # left behind
    assert gates_in(trace_dir) == []  # its process is gone: nothing waits there
    outcome = answer(trace_dir, dead.run_id, None, True)
    assert outcome.code == NO_PROCESS and "interrupted" in outcome.message

    # a socket file with a live pid in its name but nobody listening: refused, skipped
    fake = trace_dir / "control" / f"{os.getpid()}-0badc0de.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(fake))
    live = Runtime(tmp_path, "gated.py:graph", "--trace-dir", "tr")
    try:
        (gate,) = wait_for_gates(trace_dir, 1)
        assert gate.socket is not None and gate.socket != dead.socket
        assert not dead.socket.exists(), "the next process sweeps sockets of dead ones"
        code = graphtrace("answer", "last", "true", "--trace-dir", "tr", cwd=tmp_path)
        assert code.returncode == 0, code.stderr
        assert f"run {gate.run_id} gate Review.approved: accepted true" in code.stdout
    finally:
        live.stop()  # SIGTERM: the runs are cancelled, their gates close, and so does the socket
    assert not gate.socket.exists()
    assert fake.exists()  # its pid (ours) is alive: left alone, only skipped


def test_two_processes_in_one_trace_dir_each_have_their_own_socket(tmp_path: Path) -> None:
    (tmp_path / "gated.py").write_text(GATED_GRAPH)
    trace_dir = tmp_path / "tr"
    runtimes = [Runtime(tmp_path, "gated.py:graph", "--trace-dir", "tr") for _ in range(2)]
    try:
        first, second = wait_for_gates(trace_dir, 2)
        assert first.socket is not None and second.socket is not None
        assert first.socket != second.socket
        assert {owner_pid(first.socket), owner_pid(second.socket)} == {r.proc.pid for r in runtimes}
        wrong = send(first.socket, Request(second.run_id, None, True))
        assert (wrong.ok, wrong.reason) == (False, Refusal.UNKNOWN_RUN)
        for gate in (first, second):
            assert answer(trace_dir, gate.run_id, None, True).code == ACCEPTED
    finally:
        for runtime in runtimes:
            runtime.stop()
