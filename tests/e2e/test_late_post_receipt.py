"""A POST answered after its transport ended still confirms its frames (the Python
client; the JS client's socket.js ``onconfirm`` does the same).

The downstream is lost without a drain (4001, as a lost heartbeat) while a POST of client
frames is in flight; the server processes that POST afterwards, for the session waiting
to be resumed, and answers 204. The client cannot get back in before the session
expires, so it lands in a fresh session (``recovered: false``) whose hello renumbers its
unconfirmed frames and sends them again. A client that cancelled its POST when the
downstream ended never read the 204 and sends the frame again: processed twice. A client
that lets the POST finish takes the 204 as the receipt it is (protocol 8.5), as long as
no hello renumbered meanwhile (tests/unit/test_peer.py pins that half).

The order is pinned by the server (tests/e2e/holdapp.py): it holds the marked POST, then
the test closes negotiates (503 busy), cuts the downstream, lets the POST through and
waits for it to be processed, expires the session, and opens negotiates again.

SSE and long-poll only: a WebSocket write has no answer (its frames are confirmed by
``rx`` alone), so there is no 204 to lose.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from anywire.clients.python import Client

from ..waiting import until
from .conftest import make_token, start_server
from .holdapp import MARK, hold_env, recorded


@pytest.mark.parametrize("transport", ["sse", "longpoll"])
async def test_a_post_answered_after_its_transport_ended_confirms_its_frames(
    tmp_path: Path, transport: str
) -> None:
    record = tmp_path / "record.jsonl"
    server = start_server(hold_env(record), app="tests.e2e.holdapp:app")
    client = Client(server.url, make_token(f"late-{transport}"), transports=[transport],
                    backoff_max=0.3)  # fmt: skip
    marked = MARK.decode()
    async with httpx.AsyncClient(timeout=40) as http:
        try:
            await client.connect()
            await client.emit("log", marked)
            assert (await http.get(server.url + "/hold/held")).text == "held"
            await http.post(server.url + "/hold/shut")  # the client stays out from now
            await http.post(server.url + "/hold/cut")  # its downstream ends (4001)
            await until(lambda: client.state != "connected", 10, "the client off its stream")
            assert client.peer.unconfirmed, "the held frame is not confirmed yet"
            await http.post(server.url + "/hold/release")
            assert (await http.get(server.url + "/hold/answered")).text == "204"
            assert recorded(record) == [marked]  # processed, for the waiting session
            await http.post(server.url + "/hold/expire")
            await http.post(server.url + "/hold/open")
            # (A fresh session: an expired one's token gets the same sid back.)
            await until(lambda: client.state == "connected", 20, "the client back in")
            assert not client.recovered
            await client.emit("log", "after")
            assert await client.call("echo", "flushed", timeout=10) == "flushed"
            assert recorded(record) == [marked, "after"]  # each once
        finally:
            await client.close()
            server.stop(sig_term=False)
