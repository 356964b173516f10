"""Real Redis Cluster and Sentinel set-ups for the tests (issue #18).

:func:`start_cluster` starts ``masters`` redis-server processes with ``--cluster-enabled
yes`` (and ``replicas`` replicas per master), joins them with ``redis-cli --cluster
create`` and waits for ``cluster_state:ok`` everywhere. :func:`start_sentinel` starts a
primary, a replica and three ``redis-server --sentinel`` processes (quorum 2) with short
timeouts, so a failover takes a few seconds. Every process can be killed, stopped
(SIGSTOP) and started again on its port; every wait is bounded.

Debian's ``redis-server`` binary runs Sentinel itself (``--sentinel``): the
``redis-sentinel`` package is not needed.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.scale.conftest import RedisServer, wait_for

__all__ = [
    "Cluster",
    "RedisProc",
    "Sentinels",
    "cluster_port",
    "start_cluster",
    "start_sentinel",
]

NODE_TIMEOUT_MS = 1000  # cluster-node-timeout: a dead master is failed over in ~2-3 s
DOWN_AFTER_MS = 1000  # sentinel down-after-milliseconds
FAILOVER_TIMEOUT_MS = 3000
# Every data node: no disk, and a full sync starts at once. Redis 7 waits
# repl-diskless-sync-delay (5 s) for more replicas before a diskless full sync; here each
# master has its one replica, so that wait only delayed every set-up (and every resync
# after a failover) by 5 s.
DATA_ARGS = ["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"]


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class RedisProc(RedisServer):
    """A redis-server with extra arguments (a config file first, if any), in ``dir``."""

    args: list[str] = field(default_factory=list)
    conf: Path | None = None
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="aw-redis-")))

    def start(self) -> None:
        cmd = ["redis-server", *([str(self.conf)] if self.conf else [])]
        cmd += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        self.proc = subprocess.Popen(
            [*cmd, *self.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(self.ping, 10, f"redis-server on {self.port} to answer")

    def stop(self) -> None:
        """SIGSTOP: the process holds its sockets and answers nothing."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def cont(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def info(self, section: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self.cli("info", section).splitlines():
            key, sep, value = line.strip().partition(":")
            if sep:
                out[key] = value
        return out

    def cleanup(self) -> None:
        self.cont()
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Cluster:
    """A running Redis Cluster: its processes by port."""

    procs: list[RedisProc]

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL naming every node (any one would do)."""
        hosts = ",".join(f"127.0.0.1:{p.port}" for p in self.procs)
        return f"redis+cluster://{hosts}"

    def by_port(self, port: int) -> RedisProc:
        return next(p for p in self.procs if p.port == port)

    def alive(self) -> list[RedisProc]:
        return [p for p in self.procs if p.proc is not None and p.proc.poll() is None]

    def masters(self) -> dict[int, tuple[int, int]]:
        """port -> (first slot, last slot) of every master with slots (CLUSTER SLOTS
        from a live node); a master with several ranges gives its first."""
        out: dict[int, tuple[int, int]] = {}
        lines = self.alive()[0].cli("cluster", "slots").splitlines()
        # CLUSTER SLOTS, flattened by redis-cli: start, end, master ip, port, id, ...
        i = 0
        while i + 3 < len(lines):
            if lines[i].isdigit() and lines[i + 1].isdigit() and lines[i + 2] == "127.0.0.1":
                start, end, port = int(lines[i]), int(lines[i + 1]), int(lines[i + 3])
                out.setdefault(port, (start, end))
                i += 4
            else:
                i += 1
        return out

    def node_id(self, port: int) -> str:
        return self.by_port(port).cli("cluster", "myid").strip()

    def slot_owner(self, slot: int) -> int:
        """The port of the master serving ``slot`` (as a live node sees it)."""
        for line in self.alive()[0].cli("cluster", "nodes").splitlines():
            parts = line.split()
            if "master" not in parts[2] or "fail" in parts[2]:
                continue
            for rng in parts[8:]:
                if rng.startswith("["):
                    continue
                lo, _, hi = rng.partition("-")
                if int(lo) <= slot <= int(hi or lo):
                    return int(parts[1].split(":")[1].split("@")[0])
        raise LookupError(f"slot {slot} has no master")

    def move_slot(self, slot: int, to_port: int) -> None:
        """Move an empty-or-not ``slot`` to the master on ``to_port`` (the migration
        ``redis-cli --cluster reshard`` does: IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE)."""
        src = self.begin_move(slot, to_port)
        while True:
            keys = src.cli("cluster", "getkeysinslot", str(slot), "100").split()
            if not keys:
                break
            src.cli("migrate", "127.0.0.1", str(to_port), "", "0", "5000", "keys", *keys)
        self.finish_move(slot, to_port)

    def begin_move(self, slot: int, to_port: int) -> RedisProc:
        """Mark ``slot`` MIGRATING on its master and IMPORTING on ``to_port``'s (keys the
        source does not hold are then answered with ASK); returns the source."""
        src = self.by_port(self.slot_owner(slot))
        dst = self.by_port(to_port)
        dst.cli("cluster", "setslot", str(slot), "importing", self.node_id(src.port))
        src.cli("cluster", "setslot", str(slot), "migrating", self.node_id(dst.port))
        return src

    def finish_move(self, slot: int, to_port: int) -> None:
        """Give ``slot`` to ``to_port``'s master on every node."""
        dst_id = self.node_id(to_port)
        dst = self.by_port(to_port)
        for proc in (dst, *[p for p in self.alive() if p is not dst]):
            proc.cli("cluster", "setslot", str(slot), "node", dst_id)
        wait_for(lambda: self.slot_owner(slot) == to_port, 10, f"slot {slot} to move")

    def wait_ok(self, timeout: float = 20.0) -> None:
        def ok() -> bool:
            try:
                return all("cluster_state:ok" in p.cli("cluster", "info") for p in self.alive())
            except subprocess.SubprocessError:
                return False

        wait_for(ok, timeout, "cluster_state:ok on every node")

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.cleanup()


