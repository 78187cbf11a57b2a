"""An offline, deterministic language model: answers with values generated from the JSON Schema.

:class:`FakeLM` is the default backend of the demo and the tests. It needs no network and no
model; its replies validate against the schema it is given (see
:mod:`graphtrace.lm.schema_values`), and it can simulate latency and failures so a graph under
``RunPool`` behaves like one talking to a real, slightly unreliable model.

Everything it does is decided by a BLAKE2b hash of ``(seed, schema, messages)``: the same FakeLM
answers the same prompt the same way, in any process and under any interleaving of concurrent
runs, because no RNG state is shared between calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import math
import threading
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from json.encoder import encode_basestring as _json_string
from typing import Any, Final, TypeAlias

from graphtrace.errors import LMError
from graphtrace.lm.digest_draws import DigestDraws
from graphtrace.lm.protocol import Completion, Message, Usage
from graphtrace.lm.schema_values import value_for_schema

__all__ = ["FakeLM", "Responder"]

Reply: TypeAlias = str | Mapping[str, Any] | None
#: ``respond(messages, schema)``: a str is the reply verbatim, a Mapping is JSON-encoded, None
#: falls back to the schema-generated value; it may also be ``async``.
Responder: TypeAlias = Callable[[Sequence[Message], Mapping[str, Any]], Reply | Awaitable[Reply]]

_CHARS_PER_TOKEN: Final = 4
_FAILED_MEMORY: Final = 10_000  # the usual rule of thumb for English text and JSON


class FakeLM:
    """A deterministic, offline LM for demos and tests: answers with values generated from the
    requested JSON Schema.

    Args:
        seed: varies every answer; two FakeLMs with the same seed answer alike.
        latency: seconds each call lasts, on average (a timer on the event loop, so other runs
            proceed meanwhile; calls due in the same millisecond share one timer, aimed half a
            millisecond early, as asyncio's timers fire up to a millisecond late and a real
            reply would not).
        failure_rate: the fraction of prompts, in [0, 1], answered with :class:`LMError`.
        model: the model name reported in spans and completions.
        jitter: a deterministic ±fraction of ``latency``, in [0, 1].
        respond: an optional hook ``respond(messages, schema)`` for scripted demos and tests:
            a ``str`` is the reply verbatim, a ``Mapping`` is JSON-encoded, ``None`` falls back
            to the generated value. It may be a coroutine function. Injected failures and
            latency still apply to calls it answers.

    Determinism: the reply, the delay and the failure decision depend only on ``seed``, the
    schema and the messages' roles and contents (a BLAKE2b hash, never ``hash()``). A prompt
    that failed and is asked again (the runtime retries a transient error with the same
    messages) gets a fresh failure roll drawn from the prompt and the number of times it failed,
    so retries recover at the configured rate.

    ``calls`` counts every :meth:`complete` call, failed ones included.

    Example::

        >>> import asyncio
        >>> from graphtrace.lm.protocol import Message
        >>> lm = FakeLM(seed=1)
        >>> schema = {"type": "object", "properties": {"ok": {"const": True}}, "required": ["ok"]}
        >>> asyncio.run(lm.complete([Message("user", "ready?")], schema)).text
        '{"ok": true}'
    """

    provider: str = "graphtrace.fake"

    def __init__(
        self,
        *,
        seed: int = 0,
        latency: float = 0.0,
        failure_rate: float = 0.0,
        model: str = "fake",
        jitter: float = 0.0,
        respond: Responder | None = None,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        self.latency = _real("latency", latency, low=0.0, high=math.inf)
        self.failure_rate = _real("failure_rate", failure_rate, low=0.0, high=1.0)
        self.jitter = _real("jitter", jitter, low=0.0, high=1.0)
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        self.model = model
        if respond is not None and not callable(respond):
            raise TypeError(f"respond must be callable or None, got {type(respond).__name__}")
        self.respond = respond
        self.calls = 0
        self._failed: dict[bytes, int] = {}

    def __repr__(self) -> str:
        parts = [f"model={self.model!r}", f"seed={self.seed}"]
        if self.latency:
            parts.append(f"latency={self.latency:g}")
        if self.jitter:
            parts.append(f"jitter={self.jitter:g}")
        if self.failure_rate:
            parts.append(f"failure_rate={self.failure_rate:g}")
        if self.respond is not None:
            parts.append(f"respond={getattr(self.respond, '__qualname__', repr(self.respond))}")
        return f"FakeLM({', '.join(parts)})"

    async def complete(self, messages: Sequence[Message], schema: Mapping[str, Any]) -> Completion:
        """Answer ``messages`` with JSON text that validates against ``schema``.

        Raises :class:`LMError` for an injected failure (after the latency, as a real timeout or
        server error would arrive), ``TypeError`` when ``respond`` returns something that is not
        JSON-encodable.
        """
        self.calls += 1
        digest, input_chars = self._digest(messages, schema)
        # independent slices of one digest: the failure roll, the delay, the value seed
        failing = False
        if self.failure_rate:
            fail_roll = _unit(digest[0:8])
            if fail_roll < self.failure_rate:
                failing = self._reroll(digest, fail_roll) < self.failure_rate
        delay = self.latency
        if self.jitter:
            delay *= 1.0 + self.jitter * (2.0 * _unit(digest[8:16]) - 1.0)
        if delay > 0:
            await _elapse(delay)
        if failing:
            raise LMError(f"FakeLM injected failure (failure_rate={self.failure_rate:g})")
        value_seed = digest[16:32]

        if self.respond is None:
            text = reply_json(value_for_schema(schema, _draws(value_seed)))
        else:
            text = await self._reply(messages, schema, value_seed)
        return Completion(
            text=text,
            usage=Usage(input_tokens=_tokens(input_chars), output_tokens=_tokens(len(text))),
            finish_reason="stop",
            response_model=self.model,
            response_id=f"fake-{digest[32:44].hex()}",
        )

    async def _reply(
        self, messages: Sequence[Message], schema: Mapping[str, Any], value_seed: bytes
    ) -> str:
        if self.respond is not None:
            reply = self.respond(messages, schema)
            if inspect.isawaitable(reply):
                reply = await reply
            if isinstance(reply, str):
                return reply
            if reply is not None:
                try:
                    return json.dumps(reply, ensure_ascii=False)
                except (TypeError, ValueError) as exc:
                    raise TypeError(
                        "FakeLM respond hook must return a str, a JSON-encodable Mapping or "
                        f"None; got {type(reply).__name__}: {exc}"
                    ) from exc
        return reply_json(value_for_schema(schema, _draws(value_seed)))

    def _reroll(self, digest: bytes, roll: float) -> float:
        """A fresh failure roll for a prompt that failed before and is asked again.

        A transient error is retried with the same messages (as with a real server), so the
        n-th asking of a failed prompt draws from the digest and n. Only failed prompts are
        remembered, and at most ``_FAILED_MEMORY`` of them.
        """
        asked = self._failed.get(digest, 0)
        if asked:
            roll = _unit(hashlib.blake2b(digest + asked.to_bytes(4, "big"), digest_size=8).digest())
        if len(self._failed) >= _FAILED_MEMORY:
            self._failed.clear()
        self._failed[digest] = asked + 1
        return roll

    def _digest(self, messages: Sequence[Message], schema: Mapping[str, Any]) -> tuple[bytes, int]:
        """The prompt's hash, and the characters of its messages (for the usage estimate)."""
        conversation = 0
        chars = 0
        parts = [b"", _schema_bytes(schema)]  # the first part, which counts turns, comes last
        for message in messages:
            role, content = _turn(message)
            if role == "user" or role == "assistant":
                conversation += 1
            chars += len(content)
            # lengths first, so that no two different conversations feed the same bytes
            encoded = content.encode("utf-8", "surrogatepass")
            parts.append(b"\x00%s\x00%d\x00" % (role.encode(), len(encoded)))
            parts.append(encoded)
        parts[0] = b"%d\x00%d\x00" % (self.seed, conversation)
        # one update of the joined bytes hashes exactly what one update per part would; a copy
        # of a hasher made once costs less than making one with its parameters each time
        hasher = _PROMPT_HASH.copy()
        hasher.update(b"".join(parts))
        return hasher.digest(), chars


