"""The follower: complete lines appended to a trace dir's files, through rotation, renames,
truncation, several writers and lines written in pieces. A fake clock drives its scans."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from exporters.reading.follow import QUIET_AFTER, QUIET_CHECK, SCAN_INTERVAL, Follower


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = SCAN_INTERVAL) -> None:
        self.now += seconds


def doc(n: int) -> str:
    return json.dumps({"resourceSpans": [], "n": n}) + "\n"


def numbers(follower: Follower) -> list[int]:
    return [json.loads(chunk.data)["n"] for _, chunk in follower.poll().chunks]


def drained(follower: Follower) -> list[int]:
    """Every number waiting, over as many polls as it takes (each poll reads a bounded piece)."""
    got: list[int] = []
    while True:
        found = follower.poll()
        got += [json.loads(chunk.data)["n"] for _, chunk in found.chunks]
        if not found.more:
            return got


def append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def test_existing_files_are_followed_from_their_end_and_lines_keep_their_numbers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(doc(1) + doc(2))
    with Follower(tmp_path, clock=Clock()) as follower:
        assert numbers(follower) == []
        append(path, doc(3))
        found = follower.poll()
        assert [(c.line, json.loads(c.data)["n"]) for _, c in found.chunks] == [(3, 3)]
        assert numbers(follower) == []  # nothing twice


def test_from_start_reads_everything_then_only_what_is_new(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(doc(1) + "\n  \n" + doc(2))
    with Follower(tmp_path, start="start", clock=Clock()) as follower:
        assert numbers(follower) == [1, 2]
        append(path, doc(3))
        assert numbers(follower) == [3]


def test_a_torn_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text("")
    whole = doc(7)
    with Follower(tmp_path, clock=Clock()) as follower:
        follower.poll()
        append(path, whole[:10])
        assert numbers(follower) == []
        append(path, whole[10:-1])
        found = follower.poll()
        assert found.chunks == [] and found.grew  # the writer is busy: tail polls again soon
        assert not follower.poll().grew
        append(path, "\n" + doc(8))
        assert numbers(follower) == [7, 8]


def test_a_file_that_ends_in_a_torn_line_is_followed_from_that_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    whole = doc(2)
    path.write_text(doc(1) + whole[:5])  # the writer was caught mid-write when we started
    with Follower(tmp_path, clock=Clock()) as follower:
        assert numbers(follower) == []
        append(path, whole[5:])
        assert numbers(follower) == [2]


def test_new_writers_and_rotated_files_are_read_from_their_start(tmp_path: Path) -> None:
    clock = Clock()
    first = tmp_path / "traces-20260101T000000-h-1-000.jsonl"
    first.write_text(doc(1))
    with Follower(tmp_path, clock=clock) as follower:
        assert numbers(follower) == []
        append(first, doc(2))  # the last lines before the writer rotates
        (tmp_path / "traces-20260101T000000-h-1-001.jsonl").write_text(doc(3) + doc(4))
        (tmp_path / "traces-20260101T000000-h-2-000.jsonl").write_text(doc(5))  # a new writer
        found = follower.poll()  # the directory changed: listed again at once
        assert [json.loads(c.data)["n"] for _, c in found.chunks] == [2, 3, 4, 5]
        assert sorted(f.path.name for f in found.new_files) == [
            "traces-20260101T000000-h-1-001.jsonl",
            "traces-20260101T000000-h-2-000.jsonl",
        ]


def test_without_a_change_of_the_directory_time_new_files_wait_for_the_scan_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a file system whose times are too coarse to show the change
    monkeypatch.setattr(Follower, "_mtime", lambda self: 1)
    clock = Clock()
    first = tmp_path / "a.jsonl"
    first.write_text(doc(1))
    with Follower(tmp_path, clock=clock) as follower:
        assert numbers(follower) == []
        append(first, doc(2))
        (tmp_path / "b.jsonl").write_text(doc(3))
        assert numbers(follower) == [2]
        clock.tick()
        assert numbers(follower) == [3]


def test_a_file_renamed_away_is_read_to_its_end_and_its_successor_from_the_start(
    tmp_path: Path,
) -> None:
    clock = Clock()
    path = tmp_path / "app.jsonl"
    path.write_text(doc(1))
    with Follower(tmp_path, clock=clock) as follower:
        follower.poll()
        writer = open(path, "a")  # the writer keeps its file open across the rename
        os.rename(path, tmp_path / "app.jsonl.1")  # logrotate: no longer a followed name
        writer.write(doc(2))  # the old writer's last line lands in the renamed file
        writer.close()
        path.write_text(doc(3))  # and the new file takes the name
        clock.tick()
        assert sorted(numbers(follower)) == [2, 3]
        append(tmp_path / "app.jsonl.1", doc(4))  # still open: read until it has been quiet
        assert numbers(follower) == [4]
        clock.tick(QUIET_AFTER)
        assert numbers(follower) == []
        assert [f.path.name for f in follower.files.values()] == ["app.jsonl"]


def test_a_file_truncated_in_place_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(doc(1) + doc(2))
    with Follower(tmp_path, clock=Clock()) as follower:
        follower.poll()
        path.write_text(doc(3))  # copytruncate: same file, shorter
        assert numbers(follower) == [3]


def test_a_quiet_file_is_closed_and_read_again_when_it_grows(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "a.jsonl"
    path.write_text(doc(1))
    with Follower(tmp_path, clock=clock) as follower:
        follower.poll()
        clock.tick(QUIET_AFTER)
        follower.poll()
        (file,) = follower.files.values()
        assert file.fd == -1
        append(path, doc(2))
        assert numbers(follower) == []  # quiet files are looked at once per QUIET_CHECK
        clock.tick(QUIET_CHECK)
        assert numbers(follower) == [2]
        assert file.fd >= 0


def test_given_offsets_begin_there_and_files_not_given_begin_at_their_start(
    tmp_path: Path,
) -> None:
    indexed = tmp_path / "a.jsonl"
    indexed.write_text(doc(1) + doc(2))
    later = tmp_path / "b.jsonl"
    later.write_text(doc(3))  # appeared after the index was read
    offset = len(doc(1))
    with Follower(tmp_path, start={indexed: (offset, 2)}, clock=Clock()) as follower:
        found = follower.poll()
        got = sorted((c.line, json.loads(c.data)["n"]) for _, c in found.chunks)
        assert got == [(1, 3), (2, 2)]


def test_a_pretty_printed_document_that_appears_is_read_whole_once(tmp_path: Path) -> None:
    clock = Clock()
    with Follower(tmp_path, clock=clock) as follower:
        follower.poll()
        (tmp_path / "export.json").write_text(json.dumps({"resourceSpans": [], "n": 9}, indent=2))
        clock.tick()
        assert numbers(follower) == [9]
        clock.tick()
        assert numbers(follower) == []


def test_a_directory_that_does_not_exist_yet_is_followed_once_it_does(tmp_path: Path) -> None:
    clock = Clock()
    directory = tmp_path / "later"
    with Follower(directory, clock=clock) as follower:
        assert numbers(follower) == []
        directory.mkdir()
        (directory / "a.jsonl").write_text(doc(1))
        clock.tick()
        assert numbers(follower) == [1]


def test_a_backlog_is_read_in_bounded_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import exporters.reading.follow as follow

    monkeypatch.setattr(follow, "READ_LIMIT", 100)
    path = tmp_path / "a.jsonl"
    path.write_text("")
    with Follower(tmp_path, clock=Clock()) as follower:
        follower.poll()
        append(path, "".join(doc(n) for n in range(10)))
        assert drained(follower) == list(range(10))


def test_a_backlog_in_a_rotated_file_is_read_before_its_successor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import exporters.reading.follow as follow

    monkeypatch.setattr(follow, "READ_LIMIT", 100)
    first = tmp_path / "traces-20260101T000000-h-1-000.jsonl"
    first.write_text("")
    with Follower(tmp_path, clock=Clock()) as follower:
        follower.poll()
        append(first, "".join(doc(n) for n in range(10)))  # more than a poll reads
        (tmp_path / "traces-20260101T000000-h-1-001.jsonl").write_text(doc(10) + doc(11))
        # as a span's start in the first file and its end in the next must be
        assert drained(follower) == list(range(12))
