"""The JSON-lines file writer: naming, rotation, visibility, errors, threads, fork and kill."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from exporters.file import JsonlFileWriter, TraceDirError

NAME = re.compile(r"traces-(\d{8}T\d{6})-([A-Za-z0-9._-]+)-(\d+)-(\d{3})\.jsonl")


def read_lines(paths: list[Path]) -> list[str]:
    lines: list[str] = []
    for path in paths:
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"{path} ends mid-line"
        lines += data.decode("utf-8").split("\n")[:-1]
    return lines


def record(i: int, size: int = 0) -> str:
    return json.dumps({"i": i, "pad": "x" * size})


def test_directory_and_first_file_are_created_eagerly(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "traces"
    writer = JsonlFileWriter(directory)
    try:
        assert directory.is_dir()
        assert writer.path.parent == directory
        assert writer.path.exists() and writer.path.stat().st_size == 0
        assert writer.paths == [writer.path]
    finally:
        writer.close()


def test_file_name_has_utc_time_host_pid_and_sequence(tmp_path: Path) -> None:
    before = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    with JsonlFileWriter(tmp_path) as writer:
        after = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        match = NAME.fullmatch(writer.path.name)
        assert match, writer.path.name
        stamp, host, pid, seq = match.groups()
        assert before <= stamp <= after
        assert host == re.sub(r"[^A-Za-z0-9._-]+", "_", socket.gethostname().split(".")[0])
        assert int(pid) == os.getpid()
        assert seq == "000"


def test_two_writers_in_one_process_never_share_a_file(tmp_path: Path) -> None:
    with JsonlFileWriter(tmp_path) as one, JsonlFileWriter(tmp_path) as two:
        assert one.path != two.path
        one.write_lines(["1"])
        two.write_lines(["2"])
        assert one.path.read_text() == "1\n"
        assert two.path.read_text() == "2\n"


def test_lines_are_visible_to_another_reader_right_away(tmp_path: Path) -> None:
    with JsonlFileWriter(tmp_path) as writer, open(writer.path, "rb") as reader:
        writer.write_lines([record(1), record(2)])
        assert reader.read() == f"{record(1)}\n{record(2)}\n".encode()
        writer.write_lines([record(3)])
        assert reader.read() == f"{record(3)}\n".encode()


def test_rotation_by_size_never_splits_a_line(tmp_path: Path) -> None:
    max_bytes = 1000
    lines = [record(i, size=(i * 37) % 250) for i in range(400)]
    with JsonlFileWriter(tmp_path, max_bytes=max_bytes) as writer:
        i = 0
        batch = 1
        while i < len(lines):
            writer.write_lines(lines[i : i + batch])
            i += batch
            batch = batch % 7 + 1  # batches of 1..7 lines, some bigger than a file's room
        paths = writer.paths
    assert len(paths) > 10
    assert sorted(tmp_path.glob("*.jsonl")) == paths  # name order is write order
    assert read_lines(paths) == lines
    for path in paths:
        size = path.stat().st_size
        assert 0 < size <= max_bytes, (path.name, size)
    seqs = [int(NAME.fullmatch(p.name).group(4)) for p in paths]  # type: ignore[union-attr]
    assert seqs == list(range(len(paths)))
    prefixes = {p.name.rsplit("-", 1)[0] for p in paths}
    assert len(prefixes) == 1


def test_files_are_filled_before_rotating(tmp_path: Path) -> None:
    with JsonlFileWriter(tmp_path, max_bytes=100) as writer:
        writer.write_lines(["a" * 9] * 25)  # 250 bytes in one call
        sizes = [p.stat().st_size for p in writer.paths]
    assert sizes == [100, 100, 50]


def test_a_line_bigger_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    with JsonlFileWriter(tmp_path, max_bytes=100) as writer:
        writer.write_lines(["small"])
        writer.write_lines(["big" * 100, "after"])
        writer.write_lines(["next"])
        contents = [p.read_text() for p in writer.paths]
    assert contents == ["small\n", "big" * 100 + "\n", "after\nnext\n"]


def test_unwritable_directory_raises_trace_dir_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("I am a file")
    target = blocker / "traces"
    with pytest.raises(TraceDirError) as caught:
        JsonlFileWriter(target)
    error = caught.value
    assert isinstance(error, OSError)
    assert str(target) in str(error)
    assert f"{blocker} is a file, not a directory" in str(error)
    assert error.filename == str(target)


def test_directory_that_is_a_file_raises_trace_dir_error(tmp_path: Path) -> None:
    blocker = tmp_path / "traces"
    blocker.write_text("")
    with pytest.raises(TraceDirError, match="is a file, not a directory"):
        JsonlFileWriter(blocker)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_directory_raises_trace_dir_error(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        with pytest.raises(TraceDirError, match="Permission denied"):
            JsonlFileWriter(directory)
    finally:
        directory.chmod(0o700)


def test_refused_file_creation_raises_trace_dir_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The permission case, testable as root: the OS refuses to create the file."""

    def refuse(path: object, *args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(TraceDirError, match="Permission denied") as caught:
        JsonlFileWriter(tmp_path / "traces")
    assert str(tmp_path / "traces") in str(caught.value)
    assert caught.value.errno == 13


def test_a_failed_rotation_is_retried_on_the_next_write(tmp_path: Path) -> None:
    directory = tmp_path / "traces"
    with JsonlFileWriter(directory, max_bytes=10) as writer:
        writer.write_lines(["abcd"])  # 5 of 10 bytes
        for path in writer.paths:
            path.unlink()
        directory.rmdir()  # someone removed the trace directory
        with pytest.raises(TraceDirError, match="No such file or directory"):
            writer.write_lines(["1234567"])  # does not fit: rotation fails
        directory.mkdir()
        writer.write_lines(["y"])  # would fit the old file's room, but that file is gone
        assert writer.path.read_text() == "y\n"
        assert len(writer.paths) == 2


def test_many_threads_write_intact_lines_in_per_thread_order(tmp_path: Path) -> None:
    threads_n, calls = 8, 150
    barrier = threading.Barrier(threads_n)
    writer = JsonlFileWriter(tmp_path, max_bytes=8_000)

    def work(t: int) -> None:
        barrier.wait()
        for c in range(calls):
            batch = [json.dumps({"t": t, "c": c, "k": k, "pad": "y" * (c % 90)}) for k in range(3)]
            writer.write_lines(batch)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()

    records = [json.loads(line) for line in read_lines(writer.paths)]
    assert len(records) == threads_n * calls * 3
    assert len(writer.paths) > 5  # rotation happened under contention
    for t in range(threads_n):
        mine = [(r["c"], r["k"]) for r in records if r["t"] == t]
        assert mine == [(c, k) for c in range(calls) for k in range(3)]
    # a call's lines stay together: each write is one unit
    for i in range(0, len(records), 3):
        assert len({(r["t"], r["c"]) for r in records[i : i + 3]}) == 1


def test_a_line_with_a_newline_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with JsonlFileWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match="newline"):
            writer.write_lines(["ok", "two\nlines"])
        assert writer.path.read_bytes() == b""


