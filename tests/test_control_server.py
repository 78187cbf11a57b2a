"""The control server inside one process: the socket's lifecycle and modes, limits, refusals,
and the pieces (protocol, sockets, schema names) the cross-process tests rely on."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel

from graphtrace import FakeLM, Gate, Graph, Node, RunPool, configure
from graphtrace.control.client import ControlUnreachable, send
from graphtrace.control.discovery import schema_type
from graphtrace.control.protocol import (
    MAX_REQUEST_BYTES,
    ProtocolError,
    Refusal,
    Reply,
    Request,
)
from graphtrace.control.sockets import bind_private, connect, owner_pid, sweep_stale
from graphtrace.pool import RunHandle
from tests.conftest import TraceDir, run
from tests.otlp_validator import attributes


class Ask(Node):
    amount: int = 1
    approved: Annotated[bool, Gate("Approve?")]

    async def __call__(self) -> None: ...


ask = Graph(start=Ask)


async def waiting(handle: RunHandle, count: int = 1) -> None:
    while len(handle.waiting_gates) < count:
        await asyncio.sleep(0.001)


async def ask_socket(path: Path, request: Request) -> Reply:
    return await asyncio.to_thread(send, path, request)


def test_socket_lives_while_a_gate_waits_and_is_private(traces: TraceDir) -> None:
    async def main() -> None:
        async with RunPool(lm=FakeLM()) as pool:
            assert pool.control is not None and not pool.control.path.exists()
            path = pool.control.path
            first = pool.submit(ask)
            await waiting(first)
            assert stat.S_ISSOCK(path.stat().st_mode)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            assert owner_pid(path) == os.getpid()
            reply = await ask_socket(path, Request(first.run_id, "Ask.approved", "yes"))
            assert reply == Reply(True, value=True, gate="Ask.approved")
            await first
            assert not path.exists(), "closed once no gate waits"
            second = pool.submit(ask)
            await waiting(second)
            assert path.exists(), "bound again, at the same path, for the next gate"
            assert first.run.answered == {"Ask.approved": "socket"}
            reply = await ask_socket(path, Request(first.run_id, None, False))
            assert (reply.reason, reply.error) == (
                Refusal.FINISHED,
                f"run {first.run_id} has finished (completed)",
            )
            second.cancel()
        assert not path.exists()

    run(main())
    (span, _) = [s for s in traces.by_name("gate Ask.approved")]
    assert attributes(span)["graphtrace.gate.answered_by"] == "socket"


def test_slow_and_surplus_clients_are_cut_off(traces: TraceDir) -> None:
    async def main() -> None:
        async with RunPool(lm=FakeLM()) as pool:
            assert pool.control is not None
            pool.control.io_timeout = 0.2
            pool.control.max_connections = 1
            handle = pool.submit(ask)
            await waiting(handle)
            path = pool.control.path
            silent = await asyncio.to_thread(connect, path, 10.0)
            with silent:
                await asyncio.sleep(0)  # let the server take it
                busy = await ask_socket(path, Request(handle.run_id, None, True))
                assert (busy.ok, busy.reason) == (False, Refusal.BUSY)
                data = await asyncio.to_thread(silent.makefile("rb").readline)
                cut = Reply.decode(data)
                assert cut.reason is Refusal.MALFORMED and "no complete request" in str(cut.error)
            ok = await ask_socket(path, Request(handle.run_id, None, True))
            assert ok.ok
            await handle

    run(main())


def test_no_socket_without_tracing_or_when_turned_off(tmp_path: Path) -> None:
    tracing = configure(tmp_path / "tr")

    async def main() -> None:
        async with RunPool(lm=FakeLM(), control=False) as pool:
            assert pool.control is None
            handle = pool.submit(ask)
            await waiting(handle)
            handle.run.answer(None, True)
            await handle

    try:
        run(main())
        tracing.flush()
        assert not (tmp_path / "tr" / "control").exists()
    finally:
        tracing.shutdown()


def test_long_trace_dir_paths_still_bind(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "control"
    deep.mkdir(parents=True, mode=0o700)
    path = deep / "1234-abcdef01.sock"
    assert len(str(path)) > 108
    listener = bind_private(path)
    try:
        client = connect(path, 5.0)
        conn, _ = listener.accept()
        client.close()
        conn.close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        listener.close()


def test_stale_sockets_are_swept_and_refused(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    directory = tmp_path / "control"
    directory.mkdir(mode=0o700)
    stale = directory / f"{dead_pid}-00000000.sock"
    mine = directory / f"{os.getpid()}-11111111.sock"
    other = directory / "notes.txt"
    for path in (stale, mine):
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(path))  # bound, then closed: nobody listens
    other.write_text("not a socket of ours")
    assert sweep_stale(directory) == [stale]
    assert mine.exists() and other.exists()
    with pytest.raises(ControlUnreachable, match="nobody listens"):
        send(mine, Request("r", None, 1))
    with pytest.raises(ControlUnreachable, match="nobody listens"):
        send(stale, Request("r", None, 1))


def test_request_and_reply_shapes() -> None:
    request = Request("abc", None, {"a": [1, 2]})
    assert Request.decode(request.encode().rstrip(b"\n")) == request
    with pytest.raises(ProtocolError) as info:
        Request("abc", None, "x" * MAX_REQUEST_BYTES).encode()
    assert info.value.reason is Refusal.TOO_LARGE
    for bad, message in [
        (b"[]", "must be a JSON object"),
        (b'{"run": "", "value": 1}', '"run"'),
        (b'{"run": "r", "gate": 3, "value": 1}', '"gate"'),
        (b'{"run": "r"}', '"value"'),
        (b"\xff", "not JSON"),
    ]:
        with pytest.raises(ProtocolError, match=message):
            Request.decode(bad)
    refused = Reply.refused(Refusal.INVALID, "no" * 5000)
    decoded = Reply.decode(refused.encode())
    assert decoded.reason is Refusal.INVALID and len(decoded.error or "") <= 4001
    from_newer = Reply.decode(json.dumps({"ok": False, "error": "x", "reason": "new"}).encode())
    assert from_newer.reason is Refusal.INTERNAL


class Address(BaseModel):
    city: str


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (bool, "bool"),
        (int | None, "int | None"),
        (list[str], "list[str]"),
        (Literal["low", "high"], "Literal['low', 'high']"),
        (Address, "Address"),
        (dict[str, float], "dict[str, float]"),
    ],
)
def test_expected_type_from_the_schema(hint: Any, expected: str) -> None:
    from pydantic import TypeAdapter

    assert schema_type(TypeAdapter(hint).json_schema()) == expected
