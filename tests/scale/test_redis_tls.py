"""The managed-Redis URL form: ``rediss://`` to a real redis-server speaking TLS only on
its port, with a certificate from a throw-away CA. The broker publishes and delivers
with the CA given (``?ssl_ca_certs=``); without it the certificate is refused (the
connection really is verified TLS, not plain text that happens to work).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from anywire.errors import BrokerUnavailable
from anywire.server.broker import Envelope
from anywire.server.broker_redis import RedisBroker
from tests.rediscluster import RedisProc, cluster_port

pytestmark = pytest.mark.timeout(60)


def _certificates(folder: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True,
                       timeout=60)  # fmt: skip

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
        "ca.pem", "-days", "1", "-subj", "/CN=anywire test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "1", "-extfile", "san.ext")  # fmt: skip


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[tuple[int, Path]]:
    proc = RedisProc(cluster_port())
    _certificates(proc.dir)
    tls_port = cluster_port()
    proc.args = [
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(proc.dir / "srv.pem"),
        "--tls-key-file", str(proc.dir / "srv.key"),
        "--tls-ca-cert-file", str(proc.dir / "ca.pem"),
        "--tls-auth-clients", "no",
        "--save", "", "--appendonly", "no",
    ]  # fmt: skip
    proc.start()  # answers its plain port too: the start is checked there
    yield tls_port, proc.dir / "ca.pem"
    proc.cleanup()


async def test_a_broker_over_verified_tls(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    got: list[Envelope] = []
    arrived = asyncio.Event()

    def deliver(env: Envelope) -> None:
        got.append(env)
        arrived.set()

    broker = RedisBroker(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}")
    await broker.start(deliver)
    try:
        async with asyncio.timeout(5):  # (reported once the reader's SUBSCRIBE is confirmed)
            while broker.state() != "ok":
                await asyncio.sleep(0.01)
        # Subscribed over TLS too (the reader's connections come from the same URL).
        await broker.want("room:/:tls", "test")
        pos = await broker.publish(Envelope("room", "/", "tls", "hello", {"n": 1}))
        async with asyncio.timeout(10):
            await arrived.wait()
        assert [(e.event, e.data, e.pos) for e in got] == [("hello", {"n": 1}, pos)]
    finally:
        await broker.stop()


async def test_an_unknown_certificate_is_refused(tls_redis: tuple[int, Path]) -> None:
    port, _ = tls_redis
    broker = RedisBroker(f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required")
    await broker.start(lambda env: None)
    try:
        assert broker.state() == "down"
        with pytest.raises(BrokerUnavailable, match="certificate verify failed"):
            await broker.publish(Envelope("room", "/", "tls", "hello", 1))
    finally:
        await broker.stop()
