"""The command line: what it refuses, and how it finds the Anywire object to drain."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys

from anywire.server.app import Anywire
from anywire.server.cli import find_anywire
from anywire.server.demo import make_app
from anywire.server.workers import listeners


def test_several_workers_without_redis_are_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "anywire.server.cli", "serve", "mod:app", "--workers", "2"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "--workers > 1 needs --redis" in result.stderr


def test_redis_without_a_shared_secret_is_refused() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANYWIRE_SECRET"}
    result = subprocess.run(
        [sys.executable, "-m", "anywire.server.cli", "serve", "tests.e2e.testapp:app",
         "--redis", "redis://127.0.0.1:1/0"],
        capture_output=True, text=True, timeout=30, env=env,
    )
    assert result.returncode == 2
    assert "shared secret" in result.stderr


def test_bad_api_key_lists_are_refused() -> None:
    key = "k" * 20
    for keys, message in (
        ([key, key], "listed twice"),
        ([f"{key},{key}x"], "must not contain ','"),
        ([key, "short"], "at least 16 characters"),
    ):
        args = [arg for k in keys for arg in ("--api-key", k)]
        result = subprocess.run(
            [sys.executable, "-m", "anywire.server.cli", "serve", "mod:app", *args],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 2
        assert message in result.stderr
        assert key not in result.stderr  # the error names the rule, never the key


def test_finds_the_anywire_behind_every_kind_of_app() -> None:
    aw = Anywire(anonymous=True)
    assert find_anywire(aw) is aw
    assert isinstance(find_anywire(make_app()), Anywire)  # a Litestar app with the plugin

    async def wrapper(scope: object, receive: object, send: object) -> None: ...

    wrapper.anywire = aw  # type: ignore[attr-defined]
    assert find_anywire(wrapper) is aw
    assert find_anywire(object()) is None


def test_bad_redis_urls_are_refused() -> None:
    for url, message in (
        ("http://127.0.0.1:6379", "unknown Redis URL scheme 'http'"),
        ("redis+sentinel://127.0.0.1:26379", "names no Sentinel service"),
        ("redis+cluster://127.0.0.1:7000/3", "only database 0"),
        ("redis://127.0.0.1:6379/x", "bad database number"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "anywire.server.cli", "serve", "mod:app", "--workers", "2",
             "--redis", url],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 2, url
        assert "--redis: " in result.stderr and message in result.stderr, result.stderr


def test_worker_sockets_listen_with_the_backlog_asked_for() -> None:
    socks = listeners("127.0.0.1", 0, 2, backlog=77)
    try:
        for sock in socks:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            assert struct.unpack_from("I", info, 28)[0] == 77  # tcpi_sacked: the backlog
    finally:
        for sock in socks:
            sock.close()
