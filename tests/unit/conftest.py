"""Shared fixtures for the sans-I/O unit tests (no event loop anywhere)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest

from anywire.core.codec import Codec, JsonCodec, MsgpackCodec
from anywire.server.codecs import make_codecs

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def load_vectors(name: str) -> list[dict[str, Any]]:
    return list(json.loads((VECTORS / name).read_text(encoding="utf-8")))


def make_codec(name: str) -> Codec:
    """A codec as the server builds it (``json`` with msgspec's decoder injected);
    ``json-reference`` is the standard-library-only JSON codec."""
    if name == "json":
        return make_codecs()["json"]
    if name == "json-reference":
        return JsonCodec()
    return MsgpackCodec(msgpack.packb, msgpack.unpackb)


@pytest.fixture(params=["json", "msgpack"])
def codec(request: pytest.FixtureRequest) -> Codec:
    return make_codec(request.param)
