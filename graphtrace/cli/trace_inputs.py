"""What the viewer commands share: the ``--file`` option, opening the traces, naming a run."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from exporters.reading.errors import ReaderError
from exporters.reading.source import RunSummary, TraceSource
from graphtrace.cli.errors import CLIError

__all__ = [
    "FileOption",
    "RunArgument",
    "open_traces",
    "piped_output",
    "resolve_run",
    "view_console",
]

FileOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--file",
        "-f",
        help="Read this OTLP JSON file instead of the trace dir (repeatable).",
        show_default=False,
    ),
]

RunArgument = Annotated[
    str,
    typer.Argument(
        help="A run id, a unique prefix of it or of the trace id, or `last`.", show_default=False
    ),
]


@contextlib.contextmanager
def open_traces(trace_dir: Path, files: list[Path] | None) -> Iterator[TraceSource]:
    """The traces of ``trace_dir`` (or of ``files``), their skip report printed on stderr once;
    a reader error becomes a one-line CLI error."""
    try:
        source = TraceSource(trace_dir, files or ())
    except ReaderError as exc:
        raise CLIError(str(exc)) from None
    try:
        for line in source.skip_report():
            print(f"graphtrace: {line}", file=sys.stderr)
        yield source
    except ReaderError as exc:
        raise CLIError(str(exc)) from None
    finally:
        source.close()


def resolve_run(source: TraceSource, ref: str) -> RunSummary:
    """The run ``ref`` names; not found or ambiguous becomes a CLI error listing candidates."""
    try:
        return source.resolve(ref)
    except ReaderError as exc:
        raise CLIError(str(exc)) from None


def view_console(*, record: bool = False) -> Console:
    """A console for tables: the terminal's width, or 160 columns when output is piped."""
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
    return Console(highlight=False, width=width, record=record)


@contextlib.contextmanager
def piped_output() -> Iterator[None]:
    """Stop quietly when the reader of our output goes away (``graphtrace show last | head``)."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        # Later flushes (at exit) would fail again: point stdout at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
