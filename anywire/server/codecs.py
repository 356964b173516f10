"""The codec instances the server (and the Python client) use."""

from __future__ import annotations

import msgpack
import msgspec

from ..core.codec import Codec, JsonCodec, MsgpackCodec

__all__ = ["make_codecs"]


def make_codecs(max_size: int = 16 * 1024 * 1024) -> dict[str, Codec]:
    """JSON and MessagePack codecs by name, C functions injected into the core: msgpack's,
    and msgspec's JSON decoder (already installed with Litestar) for ordinary messages."""
    return {
        "json": JsonCodec(fast_decode=msgspec.json.Decoder().decode),
        "msgpack": MsgpackCodec(msgpack.packb, msgpack.unpackb, max_size=max_size),
    }
