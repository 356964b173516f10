"""``anywire serve --max-ping-interval`` and ``ANYWIRE_MAX_PING_INTERVAL``: the
operator's ceiling for the battery profile, from the command line (the test app's own
Settings allow nothing longer than its ``ping_interval`` of 1 s)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from anywire.server.cliopts import heartbeat_args

from .conftest import ROOT, Server, make_token, start_server


def _granted(server: Server, asked_ms: int) -> int:
    auth = {"Authorization": f"Bearer {make_token('cli-ask')}"}
    r = httpx.post(
        server.url + "/anywire/negotiate", json={"v": 1, "ping_interval": asked_ms}, headers=auth
    )
    assert r.status_code == 200, r.text
    granted: int = r.json()["ping_interval"]
    return granted


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Server]:
    env, args = request.param
    srv = start_server({"AW_PING_INTERVAL": "1", **env}, args=args)
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    ("served", "ceiling_ms"),
    [
        (({}, ()), 1000),  # the app's own: nothing longer than ping_interval
        (({}, ("--max-ping-interval", "3")), 3000),
        (({"ANYWIRE_MAX_PING_INTERVAL": "2"}, ()), 2000),
        (({"ANYWIRE_MAX_PING_INTERVAL": "2"}, ("--max-ping-interval", "2.5")), 2500),
    ],
    indirect=["served"],
    ids=["none", "flag", "env", "flag-over-env"],
)
def test_the_ceiling_comes_from_the_command_line(served: Server, ceiling_ms: int) -> None:
    assert _granted(served, 10_000) == ceiling_ms
    assert _granted(served, 1500) == min(1500, ceiling_ms)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0.5", "must not be below ping_interval"),  # the app's ping_interval is 1 s
        ("0", "must be a positive number of seconds"),
        ("-3", "must be a positive number of seconds"),
        ("soon", "invalid _seconds value"),
    ],
)
@pytest.mark.parametrize("where", ["flag", "env"])
def test_a_bad_ceiling_is_refused_clearly(value: str, says: str, where: str) -> None:
    args = ["--max-ping-interval", value] if where == "flag" else []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AW_PING_INTERVAL": "1"}
    if where == "env":
        env["ANYWIRE_MAX_PING_INTERVAL"] = value
    proc = subprocess.run(
        [sys.executable, "-m", "anywire.server.cli", "serve", "tests.e2e.testapp:app",
         "--port", "1", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "--max-ping-interval" in proc.stderr
    assert says in proc.stderr, proc.stderr


def test_workers_get_the_same_ceiling() -> None:
    """``--workers`` hands the ceiling on to every worker process."""
    assert heartbeat_args(argparse.Namespace(max_ping_interval=2.5)) == [
        "--max-ping-interval",
        "2.5",
    ]
    assert heartbeat_args(argparse.Namespace(max_ping_interval=None)) == []
