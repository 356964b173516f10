"""The Python client's join answer always says ``count`` and ``partial`` (the server lists
at most ``presence_limit`` members; issue #13)."""

from __future__ import annotations

from anywire.clients.python.continuity import Continuity
from anywire.core.frames import Ack, Hello
from anywire.core.peer import ClientPeer


def _continuity() -> Continuity:
    peer = ClientPeer()
    peer.on_hello(Hello(sid="A", recovered=False, seq=0, last=0))
    return Continuity(peer, "/")


def test_a_cut_answer_keeps_the_servers_count_and_partial() -> None:
    c = _continuity()
    join = c.join("busy", None, None)
    page = {"room": "busy", "presence": [{"sid": "A"}], "count": 250, "partial": True}
    c.answered(Ack(1, join.id, True, page))
    assert page["count"] == 250 and page["partial"] is True


def test_an_answer_without_them_gets_them_from_the_list() -> None:
    c = _continuity()
    join = c.join("small", None, None)
    answer = {"room": "small", "presence": [{"sid": "A"}, {"sid": "B"}]}
    c.answered(Ack(1, join.id, True, answer))
    assert answer["count"] == 2 and answer["partial"] is False
