"""Pipelined publishes on a Redis Cluster: a batch split by the master of each call's slot.

:class:`~anywire.redis_batch.PublishBatcher` hands a batch here when its client is a
``RedisCluster``. The calls are grouped by the master owning their stream's slot (a
stream's keys and channel share its hash tag: one slot), and each group is written as one
pipeline on one of that master's own connections, as
:func:`~anywire.redis_scripts.run_on_cluster` does for one call; not through
``RedisCluster.pipeline()``, whose retries could run a script twice.

What a reply says, per call:

* ``MOVED`` (the slot map is old) or ``ASK`` (the stream's keys are moving to another
  master): Redis did not run it. The slot map is refreshed (``MOVED``) or the call is
  sent with ``ASKING`` to the master named (``ASK``), and the call goes again in the next
  round, in its order among the calls of its stream. ``MovedError`` is caught before
  ``AskError``: it is a subclass.
* ``NOSCRIPT`` (a master that has not seen the script: new, promoted, or flushed): did
  not run; sent again with ``EVAL`` (the script's text), which also loads it.
* ``TRYAGAIN`` (the stream's keys split between two masters mid-migration) or
  ``CLUSTERDOWN``: did not run; the caller gets ``BrokerUnavailable`` with
  ``maybe_published=False``.
* another error reply: that call fails, ``maybe_published=True``.

A connection failure fails the calls of that group that were not answered (``maybe``
once the pipeline was written, as in :class:`~anywire.redis_batch.PublishBatcher`);
those answered MOVED/ASK/NOSCRIPT before it fail as not published; and the slot map is
refreshed, so a master that died and whose replica was promoted is not dialled again.
At most ``rounds`` rounds; what is still moving after them fails as not published.
Calls of one stream stay in one group and are resent in order, so they run in the
order issued.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from hiredis import pack_command
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)

from .redis_scripts import Script
from .redis_wire import PublishCall, publish_failed

__all__ = ["publish_on_cluster"]


class Pending(Protocol):
    """A caller's publish waiting for its reply (``redis_batch._Item``)."""

    call: PublishCall

    def resolve(self, reply: Any) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


class _Round:
    """What one round left to do: calls to send again (with the master an ASK named),
    whether the slot map needs a refresh, which calls must go as ``EVAL``."""

    def __init__(self) -> None:
        self.again: list[tuple[Pending, Any]] = []
        self.refresh = False


async def publish_on_cluster(
    client: Any,
    items: Sequence[Pending],
    script_of: Callable[[PublishCall], Script],
    counters: dict[str, int],
    rounds: int = 3,
) -> None:
    """Run ``items`` on their slots' masters of the asyncio ``RedisCluster`` ``client``,
    one pipeline per master per round; every item is resolved or failed on return."""
    pending: list[tuple[Pending, Any]] = [(item, None) for item in items]
    use_eval: set[int] = set()  # id() of the items a master answered NOSCRIPT
    for _ in range(rounds):
        if not pending:
            return
        groups: dict[tuple[str, bool], tuple[Any, list[Pending]]] = {}
        try:
            await client.initialize()  # the slot map (once; a no-op afterwards)
            for item, asked in pending:
                node = asked or client.get_node_from_key(item.call.keys[0])
                if node is None:
                    raise ConnectionError("no master for the slot")
                groups.setdefault((node.name, asked is not None), (node, []))[1].append(item)
        except (RedisError, RedisClusterException, OSError) as exc:
            # No master for a slot (failing over), or no node reachable: nothing sent.
            for item, _ in pending:
                item.fail(publish_failed(exc, sent=False))
            return
        state = _Round()
        await asyncio.gather(
            *(
                _on_master(node, asking, group, script_of, use_eval, state, client, counters)
                for (_, asking), (node, group) in groups.items()
            )
        )
        # In issue order: a stream's calls are in one group, its resends keep their order.
        order = {id(item): i for i, (item, _) in enumerate(pending)}
        pending = sorted(state.again, key=lambda pair: order[id(pair[0])])
        if state.refresh:
            with contextlib.suppress(RedisError, RedisClusterException, OSError):
                await client.nodes_manager.initialize()
    moving = publish_failed(ConnectionError("the slot kept moving"), sent=False)
    for item, _ in pending:
        item.fail(moving)


async def _on_master(
    node: Any,
    asking: bool,
    group: list[Pending],
    script_of: Callable[[PublishCall], Script],
    use_eval: set[int],
    state: _Round,
    client: Any,
    counters: dict[str, int],
) -> None:
    """One pipeline of ``group`` on one of ``node``'s connections."""
    counters["pipelines"] += 1
    counters["pipelined"] += len(group)
    counters["largest_pipeline"] = max(counters["largest_pipeline"], len(group))
    try:
        conn = node.acquire_connection()
    except (RedisError, OSError) as exc:  # no free connection: nothing sent
        for item in group:
            item.fail(publish_failed(exc, sent=False))
        return
    answered = 0
    again: list[tuple[Pending, Any]] = []
    maybe = False
    try:
        await conn.connect()  # a refused connection: certainly not published
        commands: list[bytes] = []
        for item in group:
            call = item.call
            script = script_of(call)
            if asking:
                commands.append(pack_command(("ASKING",)))
            verb, body = ("EVAL", script.text) if id(item) in use_eval else ("EVALSHA", script.sha)
            commands.append(pack_command((verb, body, len(call.keys), *call.keys, *call.args)))
        # A write that fails half-way may have delivered whole commands of a pipeline.
        maybe = len(group) > 1
        await conn.send_packed_command([b"".join(commands)], check_health=False)
        maybe = True
        for item in group:
            if asking:
                await conn.read_response()  # ASKING's OK
            try:
                reply = await conn.read_response()
            except MovedError:  # did not run: the slot map is old (before AskError)
                again.append((item, None))
                state.refresh = True
            except AskError as exc:  # did not run: the keys are moving there
                target = client.get_node(host=exc.host, port=exc.port)
                if target is None:
                    state.refresh = True
                again.append((item, target))
            except NoScriptError:  # did not run: this master lacks the script
                if not any(id(i) in use_eval for i, _ in again):
                    counters["noscript"] += 1  # (once per pipeline, as redis_batch counts)
                use_eval.add(id(item))
                again.append((item, node if asking else None))
            except (TryAgainError, ClusterDownError) as exc:
                item.fail(publish_failed(exc, sent=False))
            except ResponseError as exc:  # an error reply: the connection is in step
                item.fail(publish_failed(exc, sent=True))
            else:
                item.resolve(reply)
            answered += 1
    except (RedisError, OSError) as exc:
        with contextlib.suppress(Exception):
            await conn.disconnect()
        # The master may be gone for good (killed, its replica promoted). Nothing else
        # refreshes the slot map: no live node was reached, so no MOVED will come, and
        # client.initialize() is a no-op once initialized. Without this, a client whose
        # only traffic is publishes dialled the dead address for ever. Refreshed at the
        # end of the round (one CLUSTER SLOTS; a map still naming the dead master is
        # refreshed again at the next failure), as run_on_cluster does for one call.
        state.refresh = True
        for item, _ in again:
            item.fail(publish_failed(exc, sent=False))  # answered: did not run
        again = []
        for item in group[answered:]:
            item.fail(publish_failed(exc, sent=maybe))
    except BaseException:
        # Cancelled mid-pipeline: the connection's state is unknown, do not reuse it.
        with contextlib.suppress(Exception):
            await conn.disconnect()
        raise
    finally:
        node.release(conn)
    state.again.extend(again)
