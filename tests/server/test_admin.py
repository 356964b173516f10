"""The admin view's logic without a server: activity windows, the figures of a snapshot,
the token and page keys, and the HTTP answers of the page run in-process.

(The page in Chromium, the namespace over every transport: tests/browser/test_admin.py;
two nodes on Redis: tests/scale/test_admin_nodes.py.)
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from anywire import __version__
from anywire.core.rooms import Member, Rooms
from anywire.core.session import Heartbeat, ServerSession
from anywire.core.settings import Settings
from anywire.server.admin import (
    ADMIN_NAMESPACE,
    KEY_TTL,
    Activity,
    AdminView,
    Buckets,
    top_rooms,
    transports,
)
from anywire.server.admin_page import credential
from anywire.server.app import Anywire
from anywire.server.auth import check_secret
from anywire.server.codecs import make_codecs
from anywire.server.observe import Connection
from anywire.transports.base import Link
from anywire.transports.longpoll import INFO as LONGPOLL
from anywire.transports.sse import INFO as SSE
from anywire.transports.websocket import INFO as WEBSOCKET

TOKEN = "unit-admin-token-0123456789"
BEAT = Heartbeat(ping_interval=20.0, dead_after=30.0)
CODEC = make_codecs()["json"]


class Clock:
    """Wall-clock seconds, moved by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def conn(namespace: str = "/") -> Connection:
    return Connection("s1", "websocket", namespace, "ann", None, "127.0.0.1")


# -- activity windows ----------


def test_buckets_count_per_aligned_window_and_roll_over() -> None:
    b = Buckets(("x",), width=10, count=3)
    b.add("x", 1001)  # window 100
    b.add("x", 1009)
    b.add("x", 1012)  # window 101
    s = b.series(1015)
    assert s["counts"]["x"] == [0, 2, 1]
    assert s["end"] == 1020  # wall-clock aligned: several nodes' windows add up
    b.add("x", 1031)  # window 103: 102 empty, 100 rolls out
    assert b.series(1031)["counts"]["x"] == [1, 0, 1]


def test_buckets_after_a_long_silence_are_all_zero_and_bounded() -> None:
    b = Buckets(("x",), width=10, count=4)
    b.add("x", 0, 5)
    assert b.series(10_000)["counts"]["x"] == [0, 0, 0, 0]


def test_buckets_keep_counting_in_the_newest_window_if_the_clock_steps_back() -> None:
    b = Buckets(("x",), width=10, count=2)
    b.add("x", 105)
    b.add("x", 95)
    assert b.series(105)["counts"]["x"] == [0, 2]


def test_buckets_refuse_a_bad_shape() -> None:
    with pytest.raises(ValueError):
        Buckets(("x",), width=0)
    with pytest.raises(ValueError):
        Buckets(("x",), count=0)


def test_activity_counts_connects_resumes_fallbacks_but_not_admin_sessions() -> None:
    clock = Clock(1000)
    a = Activity(clock)
    a.connected(conn(), False)
    a.connected(conn(), True)
    a.connected(conn(ADMIN_NAMESPACE), False)  # the page itself
    a.fallback("websocket", "sse", "timeout")
    clock.now += 10
    a.connected(conn(), False)
    counts = a.series()["counts"]
    assert counts["connects"][-2:] == [1, 1]
    assert counts["resumes"][-2:] == [1, 0]
    assert counts["fallbacks"][-2:] == [1, 0]
    assert all(len(row) == 60 for row in counts.values())  # 10 minutes of 10 s


# -- figures ----------


def session(sid: str, info: Any = None, namespace: str = "/") -> ServerSession:
    sess = ServerSession(sid, "u", namespace, Settings(), 0.0, None)
    if info is not None:
        sess.attach(Link(info, CODEC), 0.0, BEAT, None)
    return sess


def test_transports_count_live_links_and_detached_sessions_not_admin_ones() -> None:
    sessions = [
        session("a", WEBSOCKET),
        session("b", WEBSOCKET),
        session("c", SSE),
        session("d", LONGPOLL),
        session("e"),  # between connections
        session("f", WEBSOCKET, ADMIN_NAMESPACE),
    ]
    assert transports(sessions) == {"websocket": 2, "sse": 1, "longpoll": 1, "detached": 1}


def test_top_rooms_are_bounded_and_leave_the_admin_namespace_out() -> None:
    rooms = Rooms()
    for i in range(50):
        for j in range(i % 7 + 1):
            rooms.join("/", f"r{i}", Member(f"s{i}-{j}", None))
    rooms.join(ADMIN_NAMESPACE, "big", Member("adm", None))
    count, largest = top_rooms(rooms, 3)
    assert count == 50
    assert [r["size"] for r in largest] == [7, 7, 7]
    assert all(r["ns"] == "/" for r in largest)


def test_a_snapshot_is_small_json_of_this_node() -> None:
    aw = Anywire(anonymous=True, node_id="n1", admin_token=TOKEN)
    assert aw.admin is not None
    snap = aw.admin.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    assert snap["node"] == "n1"
    assert snap["sessions"] == 0
    assert snap["broker"] == {"kind": "memory", "state": "ok"}
    assert snap["rooms"] == {"count": 0, "top": []}
    assert snap["activity"]["width"] == 10
    assert len(json.dumps(snap)) < 4096


