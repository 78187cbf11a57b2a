"""``graphtrace answer RUN [GATE] VALUE``: answer a waiting gate from a script or a terminal."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from graphtrace.cli.app import DEFAULT_DIR, DebugOption, TraceDirOption, app, error_boundary, fail
from graphtrace.cli.errors import CLIError
from graphtrace.cli.trace_inputs import RunArgument
from graphtrace.control.client import ACCEPTED, DEFAULT_TIMEOUT, REFUSED, answer

__all__ = ["parse_value"]


@app.command("answer")
@error_boundary
def answer_command(
    run: RunArgument,
    gate_and_value: Annotated[
        list[str],
        typer.Argument(
            metavar="[GATE] VALUE",
            help="The gate id (Node.field; leave it out when the run waits at one gate only) "
            'and the answer: JSON where it parses (true, 3, {"a": 1}), else the text itself.',
            show_default=False,
        ),
    ],
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.001, help="Seconds to wait for the runtime's reply."),
    ] = DEFAULT_TIMEOUT,
    trace_dir: TraceDirOption = DEFAULT_DIR,
    debug: DebugOption = False,
) -> None:
    """Answer a gate a run waits at, in whichever process runs it (through its control socket).

    Exit 0 when the answer was accepted; 1 when it was refused (not a valid value for the
    field, no such gate, already answered; the reason is printed); 2 when no live process holds
    the run. `graphtrace gates` lists what waits. A value starting with '-' goes after '--'.

    Examples:

      graphtrace answer 3f9c0a1b2d4e true

      graphtrace answer last Escalate.approved false

      graphtrace answer 3f9c Review.amount -- -5
    """
    if len(gate_and_value) > 2:
        raise CLIError(
            f"expected [GATE] VALUE, got {len(gate_and_value)} arguments: quote a VALUE with "
            "spaces ('\"two words\"' or 'two words')"
        )
    gate = gate_and_value[0] if len(gate_and_value) == 2 else None
    value = parse_value(gate_and_value[-1])
    outcome = answer(trace_dir, run, gate, value, timeout=timeout)
    if outcome.code == ACCEPTED:
        shown = json.dumps(outcome.value, ensure_ascii=False)
        typer.echo(f"run {outcome.run_id} gate {outcome.gate_id}: accepted {shown}")
        return
    if outcome.code == REFUSED:
        typer.echo(f"graphtrace: refused: {outcome.message}", err=True)
        raise typer.Exit(REFUSED)
    raise fail(outcome.message, outcome.code)


def parse_value(text: str) -> Any:
    """VALUE as JSON where it parses (``true``, ``3``, ``{"a": 1}``), else the text as given."""
    try:
        return json.loads(text)
    except ValueError:
        return text
