"""The delivery guarantee under chaos, bounded for CI (about two minutes).

Three real nodes (``anywire serve --redis``) behind nginx round robin, a real
``redis-server``, 90 Python clients (30 per transport) in 10 rooms, room, user and
session events and server calls from a publisher node, while the faults of
:func:`anywire.chaos.faults.ci_schedule` hit: two SIGKILLs, a 5 s Redis pause, a node
stopped (SIGSTOP) for longer than the ack timeout, a graceful rolling restart of every
node. The checker compares every client's received offsets with what was published and
fails with the evidence of any unexplained gap or duplicate.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from anywire.chaos.run import RunConfig, run


@pytest.mark.timeout(300)
async def test_every_event_exactly_once_or_announced_lost_under_faults(tmp_path: Path) -> None:
    config = RunConfig(clients=90, duration=70.0, rate=50.0, schedule="ci", log_dir=tmp_path)
    result = await run(config)
    print(result.report())
    assert result.verdict.ok, result.report()
    assert not result.tracebacks, result.report()
    assert not result.protocol_errors, result.report()  # no sequence gap on any connection
    assert not result.fault_errors, result.report()
    assert result.answered_twice == 0 and result.uncertain == 0, result.report()
    # The clients' own calls: answered, or (a node killed after taking the request)
    # RequestLost at once; never a timeout or another error.
    assert set(result.client_calls) <= {"ok", "RequestLost"}, result.report()
    # Nothing was lost that history still held: no $lost either.
    assert sum(result.verdict.announced.values()) == 0, result.report()
    # Every graceful stop ended within the drain bound (3 s) plus process exit.
    assert result.stop_seconds and max(result.stop_seconds) < 4.0, result.report()
