"""CallSlots: the cap on LM calls RunPool shares between its runs."""

from __future__ import annotations

import asyncio

import pytest

from graphtrace import FakeLM
from graphtrace.lm.caller import LMCaller
from graphtrace.lm.slots import CallSlots


def test_the_cap_is_never_exceeded_and_every_caller_gets_through() -> None:
    async def scenario() -> tuple[int, int]:
        slots = CallSlots(3)
        inside = peak = done = 0

        async def call(i: int) -> None:
            nonlocal inside, peak, done
            for _ in range(3):  # ask again right after giving back, as a run does
                async with slots:
                    inside += 1
                    peak = max(peak, inside)
                    await asyncio.sleep(0.001 * (i % 3))
                    inside -= 1
            done += 1

        async with asyncio.TaskGroup() as group:
            for i in range(20):
                group.create_task(call(i))
        assert slots.in_use == 0 and slots.waiting == 0
        return peak, done

    assert asyncio.run(scenario()) == (3, 20)


def test_waiters_are_served_in_the_order_they_asked() -> None:
    async def scenario() -> list[int]:
        slots = CallSlots(1)
        await slots.acquire()
        served: list[int] = []

        async def wait(i: int) -> None:
            async with slots:
                served.append(i)

        tasks = []
        for i in range(5):
            tasks.append(asyncio.create_task(wait(i)))
            await asyncio.sleep(0)  # each one queues before the next starts
        assert slots.waiting == 5
        slots.release()
        await asyncio.gather(*tasks)
        return served

    assert asyncio.run(scenario()) == [0, 1, 2, 3, 4]


def test_a_slot_given_back_goes_to_whoever_asks_before_the_loop_turns() -> None:
    async def scenario() -> list[str]:
        slots = CallSlots(1)
        order: list[str] = []
        await slots.acquire()

        async def waiter() -> None:
            async with slots:
                order.append("waiter")

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        slots.release()
        # asked again in the same step: taken at once, without waiting
        assert slots.try_acquire()
        order.append("again")
        await asyncio.sleep(0.01)
        assert order == ["again"]  # the waiter still waits: the slot is held
        slots.release()
        await task
        return order

    assert asyncio.run(scenario()) == ["again", "waiter"]


def test_a_cancelled_waiter_takes_no_slot() -> None:
    async def scenario() -> tuple[bool, int]:
        slots = CallSlots(1)
        await slots.acquire()
        cancelled = asyncio.create_task(slots.acquire())
        after = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        slots.release()
        await asyncio.wait_for(after, 1)
        return cancelled.cancelled(), slots.in_use

    assert asyncio.run(scenario()) == (True, 1)


def test_a_waiter_cancelled_as_its_slot_arrives_passes_the_slot_on() -> None:
    async def scenario() -> int:
        slots = CallSlots(1)
        await slots.acquire()
        first = asyncio.create_task(slots.acquire())
        second = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        slots.release()
        await asyncio.sleep(0)  # the hand-off runs: first is given the slot, not yet resumed
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, 1)
        return slots.in_use

    assert asyncio.run(scenario()) == 1


def test_releasing_more_than_acquired_is_an_error() -> None:
    slots = CallSlots(2)
    with pytest.raises(RuntimeError, match="released more often"):
        slots.release()
    with pytest.raises(ValueError, match="at least 1"):
        CallSlots(0)


def test_the_lm_caller_takes_call_slots_only() -> None:
    with pytest.raises(TypeError, match="CallSlots"):
        LMCaller(FakeLM(), asyncio.Semaphore(2))  # type: ignore[arg-type]
