"""``graphtrace replay``: a recorded run played back through the live view on a scaled clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from rich.console import Console
from rich.live import Live

from exporters.reading.assemble import RunTrace, TreeSpan
from viewer.details import error_text
from viewer.format import duration
from viewer.live import LiveModel, LiveSpan, event_line, render_live

__all__ = ["ReplayEvent", "replay", "replay_events"]

_FRAME_S: Final = 1 / 15  # display refresh while waiting for the next event


@dataclass(frozen=True, slots=True)
class ReplayEvent:
    """A span starting or ending at ``at_ns`` (recorded time)."""

    at_ns: int
    starts: bool
    span: TreeSpan


def replay_events(trace: RunTrace) -> list[ReplayEvent]:
    """Starts and ends in recorded order; at equal times, parents start before their children
    and children end before their parents. Open spans end (as interrupted or still running)
    where the recording stops."""
    depth: dict[int, int] = {}
    for span in trace.root.walk():
        for child in span.children:
            depth[id(child)] = depth.get(id(span), 0) + 1
    keyed: list[tuple[int, int, int, ReplayEvent]] = []
    for span in trace.spans:
        level = depth.get(id(span), 0)
        keyed.append((span.start_ns, 1, level, ReplayEvent(span.start_ns, True, span)))
        if span.status != "running":  # a span still running has not ended in the recording
            keyed.append((span.end_ns, 0, -level, ReplayEvent(span.end_ns, False, span)))
    keyed.sort(key=lambda item: item[:3])
    return [item[3] for item in keyed]


def replay(
    trace: RunTrace,
    console: Console,
    *,
    speed: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> LiveModel:
    """Play ``trace`` back: in a terminal as a live view, else as one line per event.

    ``speed`` 2 plays twice as fast. Returns the model as it stands at the end.
    """
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    model = LiveModel()
    events = replay_events(trace)
    origin = trace.root.start_ns
    began = clock()

    def wait_until(at_ns: int, frame: Callable[[int], None] | None) -> None:
        target = began + (at_ns - origin) / 1e9 / speed
        while True:
            left = target - clock()
            if left <= 0:
                return
            if frame is not None:
                # The recorded time shown while waiting advances with the wall clock.
                frame(origin + int((clock() - began) * speed * 1e9))
            sleep(min(left, _FRAME_S))

    if console.is_terminal:
        with Live(console=console, refresh_per_second=15, transient=False) as live:

            def frame(now_ns: int) -> None:
                live.update(render_live(model, now_ns))

            for event in events:
                wait_until(event.at_ns, frame)
                _apply(model, event)
                frame(event.at_ns)
    else:
        for event in events:
            wait_until(event.at_ns, None)
            live_span = _apply(model, event)
            if live_span is not None:
                console.print(event_line(live_span, origin, started=event.starts), highlight=False)
    console.print(
        f"replayed {trace.run_id} ({trace.graph}): {trace.status} after "
        f"{duration(trace.duration_ns)}, played at ×{speed:g}",
        highlight=False,
    )
    return model


def _apply(model: LiveModel, event: ReplayEvent) -> LiveSpan | None:
    span = event.span
    trace_id = span.record.trace_id
    if event.starts:
        return model.started(
            trace_id, span.span_id, span.parent_id, span.name, span.start_ns, span.attributes
        )
    run = model.runs.get(trace_id)
    live_span = run.open.get(span.span_id) if run is not None else None
    status = span.status
    message = error_text(span) if span.status == "error" else ""
    model.ended(trace_id, span.span_id, span.end_ns, status=status, status_message=message)
    return live_span
