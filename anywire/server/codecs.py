"""The codec instances the server (and the Python client) use."""

from __future__ import annotations

from typing import Any

import msgpack
import msgspec

from ..core.codec import Codec, JsonCodec, MsgpackCodec

__all__ = ["make_codecs"]


class _EventWire(msgspec.Struct, tag_field="t", tag="event", forbid_unknown_fields=True):
    """A client event as the common shape has it: any other key (``r``, ``o``, unknown
    ones) or a wrong type is refused here and left to the core's parser."""

    s: int
    e: str
    id: int | None = None
    d: Any = None


def make_codecs(
    max_size: int = 16 * 1024 * 1024, max_depth: int | None = None
) -> dict[str, Codec]:
    """JSON and MessagePack codecs by name, C functions injected into the core: msgpack's,
    and msgspec's JSON decoders (already installed with Litestar): one for ordinary
    messages, one that reads the commonest message, a client event, straight into its
    fields (the core checks ranges and builds the Event); and msgspec's JSON encoder, for
    the values it writes exactly as the standard library does (JsonCodec.encode).
    ``max_depth``: the server's ``Settings.max_depth`` (frames nested deeper are
    refused)."""
    return {
        "json": JsonCodec(
            fast_decode=msgspec.json.Decoder().decode,
            fast_event=msgspec.json.Decoder(_EventWire).decode,
            max_depth=max_depth,
            fast_encode=msgspec.json.Encoder().encode,
        ),
        "msgpack": MsgpackCodec(
            msgpack.packb, msgpack.unpackb, max_size=max_size, max_depth=max_depth
        ),
    }
