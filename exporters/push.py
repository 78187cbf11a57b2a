"""``graphtrace push``: finished runs from the trace files to an OTLP endpoint, each once.

Runs are read through :mod:`exporters.reading` (pending records folded away, ``forward.lost``
records left out), turned back into SDK spans (:mod:`exporters.forwarding.readable`) and sent
in batches through the SDK's ``OTLPSpanExporter``. The endpoint's ledger
(:mod:`exporters.forwarding.ledger`) decides what goes:

- a run pushed before, with the same spans: skipped;
- a run the live forwarder delivered: skipped, or only the spans its ``forward.lost`` records
  list for this endpoint when some were lost;
- anything else (the endpoint was down, or added later): the whole run.

A run still running is skipped: push it once it has finished. ``force`` ignores the ledger.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter

from exporters.forwarding.ledger import Known, Ledger
from exporters.forwarding.loss import is_loss_record, run_loss
from exporters.forwarding.readable import SpanRebuilder
from exporters.forwarding.sender import Sender
from exporters.reading.assemble import RUNNING, RunTrace
from exporters.reading.source import RunSummary, TraceSource

__all__ = ["Outcome", "PushError", "Pusher", "run_digest"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one run."""

    run: RunSummary
    pushed: bool
    spans: int  # spans sent (0 when skipped)
    note: str  # why it was skipped, or what part of it was sent


class PushError(Exception):
    """The endpoint did not take a batch; ``done`` lists the runs delivered before that."""

    def __init__(self, message: str, done: list[Outcome]) -> None:
        super().__init__(message)
        self.done = done


@dataclass(slots=True)
class _Planned:
    run: RunSummary
    spans: list[ReadableSpan]
    digest: str
    total: int  # spans in the run (the digest covers all of them)
    note: str


class Pusher:
    """Pushes runs of ``source`` to ``endpoint`` (a full traces URL).

    Example::

        with TraceSource(Path(".graphtrace")) as source:
            pusher = Pusher(source, "http://localhost:4318/v1/traces")
            outcomes = pusher.push(reversed(source.runs()), report=print)
    """

    def __init__(
        self,
        source: TraceSource,
        endpoint: str,
        *,
        headers: dict[str, str] | None = None,
        force: bool = False,
        exporter: SpanExporter | None = None,
        batch_size: int = 512,
        timeout: float | None = None,
    ) -> None:
        self.sender = Sender(endpoint, headers=headers, timeout=timeout, exporter=exporter)
        self.source = source
        self.endpoint = endpoint
        self.force = force
        self.batch_size = batch_size
        self.ledger = Ledger(source.trace_dir, endpoint)
        self.rebuilder = SpanRebuilder()
        self.ledger_error: str | None = None  # the ledger could not be written

    def push(
        self, runs: Iterable[RunSummary], report: Callable[[Outcome], None] = lambda o: None
    ) -> list[Outcome]:
        """Push ``runs`` in order; ``report`` hears of each as it is settled.

        Raises :class:`PushError` at the first batch the endpoint refuses (nothing after it
        is tried: the endpoint is down or refuses us, and the rest would fare the same).
        """
        known = {} if self.force else self.ledger.load()
        outcomes: list[Outcome] = []
        group: list[_Planned] = []
        size = 0

        def settle(outcome: Outcome) -> None:
            outcomes.append(outcome)
            report(outcome)

        try:
            for run in runs:
                planned = self._plan(run, known.get(run.trace_id))
                if isinstance(planned, Outcome):
                    settle(planned)
                    continue
                group.append(planned)
                size += len(planned.spans)
                if size >= self.batch_size:
                    for outcome in self._send(group, outcomes):
                        settle(outcome)
                    group, size = [], 0
            for outcome in self._send(group, outcomes):
                settle(outcome)
        finally:
            self.sender.shutdown()
        return outcomes

    def _plan(self, run: RunSummary, known: Known | None) -> _Planned | Outcome:
        if run.status == RUNNING:
            return Outcome(run, False, 0, "still running: push it when it has finished")
        trace = self.source.load(run)
        spans = [s for s in trace.spans if not is_loss_record(s.name, s.attributes)]
        digest = run_digest(trace)
        if known is not None and known.digest == digest:
            return Outcome(run, False, 0, f"already pushed{_when(known.pushed_at)}")
        rebuilt = [self.rebuilder.span(s) for s in spans]
        if known is not None and known.live and known.digest is None:
            loss = run_loss(trace, self.endpoint)
            if not loss.count:
                return Outcome(run, False, 0, "already forwarded live")
            if loss.complete:
                lost = [s for s in rebuilt if _hex_id(s) in loss.ids]
                note = f"the {len(lost)} span(s) lost while forwarding live"
                return _Planned(run, lost, digest, len(rebuilt), note)
        return _Planned(run, rebuilt, digest, len(rebuilt), "")

    def _send(self, group: list[_Planned], done: list[Outcome]) -> list[Outcome]:
        spans = [span for planned in group for span in planned.spans]
        for start in range(0, len(spans), self.batch_size):
            reason = self.sender.export(spans[start : start + self.batch_size])
            if reason is not None:
                runs = ", ".join(p.run.run_id for p in group[:3]) + (
                    ", ..." if len(group) > 3 else ""
                )
                raise PushError(
                    f"{self.endpoint} did not take the spans of run(s) {runs}: {reason}",
                    [o for o in done if o.pushed],
                )
        try:
            self.ledger.record_push((p.run.trace_id, p.digest, p.total) for p in group)
        except OSError as exc:  # delivered all the same; only the next push will not know it
            self.ledger_error = f"cannot record what was pushed in {self.ledger.path}: {exc}"
        return [Outcome(p.run, True, len(p.spans), p.note) for p in group]


def run_digest(trace: RunTrace) -> str:
    """A fingerprint of a run's spans (ids, ends, statuses): changes when its files do."""
    h = hashlib.sha256()
    for span in sorted(trace.spans, key=lambda s: s.span_id):
        if is_loss_record(span.name, span.attributes):
            continue
        h.update(f"{span.span_id}:{span.end_ns}:{span.status}\n".encode())
    return h.hexdigest()[:24]


def _hex_id(span: ReadableSpan) -> str:
    return span.context.span_id.to_bytes(8, "big").hex() if span.context else ""


def _when(at: float | None) -> str:
    if at is None:
        return ""
    return f" on {datetime.fromtimestamp(at, UTC).astimezone():%Y-%m-%d %H:%M}"
