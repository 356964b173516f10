"""The Redis URL forms anywire accepts, and the redis-py clients they make.

One place for "which Redis": the broker, the Publisher and the CLI all go through
:func:`parse` (a bad URL is a :class:`RedisURLError`, before anything connects) and
:func:`command_client` / :func:`subscriber_client`.

Forms (``docs/scaling.md``, "Redis URLs"):

- ``redis://[[user]:password@]host[:port][/db][?option=value...]``, ``rediss://`` (TLS,
  the managed-Redis form; ``?ssl_cert_reqs=none|optional|required``,
  ``ssl_ca_certs=``... as redis-py parses them) and ``unix:///path?db=0``: one server.
- ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db][?...]``
  (``rediss+sentinel://``: TLS to the data servers): the primary of ``service`` as the
  Sentinels name it, found again after a failover. ``password`` is the data servers';
  ``?sentinel_password=`` authenticates to the Sentinels.
- ``redis+cluster://[[user]:password@]host:port[,host:port...][?...]`` (``rediss+cluster``):
  a Redis Cluster; any reachable node is enough to find the others. ``redis://...?cluster=
  true`` means the same. A plain ``redis://`` URL that reaches a cluster node is
  detected (``INFO cluster``) by :func:`detect`.

Standard library and redis-py only: the Publisher imports it without the server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.cluster
import redis.sentinel
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

__all__ = [
    "RedisTarget",
    "RedisURLError",
    "command_client",
    "detect",
    "parse",
    "subscriber_client",
    "sync_command_client",
]

_SCHEMES = {
    "redis": ("standalone", False),
    "rediss": ("standalone", True),
    "unix": ("standalone", False),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}

FORMS = (
    "redis://[:password@]host:port/db, rediss://... (TLS), unix:///path, "
    "redis+sentinel://[:password@]host:port[,host:port...]/service[/db], "
    "redis+cluster://[:password@]host:port[,host:port...]"
)


class RedisURLError(ValueError):
    """A Redis URL anywire cannot use (the message names the accepted forms)."""


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed Redis URL: ``kind`` is ``standalone``, ``sentinel`` or ``cluster``."""

    kind: str
    url: str
    hosts: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    def node_url(self, host: str, port: int) -> str:
        """A ``redis[s]://`` URL of one server of this target, with its options."""
        auth = ""
        if self.password is not None or self.username:
            auth = f"{quote(self.username or '')}:{quote(self.password or '')}@"
        query = "&".join(f"{k}={quote(v)}" for k, v in self.options.items())
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}{host}:{port}/{self.db}" + (f"?{query}" if query else "")

    def kwargs(self) -> dict[str, Any]:
        """redis-py connection keyword arguments of the options (TLS, timeouts...)."""
        host, port = self.hosts[0] if self.hosts else ("127.0.0.1", 6379)
        opts: dict[str, Any] = dict(parse_url(self.node_url(host, port)))
        for key in ("host", "port", "db", "connection_class", "path"):
            opts.pop(key, None)
        return opts


def parse(url: str) -> RedisTarget:
    """Parse ``url`` (raises :class:`RedisURLError` with the reason and the forms)."""
    if not isinstance(url, str) or "://" not in url:
        raise RedisURLError(f"not a Redis URL: {url!r} (use {FORMS})")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _SCHEMES:
        raise RedisURLError(f"unknown Redis URL scheme {scheme!r} in {url!r} (use {FORMS})")
    kind, tls = _SCHEMES[scheme]
    if scheme == "unix":
        try:
            parse_url(url)
        except ValueError as exc:
            raise RedisURLError(f"bad Redis URL {url!r}: {exc}") from exc
        return RedisTarget("standalone", url)
    rest = url.split("://", 1)[1]
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in netloc:
        netloc, _, query = netloc.partition("?")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    hosts: list[tuple[str, int]] = []
    for item in filter(None, hostlist.split(",")):
        try:
            split = urlsplit(f"//{item}")
            host, port = split.hostname, split.port or (26379 if kind == "sentinel" else 6379)
        except ValueError as exc:
            raise RedisURLError(f"bad host {item!r} in {url!r}: {exc}") from exc
        if not host:
            raise RedisURLError(f"bad host {item!r} in {url!r}")
        hosts.append((host, port))
    if not hosts:
        raise RedisURLError(f"no host in Redis URL {url!r} (use {FORMS})")
    options = dict(parse_qsl(query, keep_blank_values=True))
    if options.pop("cluster", "").lower() in ("1", "true", "yes"):
        kind = "cluster"
    parts = [p for p in path.split("/") if p]
    service = None
    if kind == "sentinel":
        if not parts:
            raise RedisURLError(f"{url!r} names no Sentinel service (…/service[/db])")
        service = unquote(parts.pop(0))
    if len(parts) > 1 or (kind == "standalone" and len(hosts) > 1):
        raise RedisURLError(f"bad Redis URL {url!r} (use {FORMS})")
    db_text = parts[0] if parts else options.pop("db", "0")
    if not db_text.isascii() or not db_text.isdigit():
        raise RedisURLError(f"bad database number {db_text!r} in {url!r}")
    db = int(db_text)
    if kind == "cluster" and db != 0:
        raise RedisURLError(f"a Redis Cluster has only database 0: {url!r}")
    target = RedisTarget(kind, url, tuple(hosts), service, db, tls, username, password, options)
    try:
        target.kwargs()  # redis-py's own checks of the options
    except ValueError as exc:
        raise RedisURLError(f"bad Redis URL {url!r}: {exc}") from exc
    return target


