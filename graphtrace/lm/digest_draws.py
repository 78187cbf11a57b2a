"""Random draws for one FakeLM reply, taken from a BLAKE2b stream instead of a Mersenne Twister.

FakeLM decides each reply from a hash of the prompt, so it needs a generator seeded afresh for
every call. Seeding ``random.Random`` fills its 624-word state, which costs more than everything
drawn from it for a typical reply (a few dozen bits). :class:`DigestDraws` is a
``random.Random`` whose bits come from the seed itself (already a BLAKE2b output) and, when a
reply needs more, from BLAKE2b keyed with the seed, in counter mode. ``choice``, ``randint``,
``shuffle``, ``uniform`` and the rest are ``random.Random``'s own, built on :meth:`getrandbits`
and :meth:`random`, so the draws depend only on the seed.

Example::

    >>> draws = DigestDraws(bytes(range(16)))
    >>> draws.getrandbits(8) == DigestDraws(bytes(range(16))).getrandbits(8)
    True
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Final

__all__ = ["DigestDraws"]

_BLOCK_BITS: Final = 512  # one BLAKE2b-512 output per refill
_RECIP_53: Final = 2.0**-53  # what random.random() scales 53 bits by


class DigestDraws(random.Random):
    """A ``random.Random`` that draws the bits of its seed, then of BLAKE2b keyed with it.

    Reseed it with :meth:`seed` (cheap) rather than making a new one: constructing any
    ``random.Random`` also seeds the Mersenne Twister state underneath, which this class never
    reads.
    """

    _key: bytes
    _bits: int
    _left: int
    _block: int

    def __init__(self, seed: bytes = b"") -> None:
        super().__init__(seed)

    def seed(self, a: Any = b"", version: int = 2) -> None:
        """Start over from ``a`` (bytes, at most 64 of them: BLAKE2b's key size)."""
        key = a if type(a) is bytes else bytes(a) if isinstance(a, bytearray) else None
        if key is None or len(key) > 64:
            raise TypeError(f"DigestDraws takes a seed of at most 64 bytes, got {a!r:.40}")
        self._key = key
        self._bits = int.from_bytes(key, "little")
        self._left = 8 * len(key)
        self._block = 0
        self.gauss_next = None  # what random.Random.seed resets too

    def getrandbits(self, k: int) -> int:
        """``k`` fresh bits as a non-negative int below ``2**k`` (a negative ``k`` raises
        ValueError, from the shift)."""
        if k > self._left:
            self._refill(k)
        bits = self._bits
        self._bits = bits >> k
        self._left -= k
        return bits & ((1 << k) - 1)

    def random(self) -> float:
        """A float in [0, 1), from 53 bits as ``random.Random.random`` makes it."""
        return self.getrandbits(53) * _RECIP_53

    # For a caller that makes many small draws inline (``bits & mask``, then a shift) rather
    # than a method call each: the same stream, read in place.

    def unread(self) -> tuple[int, int]:
        """The bits not drawn yet, lowest first, and how many there are."""
        return self._bits, self._left

    def more(self, bits: int, left: int, wanted: int) -> tuple[int, int]:
        """``bits`` (``left`` of them, as :meth:`unread` gave) with the stream's next blocks
        above them, at least ``wanted`` in all."""
        self._bits, self._left = bits, left
        self._refill(wanted)
        return self._bits, self._left

    def resume(self, bits: int, left: int) -> None:
        """Go on from ``bits`` (``left`` of them): what an inline reader has not drawn."""
        self._bits, self._left = bits, left

    def _refill(self, wanted: int) -> None:
        while self._left < wanted:
            self._block += 1
            block = hashlib.blake2b(
                self._block.to_bytes(8, "little"), digest_size=64, key=self._key
            ).digest()
            self._bits |= int.from_bytes(block, "little") << self._left
            self._left += _BLOCK_BITS

    def getstate(self) -> Any:
        return (self._key, self._bits, self._left, self._block, self.gauss_next)

    def setstate(self, state: Any) -> None:
        self._key, self._bits, self._left, self._block, self.gauss_next = state
