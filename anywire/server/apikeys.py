"""The server API's keys: which key a request carries, and whether its budget pays.

Several keys may be valid at once, so a key can be rotated without a restart of every
backend at the same moment: add the new key, move the backends to it, remove the old.
``Anywire(api_key=["old...", "new..."])``, ``ANYWIRE_API_KEY=old...,new...`` or
``anywire serve --api-key old... --api-key new...``.

A request's key is compared with every configured key in constant time (no early exit,
so the time does not tell which key, or how much of one, matched). Each key has its own
token bucket (``Settings.api_rate`` per second, ``Settings.api_burst`` at once, per
node): one backend over its budget is refused with 429 and ``Retry-After`` while the
others go on. Keys never appear in a repr or a log line: a key is named by its position
and a short fingerprint (the first 8 hex digits of its SHA-256).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from ..core.flood import TokenBucket
from .auth import check_secret

__all__ = ["ApiKeys", "parse_keys"]


def parse_keys(value: str | Sequence[str], name: str = "api_key") -> list[str]:
    """The keys of ``value``: one key, a comma-separated list (the environment
    variable's form) or a sequence. ValueError for an empty list, a duplicate or a key
    :func:`~anywire.server.auth.check_secret` refuses."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    keys = [check_secret(part.strip() if isinstance(part, str) else part, name) for part in parts]
    if any("," in key for key in keys):  # the list's separator in the environment
        raise ValueError(f"{name} must not contain ','")
    if not keys:
        raise ValueError(f"{name}: give at least one key")
    if len(set(keys)) != len(keys):
        raise ValueError(f"{name}: a key is listed twice")
    return keys


def fingerprint(key: bytes) -> str:
    """How a key is named in logs and answers: never the key itself."""
    return hashlib.sha256(key).hexdigest()[:8]


class ApiKeys:
    """The valid keys and one token bucket per key (see the module docstring)."""

    def __init__(self, keys: Sequence[str], rate: float, burst: int) -> None:
        self._keys = [key.encode() for key in keys]
        self.names = [f"key {i + 1} ({fingerprint(key)})" for i, key in enumerate(self._keys)]
        self.rate = rate
        self.burst = burst
        self._buckets: dict[int, TokenBucket] = {}

    def __repr__(self) -> str:
        return f"<ApiKeys {len(self._keys)}>"  # never a key (a traceback with locals)

    def match(self, given: str | None) -> int | None:
        """The index of the key ``given`` is, or None; constant time over every key."""
        raw = (given or "").encode("latin-1")  # header values are latin-1 decoded bytes
        found = None
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(raw, key):  # no break: every key is compared
                found = index
        return found

    def charge(self, index: int, cost: int, now: float) -> float:
        """Charge ``cost`` to key ``index``'s bucket: 0.0 when it pays, else the seconds
        until it could (the request is then refused; the refusal is charged too, so a
        caller that does not wait for ``Retry-After`` stays refused)."""
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = TokenBucket(self.rate, self.burst, now)
        if bucket.take(now, cost):
            return 0.0
        return max(bucket.wait(now, cost), 0.001)
