"""Host allow-list patterns (server/hosts.py) and the same-origin rule they tighten."""

from __future__ import annotations

import pytest

from anywire.core.settings import Settings
from anywire.server.app import Anywire
from anywire.server.hosts import host_allowed, host_name


def scope(host: str | None, origin: str | None = None) -> dict[str, object]:
    headers = [] if host is None else [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "http", "scheme": "http", "headers": headers}


@pytest.mark.parametrize(
    ("value", "name"),
    [("Chat.Example.COM:8000", "chat.example.com"), ("[::1]:80", "[::1]"), ("a.b.", "a.b")],
)
def test_host_name_drops_port_case_and_final_dot(value: str, name: str) -> None:
    assert host_name(value) == name


@pytest.mark.parametrize(
    ("host", "allowed", "ok"),
    [
        ("evil.example", (), True),  # empty list: any Host
        (None, (), True),
        (None, ("chat.example",), False),  # a list and no Host: refused
        ("chat.example:8000", ("chat.example",), True),
        ("CHAT.example", ("chat.example",), True),
        ("www.chat.example", ("chat.example",), False),
        ("www.chat.example", (".chat.example",), True),
        ("chat.example", (".chat.example",), True),
        ("evilchat.example", (".chat.example",), False),
        ("anything", ("*",), True),
        ("[::1]:9", ("[::1]",), True),
    ],
)
def test_patterns(host: str | None, allowed: tuple[str, ...], ok: bool) -> None:
    assert host_allowed(scope(host), allowed) is ok


def test_same_origin_counts_only_for_an_allowed_host() -> None:
    open_app = Anywire(anonymous=True)
    strict = Anywire(anonymous=True, settings=Settings(allowed_hosts=("chat.example",)))
    rebound = scope("evil.example:8000", "http://evil.example:8000")
    assert open_app.origin_allowed(rebound)  # the hole, when no list is set
    assert not strict.origin_allowed(rebound)
    assert strict.origin_allowed(scope("chat.example:8000", "http://chat.example:8000"))