_PROMPT_HASH: Final = hashlib.blake2b(digest_size=48, person=b"graphtrace.fake")
_SCHEMA_BYTES: dict[int, tuple[Mapping[str, Any], bytes]] = {}


def _schema_bytes(schema: Mapping[str, Any]) -> bytes:
    """The schema's canonical JSON; cached by identity, since callers reuse schema objects."""
    entry = _SCHEMA_BYTES.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    text = json.dumps(
        schema,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,  # a schema holding non-JSON values still hashes, if less stably
    ).encode("utf-8", "surrogatepass")
    if len(_SCHEMA_BYTES) >= 1024:
        _SCHEMA_BYTES.clear()
    _SCHEMA_BYTES[id(schema)] = (schema, text)
    return text


# asyncio's epoll selector rounds every poll timeout up to a whole millisecond, so a timer fires
# at the first millisecond tick after it is due; with hundreds of calls in flight, each waits
# about one tick longer than asked (measured: 11.0 ms for a 10 ms sleep on an idle loop). A real
# model's reply is a socket event, seen the moment it arrives. So calls due in the same tick
# share one timer, set at the start of the tick, which makes a simulated call last ``latency``
# on average, as asked (bench/scale.py prints the measured mean), and costs the loop one timer
# per tick rather than one per call.
_TICKS_PER_SECOND: Final = 1000
_HALF_TICK: Final = 0.5 / _TICKS_PER_SECOND