async def detect(target: RedisTarget, timeout: float = 2.0) -> RedisTarget:
    """``target`` as a cluster if it is a plain URL that reaches a cluster node
    (``INFO cluster`` says ``cluster_enabled:1``); unchanged otherwise or if it cannot
    tell (the server is down: the caller's own retries find out later)."""
    if target.kind != "standalone" or not target.hosts:
        return target
    client = aioredis.Redis.from_url(
        target.url, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        info = await client.info("cluster")
    except Exception:  # undecided: plain Redis, as the URL says
        return target
    finally:
        await client.aclose()
    if str(info.get("cluster_enabled", 0)) == "1":
        return replace(target, kind="cluster")
    return target


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The Sentinel-managed pool that waits (bounded) for a free connection, as the
    broker's plain pool does, instead of failing past ``max_connections``."""


def command_client(
    target: RedisTarget, *, max_connections: int = 200, pool_wait: float = 2.0, **opts: Any
) -> aioredis.Redis | RedisCluster:
    """The client commands go through: a pool waiting up to ``pool_wait`` s for one of
    ``max_connections`` connections (standalone and Sentinel), or a ``RedisCluster``
    (MOVED/ASK and resharding handled by redis-py; ``max_connections`` per node)."""
    if target.kind == "cluster":
        kw = {**target.kwargs(), **opts}
        kw.pop("retry", None)  # RedisCluster retries MOVED/ASK itself
        ssl = bool(kw.pop("ssl", False)) or target.tls
        kw.pop("socket_keepalive", None)
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in target.hosts],
            max_connections=max_connections,
            ssl=ssl,
            **kw,
        )
    if target.kind == "sentinel":
        kw = {**target.kwargs(), **opts}
        sentinel = _sentinel(target, kw)
        client: aioredis.Redis = sentinel.master_for(
            str(target.service),
            redis_class=aioredis.Redis,
            connection_pool_class=_BlockingSentinelPool,
            max_connections=max_connections,
            timeout=pool_wait,
            db=target.db,
            **kw,
        )
        return client
    pool = BlockingConnectionPool.from_url(
        target.url, max_connections=max_connections, timeout=pool_wait, **opts
    )
    return aioredis.Redis.from_pool(pool)


def _sentinel_kwargs(target: RedisTarget, kw: dict[str, Any]) -> dict[str, Any]:
    """Split ``kw``: what the Sentinels' own connections take (returned: timeouts and
    ``?sentinel_password=``) from what the data servers' take (left in ``kw``, with
    ``ssl=True`` for ``rediss+sentinel://``)."""
    secret = kw.pop("sentinel_password", None)
    kw.pop("ssl", None)
    if target.tls:
        kw["ssl"] = True  # SentinelManagedSSLConnection to the primary
    sentinel_kwargs: dict[str, Any] = {k: v for k, v in kw.items() if k.startswith("socket_")}
    if secret:
        sentinel_kwargs["password"] = secret
    return sentinel_kwargs


def _sentinel(target: RedisTarget, kw: dict[str, Any]) -> Sentinel:
    return Sentinel(list(target.hosts), sentinel_kwargs=_sentinel_kwargs(target, kw))


def subscriber_client(target: RedisTarget, **opts: Any) -> Iterator[aioredis.Redis]:
    """Clients for plain ``SUBSCRIBE`` (the bus, node channels), one per (re)connect.

    Standalone: the URL's server. Sentinel: the current primary (asked again at each
    connect). Cluster: the nodes in turn (a plain PUBLISH reaches every node of a
    cluster, so any node serves; after a failure the next one is tried)."""
    if target.kind == "cluster":
        kw = {**target.kwargs(), **opts}
        ssl = bool(kw.pop("ssl", False)) or target.tls
        for host, port in itertools.cycle(target.hosts):
            yield aioredis.Redis(host=host, port=port, ssl=ssl, **kw)
    elif target.kind == "sentinel":
        kw = {**target.kwargs(), **opts}
        kw.pop("max_connections", None)
        sentinel = _sentinel(target, kw)
        while True:
            yield sentinel.master_for(str(target.service), redis_class=aioredis.Redis,
                                      db=target.db, **kw)  # fmt: skip
    else:
        while True:
            yield aioredis.from_url(target.url, **opts)


def sync_command_client(target: RedisTarget, **opts: Any) -> redis.Redis | redis.RedisCluster:
    """:func:`command_client` for blocking code (the synchronous Publisher)."""
    if target.kind == "cluster":
        kw = {**target.kwargs(), **opts}
        kw.pop("retry", None)
        ssl = bool(kw.pop("ssl", False)) or target.tls
        return redis.cluster.RedisCluster(
            startup_nodes=[_sync_node(h, p) for h, p in target.hosts],
            ssl=ssl,
            **kw,
        )
    if target.kind == "sentinel":
        kw = {**target.kwargs(), **opts}
        sentinel = redis.sentinel.Sentinel(
            list(target.hosts), sentinel_kwargs=_sentinel_kwargs(target, kw)
        )
        client: redis.Redis = sentinel.master_for(str(target.service), db=target.db, **kw)
        return client
    return redis.Redis.from_url(target.url, **opts)


def _sync_node(host: str, port: int) -> redis.cluster.ClusterNode:
    return redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]
