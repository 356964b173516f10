"""The codec instances the server (and the Python client) use."""

from __future__ import annotations

import msgpack

from ..core.codec import Codec, JsonCodec, MsgpackCodec

__all__ = ["make_codecs"]


def make_codecs(max_size: int = 16 * 1024 * 1024) -> dict[str, Codec]:
    """JSON and MessagePack codecs by name, msgpack's C functions injected into the core."""
    return {
        "json": JsonCodec(),
        "msgpack": MsgpackCodec(msgpack.packb, msgpack.unpackb, max_size=max_size),
    }
