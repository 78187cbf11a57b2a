"""CPython 3.13's young-generation GC threshold while graphtrace runs are in flight.

A :class:`~graphtrace.RunPool`, or many ``Graph.arun`` calls gathered at once, keeps hundreds of
runs in flight. Their coroutines, nodes and spans live for tens of milliseconds: long enough to
survive a young collection, which on CPython 3.11 and 3.12 comes every 700 net allocations. So
the collector scans them again and again, and promotes them to the older generations, whose
collections are slower and stop the event loop for longer. In a traced pool of 400 runs, that
was about a fifth of the loop's time.

CPython 3.13 raised the threshold to 2,000 for this kind of program. While a pool is open or an
``arun`` is running, graphtrace does the same on older Pythons: it raises
``gc.get_threshold()[0]`` from 700 to 2,000, and puts it back when the last of them ends. It
changes nothing on 3.13 and later, and nothing when the application chose thresholds of its own
(anything but 700, 10, 10, or the collector disabled), or changes them meanwhile.
``RunPool(tune_gc=False)`` opts a pool out; an application that wants 700 everywhere sets
thresholds of its own (``gc.set_threshold(700, 10, 10)`` counts as the default: use 701).
"""

from __future__ import annotations

import gc
import threading
from typing import Final

__all__ = ["YOUNG_THRESHOLD", "hold", "release"]

YOUNG_THRESHOLD: Final = 2_000
"""The first threshold CPython 3.13 uses: 2,000 net allocations between young collections."""
_OLD_DEFAULT: Final = (700, 10, 10)  # CPython 3.11 and 3.12

_lock = threading.Lock()
_holders = 0
_restore: tuple[int, int, int] | None = None  # what to put back, when we changed it
_ours: tuple[int, int, int] | None = None  # what we set, to notice someone else's change


def hold() -> None:
    """One more pool or run in flight: the first raises the threshold (when it is the old
    default)."""
    global _holders, _restore, _ours
    with _lock:
        _holders += 1
        if _holders > 1:
            return
        current = gc.get_threshold()
        if gc.isenabled() and current == _OLD_DEFAULT:
            _restore = current
            _ours = (YOUNG_THRESHOLD, current[1], current[2])
            gc.set_threshold(*_ours)


def release() -> None:
    """One pool or run fewer: the last puts back what :func:`hold` changed, unless the
    application has changed it since."""
    global _holders, _restore, _ours
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders:
            return
        if _restore is not None and gc.get_threshold() == _ours:
            gc.set_threshold(*_restore)
        _restore = _ours = None
