"""server/tenure.py: the survivors of a full collection are frozen, so the next full
collection scans only what is new; cyclic garbage among them is freed at the latest
``refresh`` full collections after it became garbage. The real collector, no stand-ins."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from anywire.server.tenure import Tenure


class _Node:
    """A tracked object that can hold a cycle and be watched with a weak reference."""

    def __init__(self) -> None:
        self.other: object = None


@pytest.fixture
def tenure() -> Iterator[Tenure]:
    gc.collect()
    t = Tenure(refresh=3)
    t.install()
    try:
        yield t
    finally:
        t.remove()
        gc.unfreeze()  # (this process froze nothing before: leave it so)
        gc.collect()


def _tracked(obj: object) -> bool:
    """Whether a collection would scan ``obj`` (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


def test_a_full_collection_freezes_what_survived_it(tenure: Tenure) -> None:
    kept = [_Node() for _ in range(2000)]  # what connections build after startup
    assert _tracked(kept[0])
    frozen = gc.get_freeze_count()
    gc.collect()
    assert tenure.fulls == 1
    assert gc.get_freeze_count() >= frozen + len(kept)
    assert not _tracked(kept[0]) and not _tracked(kept)
    # The next full collection has only what came since to scan.
    assert len(gc.get_objects()) < len(kept)
    # Younger collections do not freeze: only a full one says what is long-lived.
    young = [_Node() for _ in range(10)]
    gc.collect(0)
    gc.collect(1)
    assert _tracked(young[0])


def test_frozen_objects_still_go_when_nothing_refers_to_them(tenure: Tenure) -> None:
    node = _Node()
    gone = weakref.ref(node)
    gc.collect()
    assert not _tracked(node)
    del node  # no cycle: reference counting frees it, frozen or not
    assert gone() is None


def test_cyclic_garbage_among_frozen_objects_is_freed_within_refresh_collections(
    tenure: Tenure,
) -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    gone = weakref.ref(a)
    gc.collect()  # full collection 1: the cycle is live, and frozen
    del a, b
    gc.collect()  # 2: frozen, so not scanned: held
    assert gone() is not None
    gc.collect()  # 3 (= refresh): thawed after this one, still held during it
    assert gone() is not None and tenure.thaws == 1
    gc.collect()  # 4: scans everything once
    assert gone() is None


def test_removed_it_freezes_nothing_more(tenure: Tenure) -> None:
    tenure.remove()
    kept = [_Node() for _ in range(100)]
    gc.collect()
    assert _tracked(kept[0])
    assert tenure.fulls == 0


def test_installing_twice_watches_once(tenure: Tenure) -> None:
    tenure.install()
    gc.collect()
    assert tenure.fulls == 1


def test_refresh_must_be_positive() -> None:
    with pytest.raises(ValueError, match="refresh"):
        Tenure(refresh=0)
