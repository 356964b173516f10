"""What every worker pays for every event: the Redis bus receive path, in CPU per event.

    python3 bench/bus_receive.py [--events 50000] [--rooms 1]

Each event reaches every worker subscribed to its stream's channel (with interest
routing, the workers hosting a client of that room; before issue #18, every worker, over
one bus channel); each such worker parses it (redis-py), unpacks the
envelope (msgpack), runs it through its gap tracker and hands it to its host, whether
or not it holds a client of that room. That per-event cost is what N workers pay N
times where one node pays it once (docs/scaling.md, "Many cores").

This measures it alone: its own redis-server on a free 127.0.0.1 port, one
:class:`~anywire.server.broker_redis.RedisBroker` in this process whose ``deliver``
only counts (subscribed to the rooms' channels), and a producer subprocess that runs
the real publish script
(:mod:`anywire.redis_wire`, pipelined) for ``--events`` room events of ~100 bytes. The
figure is this process's CPU time (user + system, ``time.process_time``) from the first
event received to the last, divided by the events: robust to a busy machine. It prints
which redis-py parser was in use (hiredis, when installed, or the pure-Python one), and
what the host then does with an event for a room it holds no client of.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anywire.bench.redisproc import RedisProcess  # noqa: E402
from anywire.core.streams import room_stream  # noqa: E402
from anywire.server.broker import Envelope  # noqa: E402
from anywire.server.broker_redis import RedisBroker  # noqa: E402

PRODUCER = """
import sys, time
import redis
from anywire.redis_wire import PUBLISH, pack, publish_call
port, events, rooms = (int(a) for a in sys.argv[1:4])
r = redis.Redis(port=port)
sha = r.script_load(PUBLISH)
pipe = r.pipeline(transaction=False)
for i in range(events):
    room = f"r{i % rooms}"
    body = pack("room", "/", room, "m", {"ts": time.monotonic_ns() // 1000, "p": "x" * 40})
    call = publish_call("aw", f"room:/:{room}", body, None, history=1000, ttl=86400,
                        idempotency_ms=300000)
    pipe.evalsha(sha, len(call.keys), *call.keys, *call.args)
    if i % 500 == 499:
        pipe.execute()
pipe.execute()
"""

# --subscribers K: K more subscribers of every room channel (as K more workers hosting
# clients of every room would be) that read and discard, so redis-server's CPU per
# publish can be seen to grow with the number of receiving workers.
LISTENERS = r"""
import selectors, socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
sel = selectors.DefaultSelector()
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"*2\r\n$10\r\nPSUBSCRIBE\r\n$13\r\naw:{room:*}:c\r\n")
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
print("subscribed", flush=True)
while True:
    for key, _ in sel.select():
        if not key.fileobj.recv(1 << 16):
            sys.exit(0)
"""


def redis_cpu(pid: int) -> float:
    """CPU seconds (user + system) of redis-server so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dispatch_us(events: int = 100_000) -> float:
    """CPU microseconds of ``SessionHost.deliver`` for a room event with no local
    recipient (what a worker does with an event for another worker's room)."""
    from anywire.server.app import Anywire

    host = Anywire(anonymous=True).host
    envs = [Envelope("room", "/", "elsewhere", "m", {"ts": 1, "p": "x" * 40})] * events
    start = time.process_time()
    for env in envs:
        host.deliver(env)
    return (time.process_time() - start) * 1e6 / events


def parser_name(broker: RedisBroker) -> str:
    """The redis-py response parser the broker's connections use."""
    pool = broker.redis.connection_pool
    conn = pool.connection_class(**pool.connection_kwargs)
    return type(conn._parser).__name__


async def measure(
    port: int, events: int, rooms: int, redis_pid: int
) -> tuple[float, float, int, str]:
    """CPU microseconds per event received by one broker and spent by redis-server per
    publish, events seen, parser."""
    got = 0
    first_cpu = last_cpu = 0.0
    done = asyncio.Event()

    def deliver(env: Envelope) -> None:
        nonlocal got, first_cpu, last_cpu
        if env.event != "m":
            return
        got += 1
        if got == 1:
            first_cpu = time.process_time()
        if got == events:
            last_cpu = time.process_time()
            done.set()

    broker = RedisBroker(f"redis://127.0.0.1:{port}/0")
    await broker.start(deliver)
    for k in range(rooms):  # as the rooms' clients would: subscribed before publishing
        await broker.want(room_stream("/", f"r{k}"), "bench")
    redis0 = redis_cpu(redis_pid)
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, str(port), str(events), str(rooms)],
        env={"PYTHONPATH": str(ROOT)},
    )
    try:
        async with asyncio.timeout(300):
            await done.wait()
    finally:
        producer.wait(30)
        redis_us = (redis_cpu(redis_pid) - redis0) * 1e6 / events
        name = parser_name(broker)
        await broker.stop()
    # The first event's cost is not counted: (events - 1) intervals.
    return (last_cpu - first_cpu) * 1e6 / max(1, events - 1), redis_us, got, name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rooms", type=int, default=1, help="streams the events spread over")
    parser.add_argument(
        "--subscribers", type=int, default=0, help="more room subscribers (read and discard)"
    )
    args = parser.parse_args()
    redis = RedisProcess()
    port = redis.port
    listeners: subprocess.Popen[bytes] | None = None
    try:
        if args.subscribers:
            listeners = subprocess.Popen(
                [sys.executable, "-c", LISTENERS, str(port), str(args.subscribers)],
                stdout=subprocess.PIPE,
            )
            assert listeners.stdout is not None
            if listeners.stdout.readline().strip() != b"subscribed":
                raise SystemExit("the extra subscribers did not subscribe")
        measured = asyncio.run(measure(port, args.events, args.rooms, redis.proc.pid))
        per_event, redis_us, got, name = measured
    finally:
        if listeners is not None:
            listeners.kill()
            listeners.wait(10)
        redis.stop()
    print(
        f"{got} events over {args.rooms} room(s), parser {name}: "
        f"{per_event:.1f} us of CPU per event received (RedisBroker, deliver a no-op); "
        f"redis-server {redis_us:.1f} us per publish with {args.subscribers + 1} subscriber(s)"
    )
    print(f"host dispatch of an event with no local recipient: {dispatch_us():.2f} us of CPU")


if __name__ == "__main__":
    main()
