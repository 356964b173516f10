"""Shared fixtures for the sans-I/O unit tests (no event loop anywhere)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, settings

from anywire.core.codec import Codec, JsonCodec, MsgpackCodec
from anywire.server.codecs import make_codecs

VECTORS = Path(__file__).resolve().parent.parent / "vectors"

# Property tests (hypothesis): "ci" (the default) keeps the whole unit suite fast and
# repeatable on a small shared machine; HYPOTHESIS_PROFILE=thorough searches longer.
settings.register_profile(
    "ci",
    max_examples=150,
    stateful_step_count=40,
    deadline=2000,  # ms per example: generous, a loaded 2-core machine stalls
    derandomize=True,  # the same examples every run: a CI failure reproduces
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=3000, stateful_step_count=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