# -- token and keys ----------


@pytest.mark.parametrize("bad", [None, 123, "short", "has a space in it 0123", "é" * 20])
def test_a_bad_token_is_refused_with_a_clear_error(bad: Any) -> None:
    with pytest.raises(ValueError, match="admin_token"):
        check_secret(bad, "admin_token")
    with pytest.raises(ValueError, match="admin_token"):
        Anywire(anonymous=True, admin_token=bad or "x")


def test_off_by_default_and_the_token_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANYWIRE_ADMIN_TOKEN", raising=False)
    assert Anywire(anonymous=True).admin is None
    monkeypatch.setenv("ANYWIRE_ADMIN_TOKEN", TOKEN)
    view = Anywire(anonymous=True).admin
    assert view is not None
    assert TOKEN not in repr(view) and TOKEN not in repr(vars(view))


def test_page_keys_expire_and_cannot_be_forged() -> None:
    clock = Clock()
    view = AdminView(Anywire(anonymous=True), TOKEN, clock=clock)
    other = AdminView(Anywire(anonymous=True), TOKEN + "x", clock=clock)
    key = view.key()
    assert view.key_valid(key)
    assert view.authenticate(key, {}).user == "$admin"
    assert not other.key_valid(key)  # another token's node
    expiry, _, mac = key.partition(".")
    assert not view.key_valid(f"{int(expiry) + 1000}.{mac}")
    assert not view.key_valid("x." + mac) and not view.key_valid("") and not view.key_valid(".")
    assert not view.key_valid("\u00b2." + mac)  # a digit to isdigit(), not to int()
    clock.now += KEY_TTL + 1
    assert not view.key_valid(key)


def test_credential_reads_basic_passwords_and_bearer_tokens() -> None:
    def scope(value: str) -> dict[str, Any]:
        return {"headers": [(b"authorization", value.encode())]}

    basic = base64.b64encode(b"anyone:" + TOKEN.encode()).decode()
    assert credential(scope(f"Basic {basic}")) == TOKEN
    assert credential(scope(f"Bearer {TOKEN}")) == TOKEN
    assert credential(scope("Basic !!!")) is None
    assert credential(scope("Basic " + base64.b64encode(b"no-colon").decode())) is None
    assert credential(scope("Digest x")) is None
    assert credential({"headers": []}) is None


# -- HTTP, in-process ----------


async def request(
    aw: Anywire, method: str, path: str, auth: str | None = None, body: bytes = b""
) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"host", b"127.0.0.1")]
    if auth is not None:
        headers.append((b"authorization", auth.encode()))
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    await aw(scope, receive, send)
    return (
        sent[0]["status"],
        dict(sent[0]["headers"]),
        b"".join(m.get("body", b"") for m in sent[1:]),
    )


async def test_page_answers_the_token_holder_only() -> None:
    aw = Anywire(anonymous=True, admin_token=TOKEN)
    try:
        status, headers, body = await request(aw, "GET", "/anywire/admin")
        assert status == 401 and headers[b"www-authenticate"].startswith(b"Basic ")
        assert json.loads(body)["message"] == "authentication failed"
        status, headers, body = await request(aw, "GET", "/anywire/admin", f"Bearer {TOKEN}")
        assert status == 200
        assert b"default-src 'none'" in headers[b"content-security-policy"]
        assert b'data-client="/anywire/client/' in body
        assert TOKEN.encode() not in body
        status, _, body = await request(
            aw, "GET", f"/anywire/admin/{__version__}/model.js", f"Bearer {TOKEN}"
        )
        assert status == 200 and b"export class Model" in body
        status, _, _ = await request(aw, "POST", "/anywire/admin", f"Bearer {TOKEN}")
        assert status == 405
    finally:
        await aw.stop()


async def test_behind_a_mount_the_page_names_the_mounted_urls() -> None:
    aw = Anywire(anonymous=True, admin_token=TOKEN)
    assert aw.admin is not None
    scope = {"path": "/api/anywire/admin", "root_path": "/api", "headers": []}
    page = aw.admin.page.page(scope)
    assert 'data-path="/api/anywire"' in page
    assert 'data-key="/api/anywire/admin/key"' in page
    assert f'src="/api/anywire/admin/{__version__}/admin.js"' in page


async def test_off_the_page_is_not_found_and_the_namespace_refuses_everyone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANYWIRE_ADMIN_TOKEN", raising=False)
    aw = Anywire(anonymous=True)
    try:
        status, _, _ = await request(aw, "GET", "/anywire/admin", f"Bearer {TOKEN}")
        assert status == 404
        body = json.dumps({"ns": ADMIN_NAMESPACE}).encode()
        status, _, _ = await request(aw, "POST", "/anywire/negotiate", f"Bearer {TOKEN}", body)
        assert status == 401  # anonymous mode admits anyone, but not there
        status, _, _ = await request(aw, "POST", "/anywire/negotiate", None, b'{"ns": "/"}')
        assert status == 200
    finally:
        await aw.stop()
