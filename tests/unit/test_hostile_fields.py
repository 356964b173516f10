"""Every field of every frame, given a value of every wrong type, is refused with a
protocol error (never a TypeError or another crash): issue #13, item 2. Pure: no loop,
no server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from anywire.core.errors import RemoteProtocolError
from anywire.core.frames import parse_frame

VECTORS = [
    v
    for v in json.loads((Path(__file__).parents[1] / "vectors" / "frames.json").read_text())
    if isinstance(v["frame"], dict)
]
WRONG: list[Any] = [None, True, 1.5, -1, 2**64, "", "x" * 2000, [], [1], {}, {"a": 1}]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_every_field_with_a_wrong_type_is_a_protocol_error_or_a_valid_frame(
    vector: dict[str, Any],
) -> None:
    frame = vector["frame"]
    crashed = []
    for field in [*frame, "t"]:
        for value in WRONG:
            try:
                parse_frame({**frame, field: value})
            except RemoteProtocolError:
                continue
            except Exception as exc:  # the bug this test is about
                crashed.append(f"{field}={value!r:.30}: {exc!r}")
                continue
            # Accepted: only fields that take any value (event data, join meta), or a
            # wider type than the vector's, may be.
            assert field != "t", f"t={value!r} accepted"
    assert not crashed, "\n".join(crashed)


@pytest.mark.parametrize("value", WRONG)
def test_a_frame_whose_type_field_has_a_wrong_type_is_a_protocol_error(value: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_frame({"t": value, "s": 1, "id": 1, "e": "x"})
