"""The typer application, shared options and the error boundary every command goes through."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from graphtrace.cli.errors import CLIError
from graphtrace.errors import GraphDefinitionError, InputError
from tracing.setup import DEFAULT_TRACE_DIR, TRACE_DIR_ENV

app = typer.Typer(
    name="graphtrace",
    help=(
        "Run agent graphs concurrently and trace every run, node, dep, LLM call and gate as "
        "OpenTelemetry spans in local OTLP JSON files.\n\n"
        "Start with the built-in demo:  graphtrace run graphtrace.demo:graph --auto-answer"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

TraceDirOption = Annotated[
    Path,
    typer.Option(
        "--trace-dir",
        envvar=TRACE_DIR_ENV,
        help=f"Where the trace files are (env {TRACE_DIR_ENV}).",
        show_default=True,
    ),
]
DEFAULT_DIR = Path(DEFAULT_TRACE_DIR)

DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show the full traceback when something goes wrong.")
]

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``graphtrace: error: message`` on stderr; returns the Exit to raise."""
    print(f"graphtrace: error: {message}", file=sys.stderr)
    return typer.Exit(code)


def error_boundary(fn: F) -> F:
    """Turn the errors a user can cause into one line and exit code 2 (traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug")) or bool(os.environ.get("GRAPHTRACE_DEBUG"))
        try:
            return fn(*args, **kwargs)
        except (CLIError, GraphDefinitionError, InputError, OSError) as exc:
            if debug:
                raise
            code = exc.code if isinstance(exc, CLIError) else 2
            raise fail(str(exc), code) from None

    return wrapper  # type: ignore[return-value]


# The commands register themselves on `app` when imported.
from graphtrace.cli import (  # noqa: E402, F401
    answer_cmd,
    export_cmd,
    gates_cmd,
    graph_cmd,
    ls_cmd,
    push_cmd,
    replay_cmd,
    run_cmd,
    show_cmd,
    tail_cmd,
)
