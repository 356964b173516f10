"""The Redis URL forms (anywire.redis_connect) and the publish script variants
(anywire.redis_scripts): parsing only; the clients run against real servers in
tests/scale/test_cluster_*.py and test_sentinel_failover.py."""

from __future__ import annotations

from typing import Any

import pytest

from anywire.redis_connect import RedisURLError, parse
from anywire.redis_scripts import (
    cluster_script,
    is_user_stream,
    publish_script,
    stamp_key,
    stamped_call,
)
from anywire.redis_wire import PUBLISH, PUBLISH_SHA, publish_call


def test_the_accepted_forms() -> None:
    plain = parse("redis://127.0.0.1:6379/2")
    assert (plain.kind, plain.hosts, plain.db, plain.tls) == (
        "standalone", (("127.0.0.1", 6379),), 2, False
    )  # fmt: skip
    tls = parse("rediss://:s%40cret@cache.example:6380/0?ssl_cert_reqs=none")
    assert (tls.kind, tls.tls, tls.password) == ("standalone", True, "s@cret")
    assert tls.kwargs()["ssl_cert_reqs"] == "none"
    sentinel = parse("redis+sentinel://:pw@a:26379,b/mymaster/3?sentinel_password=x")
    assert (sentinel.kind, sentinel.service, sentinel.db) == ("sentinel", "mymaster", 3)
    assert sentinel.hosts == (("a", 26379), ("b", 26379))  # Sentinel's default port
    assert sentinel.password == "pw"
    cluster = parse("redis+cluster://a:7000,b:7001")
    assert (cluster.kind, cluster.hosts) == ("cluster", (("a", 7000), ("b", 7001)))
    flagged = parse("redis://a:7000?cluster=true")
    assert flagged.kind == "cluster" and "cluster" not in flagged.options
    assert parse("rediss+cluster://a:7000").tls
    assert parse("unix:///run/redis.sock?db=1").kind == "standalone"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "not a Redis URL"),
        ("127.0.0.1:6379", "not a Redis URL"),
        ("http://a:1", "unknown Redis URL scheme"),
        ("redis://", "no host"),
        ("redis://a:1,b:2", "bad Redis URL"),
        ("redis://a:99999", "Port out of range"),
        ("redis://a:1/zero", "bad database number"),
        ("redis://a:1/²", "bad database number"),
        ("redis+sentinel://a:1", "names no Sentinel service"),
        ("redis+sentinel://a:1/svc/0/9", "bad Redis URL"),
        ("redis+cluster://a:1/1", "only database 0"),
    ],
)
def test_bad_urls_say_why(url: str, why: str) -> None:
    with pytest.raises(RedisURLError, match=why):
        parse(url)


def test_the_plain_variant_is_the_shared_script() -> None:
    script = publish_script()
    assert (script.text, script.sha) == (PUBLISH, PUBLISH_SHA)


def test_variants_differ_only_where_they_must() -> None:
    stamped = publish_script(stamped=True).text
    assert "INFO', 'replication'" in stamped and "KEYS[5]" in stamped
    assert "for i = 1, 4 do" in stamped
    sharded = publish_script(sharded=True).text
    assert "SPUBLISH" in sharded and sharded.replace("SPUBLISH", "PUBLISH") == PUBLISH
    both = publish_script(sharded=True, stamped=True).text
    assert "SPUBLISH" in both and "INFO" in both
    shas = {publish_script(sharded=a, stamped=b).sha for a in (0, 1) for b in (0, 1)}
    assert len(shas) == 4


def test_a_stamped_call_puts_the_stamp_fourth() -> None:
    call = publish_call("aw", "room:/:r", b"x", "key1", history=10, ttl=60, idempotency_ms=5)
    stamped = stamped_call(call, "aw")
    assert stamped.keys[:3] == call.keys[:3]
    assert stamped.keys[3] == stamp_key("aw", "room:/:r") == "aw:{room:/:r}:r"
    assert stamped.keys[4] == call.keys[3]  # the idempotency key moves to KEYS[5]
    # The stream's own channel (interest routing), which shares the keys' hash tag.
    assert stamped.args[4] == call.args[4] == "aw:{room:/:r}:c"


def test_on_a_cluster_user_streams_are_published_plain_the_others_sharded() -> None:
    """Nodes and Publishers pick the script by stream (redis_scripts.cluster_script): a
    user stream goes out by plain PUBLISH (the on_undelivered pattern subscription
    needs it), every other stream by SPUBLISH; both stamped."""
    for stream, sharded in (("room:/:r", True), ("sess:/:s1", True), ("all:/", True),
                            ("user:/:alice", False)):  # fmt: skip
        call = publish_call("aw", stream, b"x", None, history=10, ttl=60, idempotency_ms=5)
        assert cluster_script(call) is publish_script(sharded=sharded, stamped=True)
        assert is_user_stream(stream) is not sharded


def test_tls_reaches_the_data_servers_only() -> None:
    """rediss+sentinel: TLS (and its options) to the primary; the Sentinels get the
    timeouts and ?sentinel_password= only. Built, not connected."""
    from anywire.redis_connect import command_client, sync_command_client

    target = parse("rediss+sentinel://:pw@a:1/svc/2?ssl_cert_reqs=none&sentinel_password=sp")
    for client in (command_client(target), sync_command_client(target)):
        pool: Any = client.connection_pool
        assert pool.connection_class.__name__ == "SentinelManagedSSLConnection"
        assert pool.connection_kwargs["ssl_cert_reqs"] == "none"
        assert pool.connection_kwargs["password"] == "pw"
        sentinel_kwargs = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
        assert sentinel_kwargs["password"] == "sp"
        assert "ssl_cert_reqs" not in sentinel_kwargs
    cluster: Any = command_client(parse("rediss+cluster://a:1?ssl_cert_reqs=none"))
    nodes = cluster.nodes_manager.startup_nodes.values()
    assert [n.connection_class.__name__ for n in nodes] == ["SSLConnection"]
