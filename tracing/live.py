"""The span processor that makes traces live: a record at each span's start and end.

``on_start`` queues the started span (written as a zero-length ``pending`` record, with the
attributes it started with); ``on_end`` queues the finished span. A writer thread drains both
queues every ``flush_interval`` seconds, encodes them as OTLP JSON lines and appends them to the
trace file, so a reader sees a span's start and its end within about 100 ms. The event loop
appends to a deque; encoding and I/O happen off the loop. Within one write, the pending records
come before the ends.

Nothing is dropped silently: when the queue is full, the producer waits for the writer
(back-pressure); spans that cannot be written (the disk refuses) are counted in ``lost``.

Once a single pass has many records to write (tens of thousands of spans a second), the writer
starts a helper process that encodes them on another core (:mod:`exporters.encoder_process`), so
the encoding no longer competes with the event loop for the GIL; the writer still writes every
line itself. From then on the thread that ends the spans (the loop's) turns every hundred or so
queued records into a frame for the helper as it goes, cheaply and while they are in cache, and
the writer thread moves bytes (see ``_frame_queue``). ``GRAPHTRACE_ENCODER_PROCESS=0`` keeps all
encoding in the writer thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from exporters.encoder_process import EncoderProcess, encode_frames_here
from exporters.file import JsonlFileWriter
from exporters.otlp_json import Started, encode_batch
from exporters.wire import WireError, WireWriter

log = logging.getLogger("graphtrace")

_LINE_SPANS = 512  # spans per OTLP line: big enough to amortise, small enough to stream
# written spans kept for the producer to release (see LiveSpanProcessor._released); past this
# many (a burst that ends with few spans starting) the writer releases them itself, at once
_RELEASED_KEPT = 8192
_BATCH = _LINE_SPANS * 16  # ends per write; the starts before them come along whatever their number
# records in one pass that make the writer start an encoder process: about 20,000 a second
_ENCODER_PROCESS_AFTER = 1024
# ends queued that make the producer frame the queue for the encoder process (see _frame_queue)
_FRAME_ENDS = 128


class LiveSpanProcessor(SpanProcessor):
    """Writes every span twice, at start (pending) and at end, through one writer thread."""

    def __init__(
        self,
        writer: JsonlFileWriter,
        *,
        flush_interval: float = 0.05,
        max_queue: int = 200_000,
        encoder_process: bool | None = None,
    ) -> None:
        """``encoder_process``: True starts the helper with the first pass, False never; None
        (the default) once a pass has many records, unless ``GRAPHTRACE_ENCODER_PROCESS=0``."""
        self.writer = writer
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.lost = 0
        self.written = 0
        # Starts and ends queue apart, so that a start costs the loop no allocation: a LeanSpan
        # is queued as it is (its start attributes stay put, copy on write). A span's start is
        # always queued before its end, which the writer relies on (see _take).
        self._started: deque[ReadableSpan | Started] = deque()
        self._ended: deque[ReadableSpan] = deque()
        # Written spans, released by the producer one per span it starts rather than thousands
        # at once by the writer. CPython's GC runs a young collection once allocations minus
        # deallocations since the last one reach a threshold, and that count never goes below
        # zero: a batch freed at once soon finds it at zero and is mostly not counted, while
        # every span the loop makes is. Released one for one, they cancel out, and a traced
        # pool has half the collections (each a pause of the loop).
        self._released: deque[ReadableSpan] = deque()
        self._wake = threading.Event()
        self._drained = threading.Condition()
        self._passes = 0  # writer passes completed, counted under _drained
        self._closed = False
        self._error_logged = False
        # records in one pass that start the encoder process; None: never
        self._encoder_after: int | None
        if not hasattr(writer, "write_encoded"):  # a writer that takes only lines of text
            self._encoder_after = None
        elif encoder_process is None:
            wanted = os.environ.get("GRAPHTRACE_ENCODER_PROCESS", "").strip().lower()
            off = wanted in ("0", "off", "false", "no")
            self._encoder_after = None if off else _ENCODER_PROCESS_AFTER
        else:
            self._encoder_after = 1 if encoder_process else None
        self._encoder: EncoderProcess | None = None
        # Frames made by producers for the encoder process (see _frame_queue), in the order
        # their records were taken; each entry is (frame, records) or, for a batch the wire
        # does not carry, (None, (batch, starts)). Taking records and queueing them happen
        # under _framing, so entries stay in order and the writer's own takes come after.
        self._frames: deque[tuple[bytes | None, Any]] = deque()
        self._framed = 0  # records in _frames
        self._framing = threading.Lock()
        self._producer_wire: WireWriter | None = None  # set once the encoder process answers
        self.producer_frames = 0
        """Frames the threads that end spans made for the encoder process (see _frame_queue)."""
        self._thread = threading.Thread(target=self._run, name="graphtrace-writer", daemon=True)
        self._thread.start()

    # -- producer side (any thread, usually the event loop) ---------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if getattr(span, "_start_attributes", None) is not None:
            self._started.append(span)
        else:  # another provider's span: its attributes change in place, so copy them now
            self._started.append(Started(span, dict(span.attributes or {})))
        if self._released:
            try:
                self._released.popleft()
            except IndexError:  # another producer thread, or shutdown, took the last one
                pass
        if len(self._started) + len(self._ended) + self._framed >= self.max_queue:
            self._back_pressure()

    def on_end(self, span: ReadableSpan) -> None:
        self._ended.append(span)
        if len(self._ended) >= _FRAME_ENDS and self._producer_wire is not None:
            self._frame_queue()
        if len(self._started) + len(self._ended) + self._framed >= self.max_queue:
            self._back_pressure()

    def _frame_queue(self) -> None:
        """Frame the queued records for the encoder process here, on the producer's thread.

        Once an encoder process encodes, the writer thread's remaining work is reading the
        spans into frames, and that needs the GIL: done there, every 50 ms, it stops the event
        loop for a whole batch, and reads spans long gone from the CPU's caches. Done here every
        ``_FRAME_ENDS`` ends, the spans are still in cache and the loop is never held up by
        the writer; a traced pool runs 7-20 % faster (bench/RESULTS.md). The writer only moves
        bytes: to the helper, back, and into the file. The spans framed are freed here too.

        Never waits: while the writer takes its own batch, the records stay queued for it.
        """
        wire = self._producer_wire
        if wire is None or not self._framing.acquire(blocking=False):
            return
        try:
            batch, starts = self._take()
            if not batch:
                return
            try:
                self._frames.append((wire.frame(batch, starts), len(batch)))
                self.producer_frames += 1
            except WireError:  # a record only this process encodes: the writer does it
                self._frames.append((None, (batch, starts)))
            self._framed += len(batch)
        finally:
            self._framing.release()

    @property
    def queued(self) -> int:
        """Records waiting for the writer."""
        return len(self._started) + len(self._ended) + self._framed

    def write(self, record: ReadableSpan) -> None:
        """Append a record that is not a span's end to the file now (see :meth:`write_many`)."""
        self.write_many([record])

    def write_many(self, records: Sequence[ReadableSpan]) -> None:
        """Append records that are not a span's end (stall snapshots) to the file now.

        Encoded and written on the calling thread (the watchdog's, never the loop's), ahead of
        whatever is queued: a snapshot matters while the run is stuck, and a writer that is
        behind a busy loop would hold it back by as much. One write for all of them, as each
        write gives the GIL away. The file writer's lock keeps lines whole; records the disk
        refuses are counted in ``lost``, as queued spans are.
        """
        if not records:
            return
        if self._closed:
            self.lost += len(records)
            return
        try:
            self.writer.write_lines(
                [
                    encode_batch(records[i : i + _LINE_SPANS])
                    for i in range(0, len(records), _LINE_SPANS)
                ]
            )
            self.written += len(records)
        except Exception as exc:
            self.lost += len(records)
            self._log_once(f"graphtrace: could not write records to {self.writer.path}: {exc}")

    def _back_pressure(self) -> None:
        """Wait for the writer to catch up; if it cannot (it died), count the spans as lost."""
        self._wake.set()
        deadline = time.monotonic() + 10.0
        with self._drained:
            while self.queued >= self.max_queue and self._thread.is_alive():
                if not self._drained.wait(timeout=max(0.0, deadline - time.monotonic())):
                    break
        if self.queued >= self.max_queue:
            self._discard(self.queued - self.max_queue // 2, "the writer is not keeping up")

    def _discard(self, count: int, reason: str) -> None:
        # pending records go first: a span's end record says everything its start did
        for queue in (self._started, self._ended):
            while count > 0:
                try:
                    queue.popleft()
                except IndexError:
                    break
                count -= 1
                self.lost += 1
        with self._framing:
            while count > 0 and self._frames:
                dropped = _records_in(self._frames.popleft())
                self._framed -= dropped
                count -= dropped
                self.lost += dropped
        self._log_once(f"graphtrace: dropped spans because {reason}; lost so far: {self.lost}")

    # -- writer side ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self._write_pending()
            with self._drained:
                self._passes += 1
                self._drained.notify_all()
            if self._closed and not self.queued:
                return

    def _write_pending(self) -> None:
        while True:
            # what producers framed, then what is left, taken after it: the file keeps order
            with self._framing:
                entries = list(self._frames)
                self._frames.clear()
                self._framed = 0
                batch, starts = self._take()
            if not entries and not batch:
                return
            # one round trip to the helper for all the frames in hand: each trip hands the GIL
            # back and forth with the loop
            frames: list[bytes] = []
            records = 0
            for frame, content in entries:
                if frame is None:  # a batch the wire does not carry, written in its place
                    self._write_frames(frames, records)
                    frames, records = [], 0
                    self._write_batch(*content)
                else:
                    frames.append(frame)
                    records += content
                    if records >= _BATCH:  # a writer far behind: requests of bounded size
                        self._write_frames(frames, records)
                        frames, records = [], 0
            if frames and batch and self._encoder is not None:
                try:
                    frames.append(self._encoder.frame(batch, starts))
                except WireError:
                    pass
                else:
                    records += len(batch)
                    self._release(batch, starts)
                    batch = []
            self._write_frames(frames, records)
            if batch:
                self._write_batch(batch, starts)

    def _write_batch(self, batch: list[Any], starts: int) -> None:
        try:
            self._encode_and_write(batch, starts)
            self.written += len(batch)
        except Exception as exc:  # the disk refused: count, tell once, keep going
            self.lost += len(batch)
            self._log_once(f"graphtrace: could not write spans to {self.writer.path}: {exc}")
        self._release(batch, starts)

    def _release(self, batch: list[Any], starts: int) -> None:
        if len(self._released) < _RELEASED_KEPT and not self._closed:
            self._released.extend(batch[starts:])  # the ends: each span's last reference

    def _write_frames(self, frames: list[bytes], records: int) -> None:
        """Write frames: encoded by the helper, or here if it is gone."""
        if not frames:
            return
        try:
            encoder = self._encoder
            data = encoder.encode_frames(frames, records, _LINE_SPANS) if encoder else None
            if data is not None:
                self.writer.write_encoded(data)
            else:
                self._encoder_failed()
                self.writer.write_lines(encode_frames_here(frames, _LINE_SPANS))
            self.written += records
        except Exception as exc:  # the disk refused: count, tell once, keep going
            self.lost += records
            self._log_once(f"graphtrace: could not write spans to {self.writer.path}: {exc}")

    def _encoder_failed(self) -> None:
        if self._encoder is not None and self._encoder.failed:
            self._encoder = None
        if self._encoder is None:
            self._producer_wire = None  # producers stop framing; the writer encodes

    def _encode_and_write(self, batch: list[Any], starts: int) -> None:
        """Write the batch (its first ``starts`` records are starts) as OTLP JSON lines,
        encoded by the encoder process when there is one and it takes the batch, else here."""
        encoder = self._encoder
        if encoder is None and self._encoder_after is not None:
            if len(batch) >= self._encoder_after:
                self._encoder_after = None  # one try: a helper that failed is not restarted
                encoder = self._encoder = EncoderProcess.spawn()
        if encoder is not None:
            data = encoder.encode(batch, starts, _LINE_SPANS)
            if data is not None:
                self.writer.write_encoded(data)
                if self._producer_wire is None and not self._closed:
                    self._producer_wire = WireWriter()  # the helper answers: producers frame
                return
            self._encoder_failed()
        for i in range(starts):
            item = batch[i]
            if type(item) is not Started:  # a LeanSpan, with the attributes it started with
                batch[i] = Started(item, item._start_attributes)
        self.writer.write_lines(
            [encode_batch(batch[i : i + _LINE_SPANS]) for i in range(0, len(batch), _LINE_SPANS)]
        )

    @property
    def encoder_process(self) -> EncoderProcess | None:
        """The helper process encoding for this writer, once started (None before, or after
        it failed)."""
        return self._encoder

    def _take(self) -> tuple[list[Any], int]:
        """Up to a batch of queued records, every start before the ends, and how many starts:
        a start is the span as queued (a LeanSpan, whose start attributes stay put) or a
        :class:`Started`.

        The ends are counted before the starts: a span's start is queued before its end, so
        the start of every end taken is taken too (or was written by an earlier pass).
        """
        ended, started = self._ended, self._started
        ends = min(len(ended), _BATCH)
        starts = len(started) if ends else min(len(started), _BATCH)
        batch: list[Any] = [started.popleft() for _ in range(starts)]
        batch += [ended.popleft() for _ in range(ends)]
        return batch, starts

    def _log_once(self, message: str) -> None:
        if not self._error_logged:
            self._error_logged = True
            log.error(message)

    # -- lifecycle --------------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Write everything queued so far; True when done within the timeout."""
        deadline = time.monotonic() + timeout_millis / 1000.0
        with self._drained:
            # Counting spans races with a batch the writer has taken but not yet counted; a
            # pass that starts after this call drains everything queued before it. The pass
            # under way now may have started earlier, so wait for the one after it.
            target = self._passes + 2
            while self._passes < target and self._thread.is_alive():
                self._wake.set()
                if not self._drained.wait(timeout=max(0.0, deadline - time.monotonic())):
                    return False
        return True

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._producer_wire = None
        self._wake.set()
        self._thread.join(timeout=30)
        if self.queued:  # the thread gave up: write what is left from here
            self._write_pending()
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None
        self._released.clear()
        self.writer.close()

    def stats(self) -> dict[str, Any]:
        return {"written": self.written, "lost": self.lost, "queued": self.queued}


def _records_in(entry: tuple[bytes | None, Any]) -> int:
    frame, records = entry
    return records if frame is not None else len(records[0])  # type: ignore[no-any-return]
