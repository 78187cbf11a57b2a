"""FakeLM: deterministic, schema-driven replies, injected latency and failures, usage."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from graphtrace.errors import LMError
from graphtrace.lm import fake as fake_module
from graphtrace.lm.fake import FakeLM
from graphtrace.lm.protocol import LM, Completion, Message
from tests.process_support import python_output


class Reply(BaseModel):
    summary: str
    confidence: Annotated[float, Field(ge=0, le=1)]
    category: Literal["billing", "bug", "other"]
    tags: list[str] = []


SCHEMA = Reply.model_json_schema()


def prompt(text: str = "The app crashes on login.") -> list[Message]:
    return [Message("system", "You triage support tickets."), Message("user", text)]


def ask(lm: FakeLM, messages: Sequence[Message], schema: Mapping[str, Any] = SCHEMA) -> Completion:
    return asyncio.run(lm.complete(messages, schema))


def test_is_an_lm_and_reply_validates() -> None:
    lm = FakeLM()
    assert isinstance(lm, LM)
    assert lm.provider == "graphtrace.fake" and lm.model == "fake"
    for i in range(30):
        completion = ask(lm, prompt(f"ticket {i}"))
        Reply.model_validate_json(completion.text)
        assert completion.finish_reason == "stop"
        assert completion.response_model == "fake"
        assert completion.response_id is not None and completion.response_id.startswith("fake-")


def test_same_prompt_same_answer_across_instances() -> None:
    first, second = ask(FakeLM(seed=3), prompt()), ask(FakeLM(seed=3), prompt())
    assert first == second
    lm = FakeLM(seed=3)
    assert ask(lm, prompt()) == ask(lm, prompt()) == first  # no hidden per-call state


def test_seed_messages_and_schema_change_the_answer() -> None:
    base = [ask(FakeLM(seed=0), prompt(f"t{i}")).text for i in range(10)]
    other_seed = [ask(FakeLM(seed=1), prompt(f"t{i}")).text for i in range(10)]
    assert base != other_seed
    assert len(set(base)) > 1  # different prompts, different replies
    other_role = [Message("assistant", m.content) for m in prompt("t0")]
    assert ask(FakeLM(), other_role).response_id != ask(FakeLM(), prompt("t0")).response_id
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert ask(FakeLM(), prompt(), schema).response_id != ask(FakeLM(), prompt()).response_id


def test_concurrent_calls_agree_with_sequential_ones() -> None:
    lm = FakeLM(seed=5, latency=0.001, jitter=0.5)
    prompts = [prompt(f"ticket {i % 7}") for i in range(40)]

    async def all_at_once() -> list[Completion]:
        return await asyncio.gather(*(lm.complete(p, SCHEMA) for p in prompts))

    together = asyncio.run(all_at_once())
    alone = [ask(FakeLM(seed=5), p) for p in prompts]
    assert [c.text for c in together] == [c.text for c in alone]


def test_stable_across_processes() -> None:
    code = (
        "import asyncio, json, sys\n"
        "from graphtrace.lm.fake import FakeLM\n"
        "from graphtrace.lm.protocol import Message\n"
        "schema = json.loads(sys.argv[1])\n"
        "c = asyncio.run(FakeLM(seed=9).complete([Message('user', 'hi')], schema))\n"
        "print(c.text)\n"
    )
    out = python_output(code, json.dumps(SCHEMA), hash_seed=4242)
    assert out == ask(FakeLM(seed=9), [Message("user", "hi")]).text


def test_mapping_messages_are_accepted() -> None:
    as_dicts: Any = [{"role": m.role, "content": m.content} for m in prompt()]
    assert ask(FakeLM(), as_dicts) == ask(FakeLM(), prompt())


def test_respond_hook() -> None:
    seen: list[tuple[list[Message], Mapping[str, Any]]] = []

    def respond(messages: Sequence[Message], schema: Mapping[str, Any]) -> Any:
        seen.append((list(messages), schema))
        text = messages[-1].content
        if text == "verbatim":
            return "not even JSON"
        if text == "mapping":
            return {"summary": "scripted", "confidence": 1.0, "category": "bug"}
        return None

    lm = FakeLM(respond=respond)
    assert ask(lm, prompt("verbatim")).text == "not even JSON"
    scripted = ask(lm, prompt("mapping"))
    assert Reply.model_validate_json(scripted.text).summary == "scripted"
    assert ask(lm, prompt("fallback")).text == ask(FakeLM(), prompt("fallback")).text
    assert [m[-1].content for m, _ in seen] == ["verbatim", "mapping", "fallback"]
    assert all(schema is SCHEMA for _, schema in seen)


def test_async_respond_hook_and_bad_replies() -> None:
    async def respond(messages: Sequence[Message], schema: Mapping[str, Any]) -> str:
        await asyncio.sleep(0)
        return '{"ok": true}'

    assert ask(FakeLM(respond=respond), prompt()).text == '{"ok": true}'
    with pytest.raises(TypeError, match="respond hook"):
        ask(FakeLM(respond=lambda m, s: {"when": object()}), prompt())


def test_failure_rate_zero_and_one() -> None:
    never, always = FakeLM(failure_rate=0.0), FakeLM(failure_rate=1.0)
    for i in range(50):
        ask(never, prompt(f"t{i}"))
        with pytest.raises(LMError, match=r"FakeLM injected failure \(failure_rate=1\)"):
            ask(always, prompt(f"t{i}"))
    assert never.calls == always.calls == 50  # failed calls count too


def outcomes(lm: FakeLM, prompts: Sequence[Sequence[Message]]) -> list[bool]:
    results = []
    for p in prompts:
        try:
            ask(lm, p)
        except LMError:
            results.append(False)
        else:
            results.append(True)
    return results


def test_failures_are_reproducible_and_proportional() -> None:
    prompts = [prompt(f"ticket {i}") for i in range(300)]
    first = outcomes(FakeLM(seed=2, failure_rate=0.3), prompts)
    assert first == outcomes(FakeLM(seed=2, failure_rate=0.3), prompts)
    assert 0.2 < first.count(False) / len(first) < 0.4
    assert first != outcomes(FakeLM(seed=3, failure_rate=0.3), prompts)  # the seed decides too


def test_first_failures_are_a_property_of_the_prompt() -> None:
    prompts = [prompt(f"ticket {i}") for i in range(40)]
    first = outcomes(FakeLM(failure_rate=0.5), prompts)
    assert not all(first) and any(first)
    assert outcomes(FakeLM(failure_rate=0.5), prompts) == first  # a new instance agrees


def test_latency_yields_to_the_loop() -> None:
    async def race(lm: FakeLM) -> bool:
        progressed = asyncio.Event()

        async def other() -> None:
            progressed.set()

        task = asyncio.create_task(other())
        await lm.complete(prompt(), SCHEMA)
        done = progressed.is_set()
        await task
        return done

    assert asyncio.run(race(FakeLM(latency=0.001)))
    # latency 0 does not sleep at all, so nothing else runs during the call
    assert not asyncio.run(race(FakeLM(latency=0.0)))


def test_failures_arrive_after_the_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    delays = record_sleeps(monkeypatch)
    with pytest.raises(LMError):
        ask(FakeLM(latency=2.0, failure_rate=1.0), prompt())
    assert delays == [2.0]


def record_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Replace FakeLM's wait with one that records the delay and only yields."""
    delays: list[float] = []

    async def fake_elapse(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0)

    monkeypatch.setattr(fake_module, "_elapse", fake_elapse)
    return delays