def start_cluster(masters: int = 3, replicas: int = 0) -> Cluster:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each."""
    procs: list[RedisProc] = []
    try:
        for _ in range(masters * (1 + replicas)):
            proc = RedisProc(cluster_port())
            proc.args = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(proc.dir / "nodes.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                *DATA_ARGS,
            ]  # fmt: skip
            proc.start()
            procs.append(proc)
        hosts = [f"127.0.0.1:{p.port}" for p in procs]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *hosts,
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            capture_output=True, timeout=60, check=True,
        )  # fmt: skip
        cluster = Cluster(procs)
        cluster.wait_ok()
        if replicas:

            def synced() -> bool:
                roles = [p.info("replication") for p in procs]
                return (
                    sum(
                        r.get("role") == "slave" and r.get("master_link_status") == "up"
                        for r in roles
                    )
                    == masters * replicas
                )

            wait_for(synced, 20, "every replica in sync")
        return cluster
    except BaseException:
        for proc in procs:
            proc.cleanup()
        raise


@dataclass
class Sentinels:
    """A primary, a replica and three Sentinels watching service ``name``."""

    name: str
    primary: RedisProc
    replica: RedisProc
    sentinels: list[RedisProc]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.name}/0"

    def master_port(self) -> int:
        """The primary's port as the first live Sentinel reports it."""
        for s in self.sentinels:
            try:
                out = s.cli("sentinel", "get-master-addr-by-name", self.name).split()
            except subprocess.SubprocessError:
                continue
            return int(out[1])
        raise LookupError("no Sentinel answers")

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> RedisProc:
        """Wait until the Sentinels promoted another server, and it says it is master."""

        def moved() -> bool:
            try:
                port = self.master_port()
            except (LookupError, IndexError):
                return False
            if port == old_port:
                return False
            new = self.primary if self.primary.port == port else self.replica
            return new.info("replication").get("role") == "master"

        wait_for(moved, timeout, "the Sentinels to fail over")
        port = self.master_port()
        return self.primary if self.primary.port == port else self.replica

    def cleanup(self) -> None:
        for proc in (*self.sentinels, self.primary, self.replica):
            proc.cleanup()


def start_sentinel(name: str = "awprimary") -> Sentinels:
    """Primary + replica + 3 Sentinels (quorum 2, down after 1 s, failover timeout 3 s)."""
    plain = list(DATA_ARGS)
    procs: list[RedisProc] = []
    try:
        primary = RedisProc(cluster_port(), args=list(plain))
        primary.start()
        procs.append(primary)
        replica = RedisProc(cluster_port(), args=[*plain, "--replicaof", "127.0.0.1",
                                                 str(primary.port)])  # fmt: skip
        replica.start()
        procs.append(replica)
        wait_for(lambda: replica.info("replication").get("master_link_status") == "up", 15,
                 "the replica to sync")  # fmt: skip
        sentinels = []
        for _ in range(3):
            proc = RedisProc(cluster_port())
            proc.conf = proc.dir / "sentinel.conf"
            proc.conf.write_text(
                f"sentinel monitor {name} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {name} 1\n"
            )
            proc.args = ["--sentinel"]
            proc.start()
            procs.append(proc)
            sentinels.append(proc)
        setup = Sentinels(name, primary, replica, sentinels)

        def known() -> bool:
            try:
                out = sentinels[0].cli("sentinel", "master", name)
            except subprocess.SubprocessError:
                return False
            lines = out.splitlines()
            info = dict(zip(lines[::2], lines[1::2], strict=False))
            return info.get("num-other-sentinels") == "2" and info.get("num-slaves") == "1"

        wait_for(known, 20, "the Sentinels to know each other and the replica")
        return setup
    except BaseException:
        for proc in procs:
            proc.cleanup()
        raise
