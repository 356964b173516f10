"""The Publisher on a Redis that dies (SIGKILL) or stalls: it raises one documented
exception, :class:`anywire.errors.BrokerUnavailable` (never redis-py's), whose
``maybe_published`` tells a call that never reached Redis from one whose reply was lost,
and a retry with the same ``id=`` after a lost reply publishes once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
from collections.abc import Iterator

import pytest
from redis.exceptions import RedisError

from anywire.errors import BrokerUnavailable
from anywire.publisher import AsyncPublisher, Publisher
from anywire.server import BrokerUnavailable as ServerBrokerUnavailable
from tests.e2e.conftest import free_port
from tests.netfault import FaultProxy
from tests.scale.conftest import RedisServer, wait_for


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A redis-server of this test alone (the tests kill it)."""
    server = RedisServer(free_port())
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        os.kill(server.proc.pid, signal.SIGCONT)  # in case a test left it stopped
    server.kill()


def test_one_exception_type_for_server_and_publisher() -> None:
    assert ServerBrokerUnavailable is BrokerUnavailable
    assert issubclass(BrokerUnavailable, ConnectionError)
    assert not issubclass(BrokerUnavailable, RedisError)


def test_sync_publisher_redis_killed_then_back(redis: RedisServer) -> None:
    pub = Publisher(redis.url, timeout=2.0)
    try:
        assert pub.emit("e", 1, room="r")[2] == 1  # a pooled connection to a live Redis
        redis.kill()  # SIGKILL
        with pytest.raises(BrokerUnavailable) as info:
            pub.emit("e", 2, room="r")
        assert info.value.maybe_published is False
        assert "was not published" in str(info.value)
        redis.start()  # same port, empty (no persistence): the same publisher recovers
        assert pub.emit("e", 3, room="r")[2] == 1
    finally:
        pub.close()


async def test_async_publisher_redis_killed_then_back(redis: RedisServer) -> None:
    pub = AsyncPublisher(redis.url, timeout=2.0)
    try:
        assert (await pub.emit("e", 1, room="r"))[2] == 1
        redis.kill()
        # While redis-cli sees Redis gone, the loop reads the pooled socket's EOF, as any
        # time between two emits would. (In the same loop turn as the kill the pool cannot
        # know: the emit then says maybe_published, the conservative answer.)
        await asyncio.to_thread(wait_for, lambda: not redis.ping(), 5, "Redis gone")
        with pytest.raises(BrokerUnavailable) as info:
            await pub.emit("e", 2, room="r")
        assert info.value.maybe_published is False
        redis.start()
        assert (await pub.emit("e", 3, room="r"))[2] == 1
    finally:
        await pub.aclose()


def test_unreachable_redis_is_broker_unavailable() -> None:
    pub = Publisher(f"redis://127.0.0.1:{free_port()}/0", timeout=2.0)
    try:
        with pytest.raises(BrokerUnavailable) as info:
            pub.emit("e", 1, room="r")
        assert info.value.maybe_published is False
    finally:
        pub.close()


async def test_redis_killed_with_the_publish_in_flight_is_maybe_published(
    redis: RedisServer,
) -> None:
    pub = AsyncPublisher(redis.url, timeout=10.0)
    assert redis.proc is not None
    try:
        await pub.emit("e", 1, room="r")
        os.kill(redis.proc.pid, signal.SIGSTOP)  # Redis takes the bytes but never answers
        task = asyncio.create_task(pub.emit("e", 2, room="r", id="job-7"))
        # The call is in flight once its bytes wait in Redis's socket.
        await asyncio.to_thread(wait_for, lambda: _unread_bytes(redis.port) > 0, 10, "the call")
        redis.proc.send_signal(signal.SIGKILL)
        redis.proc.wait(10)
        redis.proc = None
        with pytest.raises(BrokerUnavailable) as info:
            await asyncio.wait_for(task, 10)
        assert info.value.maybe_published is True
        assert "may have been published" in str(info.value)
    finally:
        await pub.aclose()


def test_lost_reply_then_retry_with_the_same_id_publishes_once(redis: RedisServer) -> None:
    proxy = FaultProxy(redis.port)
    pub = Publisher(f"redis://127.0.0.1:{proxy.port}/0", timeout=0.5)
    try:
        first = pub.emit("e", 0, room="r")
        proxy.set("oneway")  # Redis runs the publish; its reply never comes back
        with pytest.raises(BrokerUnavailable) as info:
            pub.emit("e", 1, room="r", id="order-9")
        assert info.value.maybe_published is True
        wait_for(lambda: redis.cli("get", "aw:{room:/:r}:n").strip() == "2", 10, "the run")
        proxy.set("forward")
        again = pub.emit("e", 1, room="r", id="order-9")  # the documented retry
        assert again == (first[0], first[1], 2)
        assert redis.cli("xlen", "aw:{room:/:r}:h").strip() == "2"  # published once
        fresh = pub.emit("e", 2, room="r", id="order-10")
        assert fresh[2] == 3
    finally:
        pub.close()
        proxy.close()


def test_threads_share_a_publisher_through_a_kill(redis: RedisServer) -> None:
    """Every emit from 4 threads either returns a position or raises BrokerUnavailable."""
    pub = Publisher(redis.url, timeout=2.0)
    outcomes: list[object] = []
    lock = threading.Lock()
    killed = threading.Event()

    def work() -> None:
        for i in range(50):
            if i == 10:
                killed.wait(10)
            try:
                result: object = pub.emit("e", i, room="t")
            except Exception as exc:  # anything but BrokerUnavailable fails below
                result = exc
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=work) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: len(outcomes) >= 40, 10, "the first emits")
        redis.kill()
        killed.set()
        for t in threads:
            t.join(30)
    finally:
        pub.close()
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(outcomes) == 200 and errors
    assert all(isinstance(e, BrokerUnavailable) for e in errors), errors


def _unread_bytes(port: int) -> int:
    """Bytes received by the listening side of ``port`` and not read yet (Recv-Q)."""
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        timeout=5,
        check=True,
    ).stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if line.strip())
