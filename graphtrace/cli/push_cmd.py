"""``graphtrace push RUN... | --all | --since DURATION``: finished runs to an OTLP endpoint."""

from __future__ import annotations

import re
import sys
import time
from typing import Annotated

import typer
from rich.markup import escape

from exporters.forwarding.endpoint import EndpointError, traces_url
from exporters.push import Outcome, Pusher, PushError
from exporters.reading.source import RunSummary, TraceSource
from graphtrace.cli.app import DEFAULT_DIR, DebugOption, TraceDirOption, app, error_boundary
from graphtrace.cli.errors import CLIError
from graphtrace.cli.trace_inputs import open_traces, resolve_run, view_console

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


@app.command("push")
@error_boundary
def push_command(
    runs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Runs to push: run ids, unique prefixes of them or of trace ids, or `last`.",
            show_default=False,
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            help="The OTLP/HTTP endpoint: a base URL (http://collector:4318) or the full "
            "traces URL. Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else "
            "OTEL_EXPORTER_OTLP_ENDPOINT. Headers: OTEL_EXPORTER_OTLP_HEADERS.",
            show_default=False,
        ),
    ] = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Every finished run in the trace dir.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="The finished runs that started within DURATION: 90s, 30m, 2h, 1d, 1h30m.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Send again what the endpoint was already sent (ignore the ledger)."
        ),
    ] = False,
    trace_dir: TraceDirOption = DEFAULT_DIR,
    debug: DebugOption = False,
) -> None:
    """Send finished runs from the trace files to an OTLP endpoint: for a backend that was
    down while they ran, or that was added later.

    What each endpoint was sent is remembered in TRACE_DIR/.push/, so a run goes once: runs
    forwarded live go only in the part that was lost; a run pushed before is skipped.

    Examples:

      graphtrace push --all --endpoint http://localhost:4318

      graphtrace push last 3fa9 --endpoint http://localhost:6006

      OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 graphtrace push --since 2h
    """
    chosen = [bool(runs), all_runs, since is not None]
    if sum(chosen) != 1:
        raise CLIError("say which runs: RUN..., --all, or --since DURATION (one of them)")
    try:
        url = traces_url(endpoint)
    except EndpointError as exc:
        raise CLIError(f"--endpoint: {exc}") from None
    if url is None:
        raise CLIError(
            "no endpoint: pass --endpoint URL, or set OTEL_EXPORTER_OTLP_ENDPOINT "
            "(or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)"
        )
    window = _duration(since) if since is not None else None
    console = view_console()
    with open_traces(trace_dir, None) as source:
        selected = _select(source, runs or [], window)
        if not selected:
            console.print(f"no runs to push in {escape(source.where)}")
            return
        pusher = Pusher(source, url, force=force)

        def report(outcome: Outcome) -> None:
            console.print(escape(_line(outcome)))

        try:
            outcomes = pusher.push(selected, report)
        except PushError as exc:
            raise CLIError(
                f"{exc} ({len(exc.done)} run(s) pushed before that; run the same command "
                "again later)",
                code=1,
            ) from None
    if pusher.ledger_error:
        print(
            f"graphtrace: warning: {pusher.ledger_error} (a later push sends them again)",
            file=sys.stderr,
        )
    pushed = [o for o in outcomes if o.pushed]
    skipped = len(outcomes) - len(pushed)
    spans = sum(o.spans for o in pushed)
    console.print(
        escape(
            f"pushed {len(pushed)} run(s), {spans:,} span(s) to {url}"
            + (f"; skipped {skipped}" if skipped else "")
        )
    )


def _select(source: TraceSource, refs: list[str], window: float | None) -> list[RunSummary]:
    """The runs named, or all of them (within ``window`` seconds), oldest first."""
    if refs:
        chosen: dict[str, RunSummary] = {}
        for ref in refs:
            run = resolve_run(source, ref)
            chosen.setdefault(run.trace_id, run)
        return list(chosen.values())
    runs = source.runs()
    if window is not None:
        cutoff = time.time_ns() - int(window * 1e9)
        runs = [r for r in runs if r.start_ns >= cutoff]
    return list(reversed(runs))


def _duration(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1h30m``: seconds."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise CLIError(f"--since: {text!r} is not a duration such as 90s, 30m, 2h, 1d or 1h30m")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _line(outcome: Outcome) -> str:
    run = outcome.run
    head = f"{run.run_id}  {run.graph}"
    if not outcome.pushed:
        return f"skipped {head}: {outcome.note}"
    what = outcome.note or f"{outcome.spans} span(s)"
    return f"pushed  {head}: {what}"
