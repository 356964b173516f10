"""The data model both codecs share (docs/protocol.md, section 5.1), checked value by value.

A value may travel only if *every* codec can carry it, so that one peer cannot plant a
frame that some other peer can never be sent: integers in the MessagePack range
(-2^63 .. 2^64 - 1), finite floats, string map keys, and no deeper nesting than the
receiver allows. JSON alone would carry 2^70, MessagePack alone NaN; neither may.

:func:`value_error` walks a value once, iteratively (no recursion, so no
``RecursionError`` however deep), and says what is wrong with it. It is the exact check;
the codecs put a cheap scan of the encoded bytes in front of it (``Codec.suspect``) so
ordinary messages never pay for the walk.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["INT_MAX", "INT_MIN", "value_error"]

INT_MIN = -(2**63)
"""Smallest integer any codec carries (MessagePack int64)."""

INT_MAX = 2**64 - 1
"""Largest integer any codec carries (MessagePack uint64)."""


def value_error(value: Any, max_depth: int | None = None, keys: bool = True) -> str | None:
    """Why ``value`` breaks the shared data model, or None if it does not.

    ``max_depth`` bounds the nesting of maps and arrays: ``value`` itself, if a map or an
    array, is at depth 1. None: no bound (used on encode, where the encoder has bounded
    the depth already). ``keys``: map keys must be strings (on decode; an encoder turns
    or refuses other keys by its own rules). Values of types the codecs handle
    themselves (strings, bytes, ...) pass.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        kind = type(item)
        if kind is dict:
            if max_depth is not None and depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            for key, inner in item.items():
                if keys and type(key) is not str:
                    return "map keys must be strings"
                push((inner, depth + 1))
        elif kind is list or kind is tuple:
            if max_depth is not None and depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            for inner in item:
                push((inner, depth + 1))
        elif kind is int:
            if not INT_MIN <= item <= INT_MAX:
                return "integer outside -2^63 .. 2^64-1"
        elif kind is float:
            if not math.isfinite(item):
                return "float is not finite (NaN or infinity)"
        # A subclass (an application's own types, an IntEnum): checked as its base type.
        elif isinstance(item, dict):
            push((dict(item), depth))
        elif isinstance(item, list | tuple):
            push((list(item), depth))
        elif isinstance(item, float):
            push((float(item), depth))
        elif isinstance(item, int) and not isinstance(item, bool):
            push((int(item), depth))
    return None
