"""What the failover stamp costs Redis: server CPU per publish, plain vs stamped script.

The stamped publish script (anywire/redis_scripts.py, used on Sentinel and Cluster URLs)
adds ``INFO replication`` and a ``SET`` of the stream's stamp to every publish. This
starts its own redis-server on a free 127.0.0.1 port, runs ``N`` publishes of each
variant in alternating rounds (pipelined, so the client is not the bottleneck) over 100
streams, and reads the server's CPU time (utime + stime of /proc/<pid>/stat) around each
round: CPU-seconds of Redis per publish, independent of other load on the machine.

    python3 bench/redis_stamp.py [N per round] [rounds]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import redis

from anywire.bench.redisproc import RedisProcess
from anywire.redis_scripts import Script, publish_script, stamped_call
from anywire.redis_wire import pack, publish_call


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def round_of(client: redis.Redis, script: Script, stamped: bool, n: int, tag: str) -> None:
    body = pack("room", "/", "r", "e", {"x": 1})
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        call = publish_call("bench", f"room:/:{tag}{i % 100}", body, None,
                            history=1000, ttl=600, idempotency_ms=1000)  # fmt: skip
        if stamped:
            call = stamped_call(call, "bench")
        pipe.evalsha(script.sha, len(call.keys), *call.keys, *call.args)
        if len(pipe) >= 1000:
            pipe.execute()
    pipe.execute()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    server = RedisProcess()
    try:
        client = redis.Redis(port=server.port)
        variants = {"plain": (publish_script(), False),
                    "stamped": (publish_script(stamped=True), True)}  # fmt: skip
        for script, _ in variants.values():
            client.script_load(script.text)
        per: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                script, stamped = variants[name]
                before = cpu_seconds(server.proc.pid)
                round_of(client, script, stamped, n, f"{name}{r}-")
                per[name].append((cpu_seconds(server.proc.pid) - before) / n * 1e6)
        load = Path("/proc/loadavg").read_text().split()[:3]
        for name, values in per.items():
            best = min(values)
            print(f"{name:8s} Redis CPU per publish: best {best:.2f} us, rounds "
                  + ", ".join(f"{v:.2f}" for v in values))  # fmt: skip
        ratio = min(per["stamped"]) / min(per["plain"])
        print(
            f"stamped / plain: {ratio:.2f}x   ({n} publishes x {rounds} rounds each, "
            f"load average {' '.join(load)})"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
