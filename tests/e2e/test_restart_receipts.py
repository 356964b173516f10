"""A graceful restart while a POST of client frames is in flight: the POST reaches the old
server after its graceful 4000 has ended the client's downstream. Processed then, its
204 would be the client's only receipt for those frames, and a 204 lost on the way (the
client dropping its POST when the downstream ended, as the Python client did; uvicorn
cutting what still runs once its graceful timeout passes) has the client send the frames
again into the fresh session after the restart: processed twice (protocol 6.7: a graceful
end causes no duplicate). So the draining server refuses it (503, 4000: nothing
processed, tests/server/test_drain_refuses.py) and the client sends it once, to the new
server.

The order is pinned, not timed (tests/e2e/holdapp.py): the server holds the marked POST,
read whole, before handing it on; the test SIGTERMs the server, waits until the client
has taken the drain's 4000, and only then lets the POST through. A second session, on
long-poll, that never polls again keeps the drain waiting (for half its budget, 20 s
here) with the sessions still known; the test lets it go once the POST was answered.
Pings are set far off (30 s) so that no heartbeat, waiting behind the held POST, ends
the session (4001). (The Python client's side, a 204 that arrives after the downstream
ended still confirms its frames until a hello renumbers them, is
tests/unit/test_peer.py's; docs/reliability/client-upstream-restart.md.)

SSE and long-poll only: a WebSocket write has no answer (its frames are confirmed by
``rx`` alone), so there is no 204 to lose.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from anywire.clients.python import Client

from ..waiting import until
from .conftest import make_token, start_server
from .holdapp import MARK, hold_env, recorded


async def _straggler(http: httpx.AsyncClient, url: str) -> str:
    """A long-poll session that polls once (its hello) and then not again: attached, it
    holds up the drain. Returns its session token."""
    auth = {"Authorization": f"Bearer {make_token('straggler')}"}
    answer = await http.post(
        url + "/anywire/negotiate", json={"transports": ["longpoll"]}, headers=auth
    )
    answer.raise_for_status()
    neg = answer.json()
    hello = await http.get(url + "/anywire/poll", params={"ticket": neg["ticket"]})
    hello.raise_for_status()
    return str(neg["token"])


@pytest.mark.parametrize("transport", ["sse", "longpoll"])
async def test_a_post_that_reaches_a_draining_server_is_processed_once(
    tmp_path: Path, transport: str
) -> None:
    record = tmp_path / "record.jsonl"
    # The drain waits up to 20 s for the straggler; the restarted server holds nothing.
    env = {**hold_env(record), "AW_SHUTDOWN_TIMEOUT": "40"}
    server = start_server(env, app="tests.e2e.holdapp:app")
    client = Client(server.url, make_token(f"receipts-{transport}"), transports=[transport],
                    backoff_max=0.3)  # fmt: skip
    marked = MARK.decode()
    async with httpx.AsyncClient(timeout=40) as http:
        try:
            straggler = await _straggler(http, server.url)
            await client.connect()
            await client.emit("log", marked)
            assert (await http.get(server.url + "/hold/held")).text == "held"
            old_sid = client.sid
            server.proc.send_signal(signal.SIGTERM)  # the graceful drain: 4000 to each link
            await until(lambda: client.last_close is not None, 10, "the client taking the 4000")
            assert client.last_close is not None and client.last_close[0] == 4000
            assert client.peer.unconfirmed, "the held frame is not confirmed yet"
            # Only now does the held POST reach the host (the session is still known:
            # the straggler holds up the drain): refused, nothing processed.
            await http.post(server.url + "/hold/release")
            assert (await http.get(server.url + "/hold/answered")).text == "503"
            assert recorded(record) == []
            # The straggler's poll takes its 4000: the drain ends, the server exits.
            await http.get(server.url + "/anywire/poll", params={"ack": 0},
                           headers={"X-Anywire-Token": straggler})  # fmt: skip
            await asyncio.get_running_loop().run_in_executor(None, server.stop)  # bounded
            server.env = {**server.env, "AW_HOLD": "0"}
            server.proc = start_server(server.env, server.port, server.log, server.args,
                                       app=server.app).proc  # fmt: skip
            await until(lambda: client.state == "connected" and client.sid != old_sid, 20,
                        "the client in a fresh session on the new server")  # fmt: skip
            assert not client.recovered
            await client.emit("log", "after")
            assert await client.call("echo", "flushed", timeout=10) == "flushed"
            assert recorded(record) == [marked, "after"]  # each once
        finally:
            await client.close()
            server.stop(sig_term=False)  # at once, even with the straggler still there