def test_a_call_ends_at_most_a_tick_and_a_half_before_its_latency() -> None:
    # calls wait on the timer of the millisecond tick they are due in, aimed half a tick early
    # (asyncio's timers fire up to a tick late)
    async def timed(lm: FakeLM) -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await lm.complete(prompt(), SCHEMA)
        return loop.time() - started

    assert asyncio.run(timed(FakeLM(latency=0.05))) >= 0.05 - 1.5 / fake_module._TICKS_PER_SECOND


def test_calls_due_in_the_same_tick_share_one_timer() -> None:
    async def scenario() -> tuple[int, bool]:
        loop = asyncio.get_running_loop()
        timers = 0
        call_at = loop.call_at

        def counting_call_at(when: float, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
            nonlocal timers
            timers += 1
            return call_at(when, *args, **kwargs)

        loop.call_at = counting_call_at  # type: ignore[method-assign]
        # the clock held still while the calls start, so that however slow this machine is
        # they all fall due in the same tick
        real_time, now = loop.time, loop.time()
        loop.time = lambda: now  # type: ignore[method-assign]
        lm = FakeLM(latency=0.02)
        cancelled = asyncio.create_task(lm.complete(prompt("cancelled"), SCHEMA))
        calls = [asyncio.create_task(lm.complete(prompt(str(i)), SCHEMA)) for i in range(50)]
        await asyncio.sleep(0)  # every call is waiting now
        loop.time = real_time  # type: ignore[method-assign]
        cancelled.cancel()
        await asyncio.gather(*calls)
        return timers, cancelled.cancelled()

    timers, cancelled = asyncio.run(scenario())
    assert timers == 1  # 51 calls due in one tick: one timer (one per call before)
    assert cancelled


def test_reply_draws_depend_only_on_the_seed_and_go_on_past_it() -> None:
    seed = bytes(range(16))
    first = [fake_module._draws(seed).getrandbits(100) for _ in range(2)]
    assert first[0] == first[1] == int.from_bytes(seed, "little") & (2**100 - 1)
    draws = fake_module._draws(seed)
    stream = [draws.getrandbits(61) for _ in range(40)]  # 2,440 bits: past the seed's 128
    again = fake_module._draws(seed)
    assert [again.getrandbits(61) for _ in range(40)] == stream
    assert len(set(stream)) == 40 and all(0 <= bits < 2**61 for bits in stream)
    other = fake_module._draws(bytes(16))
    assert [other.getrandbits(61) for _ in range(40)][3:] != stream[3:]
    unit = [fake_module._draws(bytes([i]) * 16).random() for i in range(200)]
    assert all(0.0 <= u < 1.0 for u in unit) and 0.35 < sum(unit) / len(unit) < 0.65
    with pytest.raises(ValueError):
        fake_module._draws(seed).getrandbits(-1)
    assert fake_module._draws(seed).getrandbits(0) == 0


def test_jitter_is_deterministic_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    delays = record_sleeps(monkeypatch)
    for i in range(30):
        ask(FakeLM(latency=1.0), prompt(f"t{i}"))
    assert delays == [1.0] * 30
    delays.clear()
    lm = FakeLM(latency=1.0, jitter=0.5)
    for i in range(30):
        ask(lm, prompt(f"t{i}"))
    first = list(delays)
    assert all(0.5 <= d <= 1.5 for d in first)
    assert len(set(first)) > 10
    delays.clear()
    for i in range(30):
        ask(FakeLM(latency=1.0, jitter=0.5), prompt(f"t{i}"))
    assert delays == first


def test_usage_scales_with_text() -> None:
    lm = FakeLM()
    short = ask(lm, [Message("user", "hi")])
    long_text = "word " * 400
    long = ask(lm, [Message("system", "be brief"), Message("user", long_text)])
    assert short.usage.input_tokens >= 1 and short.usage.output_tokens >= 1
    assert long.usage.input_tokens > 10 * short.usage.input_tokens
    assert math.isclose(long.usage.input_tokens, (len(long_text) + len("be brief")) / 4, abs_tol=1)
    for completion in (short, long):
        assert math.isclose(completion.usage.output_tokens, len(completion.text) / 4, abs_tol=1)
    empty = ask(lm, [Message("user", "")])
    assert empty.usage.input_tokens == 1


def test_calls_are_counted() -> None:
    lm = FakeLM()
    assert lm.calls == 0
    for _ in range(3):
        ask(lm, prompt())
    assert lm.calls == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"latency": -0.1}, ValueError, "latency must be >= 0"),
        ({"latency": math.inf}, ValueError, "latency must be finite"),
        ({"latency": "1"}, TypeError, "latency must be a number"),
        ({"failure_rate": 1.5}, ValueError, "failure_rate must be between 0 and 1"),
        ({"failure_rate": -0.01}, ValueError, "failure_rate must be between 0 and 1"),
        ({"failure_rate": math.nan}, ValueError, "failure_rate must be between 0 and 1"),
        ({"jitter": 2}, ValueError, "jitter must be between 0 and 1"),
        ({"model": ""}, ValueError, "model must be a non-empty string"),
        ({"model": "   "}, ValueError, "model must be a non-empty string"),
        ({"seed": 1.5}, TypeError, "seed must be an int"),
        ({"respond": "yes"}, TypeError, "respond must be callable"),
    ],
)
def test_argument_validation(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        FakeLM(**kwargs)


def test_repr() -> None:
    assert repr(FakeLM()) == "FakeLM(model='fake', seed=0)"

    def script(messages: Sequence[Message], schema: Mapping[str, Any]) -> None:
        return None

    text = repr(
        FakeLM(seed=4, latency=0.25, failure_rate=0.1, model="m", jitter=0.2, respond=script)
    )
    assert text == (
        "FakeLM(model='m', seed=4, latency=0.25, jitter=0.2, failure_rate=0.1, "
        "respond=test_repr.<locals>.script)"
    )


def _attempts_until_success(lm: FakeLM, prompts: int) -> list[int]:
    """For each prompt, how many times it is asked (same messages) before it is answered."""
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    counts = []
    for n in range(prompts):
        messages = [Message("user", f"prompt {n}")]
        attempts = 0
        while True:
            attempts += 1
            try:
                asyncio.run(lm.complete(messages, schema))
                break
            except LMError:
                assert attempts < 30, "a failed prompt never recovered"
        counts.append(attempts)
    return counts


def test_injected_failures_recover_when_the_same_prompt_is_retried() -> None:
    outcomes = _attempts_until_success(FakeLM(seed=3, failure_rate=0.5), 40)
    assert max(outcomes) > 1, "with failure_rate=0.5 some prompt must fail at least once"
    replay = _attempts_until_success(FakeLM(seed=3, failure_rate=0.5), 40)
    assert replay == outcomes, "the retry pattern is deterministic for a seed"


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"note": "plain words"},
        {"a": 'quote " and \\ backslash', "b": "tab\tnewline\n\x00 control"},
        {"ünï": "cödé ✓ 😀", "lone": "\ud800 surrogate", "sep": "\u2028\u2029"},
        {"mixed": 1, "s": "x"},  # not all strings: json's own encoder
        ["a", "b"],
        "just a string",
    ],
)
def test_reply_json_is_json_dumps(value: Any) -> None:
    assert fake_module.reply_json(value) == json.dumps(value, ensure_ascii=False)