class _Ticks:
    """The calls of one event loop waiting for their latency, by the millisecond tick they are
    due in: one timer per tick, however many calls. (It keeps no reference to its loop, so
    that a loop that is dropped takes its entry in ``_ticks_of`` with it.)"""

    __slots__ = ("due",)

    def __init__(self) -> None:
        self.due: dict[int, list[asyncio.Future[None]]] = {}

    def wait(self, loop: asyncio.AbstractEventLoop, delay: float) -> asyncio.Future[None]:
        done = loop.create_future()
        # the tick the call is due in, half a tick early: the loop wakes for a timer up to a
        # tick late, half a tick on average
        tick = int((loop.time() + delay - min(_HALF_TICK, delay / 2)) * _TICKS_PER_SECOND)
        waiting = self.due.get(tick)
        if waiting is None:
            self.due[tick] = [done]
            loop.call_at(tick / _TICKS_PER_SECOND, self._fire, tick)
        else:
            waiting.append(done)
        return done

    def _fire(self, tick: int) -> None:
        for done in self.due.pop(tick):
            if not done.done():  # a cancelled call is skipped
                done.set_result(None)


_ticks_of: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Ticks] = (
    weakref.WeakKeyDictionary()
)
# almost every call is on the same loop as the one before: that loop (weakly) and its ticks
_last_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
_last_ticks = _Ticks()


def _elapse(delay: float) -> asyncio.Future[None]:
    """A future done in about ``delay`` seconds, on the timer of the millisecond tick it ends
    in (a future, not a coroutine: one frame less to go through on every wake-up)."""
    global _last_loop, _last_ticks
    loop = asyncio.get_running_loop()
    if _last_loop is None or _last_loop() is not loop:
        ticks = _ticks_of.get(loop)
        if ticks is None:
            ticks = _ticks_of[loop] = _Ticks()
        _last_loop, _last_ticks = weakref.ref(loop), ticks
    return _last_ticks.wait(loop, delay)


_thread_draws = threading.local()
# json.dumps(value, ensure_ascii=False) makes an encoder per call; this one is reused (encode()
# keeps no state, so threads may share it)
_REPLY_JSON: Final = json.JSONEncoder(ensure_ascii=False)


def reply_json(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)``, the same text; an object of strings (most of
    FakeLM's replies) is joined directly, with the C string escaper json itself uses."""
    if type(value) is dict:
        parts = []
        for key, item in value.items():
            if type(key) is not str or type(item) is not str:
                return _REPLY_JSON.encode(value)
            parts.append(f"{_json_string(key)}: {_json_string(item)}")
        return "{" + ", ".join(parts) + "}"
    return _REPLY_JSON.encode(value)


def _draws(seed: bytes) -> DigestDraws:
    """This thread's generator, reseeded with ``seed`` (16 digest bytes).

    One generator per thread, reseeded, is safe because a reply is generated without an
    ``await`` in between; making one per reply would seed a Mersenne Twister it never reads.
    """
    rng: DigestDraws | None = getattr(_thread_draws, "rng", None)
    if rng is None:
        rng = _thread_draws.rng = DigestDraws()
    rng.seed(seed)
    return rng


def _real(name: str, value: Any, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if math.isnan(value) or not low <= value <= high:
        bounds = f">= {low:g}" if math.isinf(high) else f"between {low:g} and {high:g}"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    if math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _turn(message: Any) -> tuple[str, str]:
    """A message's (role, content)."""
    if type(message) is Message:  # the usual case, without the Mapping check
        role, content = message.role, message.content
        if type(role) is str and type(content) is str:
            return role, content
    return _field(message, "role"), _field(message, "content")


def _field(message: Any, name: str) -> str:
    """A message's role or content; plain ``{"role", "content"}`` dicts work too."""
    value = message.get(name) if isinstance(message, Mapping) else getattr(message, name, None)
    if not isinstance(value, str):
        raise TypeError(f"each message needs a str {name!r}, got {message!r}")
    return value


def _unit(chunk: bytes) -> float:
    """Eight digest bytes as a float in [0, 1)."""
    return int.from_bytes(chunk, "big") / 2**64


def _tokens(chars: int) -> int:
    return max(1, round(chars / _CHARS_PER_TOKEN))
