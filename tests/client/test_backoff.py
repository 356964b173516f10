"""The reconnect delay generator: full jitter under an exponential, capped ceiling."""

from __future__ import annotations

import itertools
import random

from anywire.clients.python import backoff


def test_delays_stay_under_an_exponential_ceiling_with_a_cap() -> None:
    delays = list(itertools.islice(backoff(0.5, 10.0, rand=random.Random(1)), 12))
    ceilings = [min(10.0, 0.5 * 2**n) for n in range(12)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[8:]) <= 10.0


def test_jitter_spreads_a_crowd() -> None:
    # Many clients that lost the same server must not come back in lockstep.
    firsts = [next(backoff(1.0, 10.0, rand=random.Random(seed))) for seed in range(200)]
    assert len({round(d, 3) for d in firsts}) > 150
    assert 0.3 < sum(firsts) / len(firsts) < 0.7  # uniform on [0, 1): mean near 0.5


def test_ceiling_grows_then_holds() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b  # always the ceiling, to read it off

    assert list(itertools.islice(backoff(0.5, 4.0, rand=Top()), 6)) == [0.5, 1, 2, 4, 4, 4]