def test_lone_surrogates_become_json_escapes(tmp_path: Path) -> None:
    line = json.dumps({"s": "a\udc80b"}, ensure_ascii=False)
    with JsonlFileWriter(tmp_path) as writer:
        writer.write_lines([line])
        data = writer.path.read_bytes()
    assert json.loads(data.decode("utf-8")) == {"s": "a\udc80b"}


def test_non_ascii_is_written_as_utf8(tmp_path: Path) -> None:
    with JsonlFileWriter(tmp_path) as writer:
        writer.write_lines(["é 中 🤖"])
        assert writer.path.read_bytes() == "é 中 🤖\n".encode()


def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    writer = JsonlFileWriter(tmp_path)
    writer.write_lines(["x"])
    writer.close()
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write_lines(["y"])
    assert writer.path.read_text() == "x\n"


def test_empty_call_writes_nothing(tmp_path: Path) -> None:
    with JsonlFileWriter(tmp_path) as writer:
        writer.write_lines([])
        assert writer.path.read_bytes() == b""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_writes_its_own_files(tmp_path: Path) -> None:
    with JsonlFileWriter(tmp_path) as writer:
        writer.write_lines(["parent 1"])
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                writer.write_lines(["child"])
                code = 0 if str(os.getpid()) in writer.path.name else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        writer.write_lines(["parent 2"])
        assert writer.path.read_text() == "parent 1\nparent 2\n"
    (child_file,) = [p for p in tmp_path.glob("*.jsonl") if f"-{pid}-" in p.name]
    assert child_file.read_text() == "child\n"


_KILLED_WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from exporters.file import JsonlFileWriter
w = JsonlFileWriter(sys.argv[1], max_bytes=200_000)
i = 0
print("ready", flush=True)
while True:
    w.write_lines(['{"i": %d, "pad": "%s"}' % (i + k, "z" * ((i + k) % 3000)) for k in range(20)])
    i += 20
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_kill_9_leaves_only_complete_lines(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path), str(root)],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    paths = sorted(tmp_path.glob("*.jsonl"))
    assert paths
    numbers: list[int] = []
    for n, path in enumerate(paths):
        text = path.read_bytes().decode("utf-8")
        lines = text.split("\n")
        tail = lines.pop()
        # only the newest file may end in a torn line, and only if the kill hit mid-write
        assert not tail or n == len(paths) - 1
        numbers += [json.loads(line)["i"] for line in lines]
    assert numbers == list(range(len(numbers)))
    assert len(numbers) > 20
