"""A cap on LM calls in flight across runs, that keeps a freed slot busy.

:class:`CallSlots` is what ``RunPool(max_lm_calls=N)`` shares between its runs. It differs from
``asyncio.Semaphore`` in one way that matters at scale: a slot given back is handed to the
oldest waiter at the loop's next turn, not at once, and until then whoever asks takes it. A run
whose model call just ended usually asks for its next call in the same step (the graph work in
between is a few microseconds of Python); it keeps its slot instead of waiting a full turn of a
busy loop behind the waiter it woke, which is how a plain semaphore leaves slots idle while
hundreds of runs queue. The cap itself is never exceeded, and waiters are served in order.

Example::

    slots = CallSlots(8)
    async with slots:  # at most 8 bodies in here at once
        ...
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

__all__ = ["CallSlots"]


class CallSlots:
    """At most ``limit`` holders at once; waiters are served first come, first served.

    A slot given back goes to the oldest waiter on the loop's next turn; a caller that asks in
    the meantime (typically the run that gave it back, asking for its next LM call) takes it.
    """

    __slots__ = ("_free", "_handing_off", "_waiters", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._handing_off = False

    @property
    def in_use(self) -> int:
        """Slots held right now."""
        return self.limit - self._free

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot (cancelled ones may be counted until their turn)."""
        return len(self._waiters)

    def __repr__(self) -> str:
        return f"<CallSlots {self.in_use}/{self.limit} in use, {self.waiting} waiting>"

    def try_acquire(self) -> bool:
        """Take a slot if one is free now, without waiting; True if taken."""
        if self._free:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting for one if all are held."""
        if self._free:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # a slot was handed over as we were cancelled: pass it on
            raise

    def release(self) -> None:
        """Give a slot back."""
        if self._free >= self.limit:
            raise RuntimeError("CallSlots released more often than acquired")
        self._free += 1
        if self._waiters and not self._handing_off:
            self._handing_off = True
            asyncio.get_running_loop().call_soon(self._hand_off)

    def _hand_off(self) -> None:
        self._handing_off = False
        waiters = self._waiters
        while self._free and waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled waiter is skipped
                self._free -= 1
                waiter.set_result(None)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
