"""``graphtrace export RUN --format chrome|otlp``: one run for other tools."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from exporters.reading.otlp_out import otlp_document
from graphtrace.cli.app import DEFAULT_DIR, DebugOption, TraceDirOption, app, error_boundary
from graphtrace.cli.trace_inputs import (
    FileOption,
    RunArgument,
    open_traces,
    piped_output,
    resolve_run,
)
from viewer.chrome import chrome_trace


class ExportFormat(StrEnum):
    """What ``export`` writes."""

    chrome = "chrome"
    otlp = "otlp"


@app.command("export")
@error_boundary
def export_command(
    run: RunArgument,
    format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="chrome: trace-event JSON for Perfetto or chrome://tracing; "
            "otlp: the run's spans alone as one OTLP JSON TracesData document.",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here instead of standard output."),
    ] = None,
    files: FileOption = None,
    trace_dir: TraceDirOption = DEFAULT_DIR,
    debug: DebugOption = False,
) -> None:
    """Export one run as Chrome trace-event JSON or as OTLP JSON.

    Examples:

      graphtrace export last --format chrome -o run.json   # open in ui.perfetto.dev

      graphtrace export 3fa9 --format otlp > run.otlp.json
    """
    with open_traces(trace_dir, files) as source:
        trace = source.load(resolve_run(source, run))
    document: Any = chrome_trace(trace) if format is ExportFormat.chrome else otlp_document(trace)
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    if output is None:
        with piped_output():
            print(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
