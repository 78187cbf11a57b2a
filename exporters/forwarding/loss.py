"""``forward.lost`` records: what could not be forwarded, written into the trace itself.

When spans of a trace cannot be forwarded (the endpoint refused them, was down, or the queue in
front of it was full), a zero-length ``forward.lost`` span is written to the local file in that
trace, under the run span when it was among the lost (else under the parent of the first lost
span), with:

- ``graphtrace.forward.lost``: how many of the trace's spans this record covers;
- ``graphtrace.forward.endpoint``: the traces URL they were meant for;
- ``graphtrace.forward.reason``: why (``connection refused``, ``HTTP 503``, ``queue full``…);
- ``graphtrace.forward.lost_span_ids``: the hex ids of the lost (final) spans, and
  ``graphtrace.forward.ids_complete``: False when there were too many to list.

A trace can have several such records (one per failed batch); their counts add up. ``show``
displays them in the run's tree; ``graphtrace push`` re-sends exactly the listed spans of a run
whose run span did reach the endpoint. The records are never forwarded themselves.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from exporters.otlp_json import PENDING_ATTRIBUTE

if TYPE_CHECKING:  # the reader is for push; the live path need not import it
    from exporters.reading.assemble import RunTrace

__all__ = [
    "ENDPOINT",
    "IDS_COMPLETE",
    "LOST",
    "LOST_IDS",
    "LOST_SPAN_NAME",
    "REASON",
    "LossTally",
    "RunLoss",
    "is_loss_record",
    "run_loss",
]

LOST_SPAN_NAME: Final = "forward.lost"
LOST: Final = "graphtrace.forward.lost"
ENDPOINT: Final = "graphtrace.forward.endpoint"
REASON: Final = "graphtrace.forward.reason"
LOST_IDS: Final = "graphtrace.forward.lost_span_ids"
IDS_COMPLETE: Final = "graphtrace.forward.ids_complete"

_IDS_PER_RECORD: Final = 4096  # beyond this a record counts its spans without listing them
_SCOPE: Final = InstrumentationScope("graphtrace.forwarding")
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)


@dataclass(slots=True)
class _TraceLoss:
    resource: Resource
    anchor: SpanContext | None  # the record's parent
    anchor_is_root: bool
    count: int = 0
    ids: list[int] = field(default_factory=list)
    complete: bool = True


class LossTally:
    """Lost spans per trace until :meth:`records` turns them into ``forward.lost`` records.

    ``add`` may be called from any thread (the event loop drops spans when the queue is full,
    the forwarding thread loses whole batches); it is cheap: a dict entry and an int per span.
    """

    def __init__(self) -> None:
        self.total = 0
        self._lock = threading.Lock()
        self._traces: dict[int, _TraceLoss] = {}
        self._reasons: list[str] = []

    def add(self, spans: Iterable[ReadableSpan], reason: str) -> int:
        """Count ``spans`` as lost for ``reason``; returns how many there were."""
        added = 0
        with self._lock:
            if reason not in self._reasons:
                self._reasons.append(reason)
            for span in spans:
                added += 1
                self._add(span)
            self.total += added
        return added

    def _add(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is None:
            return
        parent = span.parent
        root = parent is None or parent.is_remote
        entry = self._traces.get(ctx.trace_id)
        if entry is None:
            anchor = ctx if root else parent
            entry = self._traces[ctx.trace_id] = _TraceLoss(span.resource, anchor, root)
        elif root and not entry.anchor_is_root:
            entry.anchor, entry.anchor_is_root = ctx, True  # under the run span, when known
        entry.count += 1
        if (span.attributes or {}).get(PENDING_ATTRIBUTE) is True:
            return  # a pending record: push never sends those, so its id does not matter
        if len(entry.ids) < _IDS_PER_RECORD:
            entry.ids.append(ctx.span_id)
        else:
            entry.complete = False

    def records(self, endpoint: str) -> list[ReadableSpan]:
        """``forward.lost`` records for everything counted since the last call."""
        with self._lock:
            traces, self._traces = self._traces, {}
            reasons, self._reasons = self._reasons, []
        if not traces:
            return []
        now = time.time_ns()
        reason = "; ".join(reasons)
        return [
            _record(trace_id, entry, endpoint, reason, now) for trace_id, entry in traces.items()
        ]


def _record(trace_id: int, entry: _TraceLoss, endpoint: str, reason: str, now: int) -> ReadableSpan:
    attributes: dict[str, Any] = {
        LOST: entry.count,
        ENDPOINT: endpoint,
        REASON: reason,
        LOST_IDS: tuple(i.to_bytes(8, "big").hex() for i in entry.ids),
        IDS_COMPLETE: entry.complete,
    }
    return ReadableSpan(
        name=LOST_SPAN_NAME,
        context=SpanContext(trace_id, random.getrandbits(64) or 1, False, _SAMPLED),
        parent=entry.anchor,
        resource=entry.resource,
        attributes=attributes,
        kind=SpanKind.INTERNAL,
        start_time=now,
        end_time=now,
        instrumentation_scope=_SCOPE,
    )


def is_loss_record(name: str, attributes: Mapping[str, Any]) -> bool:
    """Whether a span read back from a file is a ``forward.lost`` record."""
    return name == LOST_SPAN_NAME and LOST in attributes


@dataclass(slots=True)
class RunLoss:
    """What the ``forward.lost`` records of one run say about one endpoint."""

    count: int = 0
    ids: set[str] = field(default_factory=set)
    complete: bool = True  # every lost final span is listed in ``ids``


def run_loss(trace: RunTrace, endpoint: str) -> RunLoss:
    """Add up the ``forward.lost`` records of ``trace`` that name ``endpoint``."""
    out = RunLoss()
    for span in trace.spans:
        attributes = span.attributes
        if not is_loss_record(span.name, attributes) or attributes.get(ENDPOINT) != endpoint:
            continue
        count = attributes.get(LOST)
        out.count += count if isinstance(count, int) else 0
        ids = attributes.get(LOST_IDS)
        if isinstance(ids, list):
            out.ids.update(str(i) for i in ids)
        if attributes.get(IDS_COMPLETE) is not True:
            out.complete = False
    return out
