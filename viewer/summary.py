"""Counts over one run's spans (steps, LLM calls, tokens, gates) and status colours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from exporters.reading.assemble import RunTrace
from viewer import keys
from viewer.details import is_snapshot, tokens_of

__all__ = ["STATUS_STYLE", "RunCounts", "run_counts"]

STATUS_STYLE: Final = {
    "ok": "green",
    "completed": "green",
    "error": "red",
    "failed": "red",
    "timed_out": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "interrupted": "magenta",
}


@dataclass(slots=True)
class RunCounts:
    """What the header of ``show`` says about a run."""

    spans: int = 0
    steps: int = 0
    llm_calls: int = 0
    tokens: int = 0
    gates: int = 0
    gate_wait_ns: int = 0
    errors: int = 0


def run_counts(trace: RunTrace) -> RunCounts:
    """Count the run's spans by kind (snapshots left out)."""
    counts = RunCounts()
    for span in trace.spans:
        if is_snapshot(span):
            continue
        counts.spans += 1
        attributes = span.attributes
        step = attributes.get(keys.NODE_STEP)
        if isinstance(step, int) and not isinstance(step, bool):
            counts.steps = max(counts.steps, step)
        if keys.GEN_AI_OPERATION in attributes:
            counts.llm_calls += 1
            tokens_in, tokens_out = tokens_of(attributes)
            counts.tokens += tokens_in + tokens_out
        if keys.GATE_ID in attributes:
            counts.gates += 1
            wait = attributes.get(keys.GATE_WAIT_MS)
            if isinstance(wait, int | float) and not isinstance(wait, bool):
                counts.gate_wait_ns += int(wait * 1e6)
            else:
                counts.gate_wait_ns += span.duration_ns
        if span.status == "error":
            counts.errors += 1
    return counts
