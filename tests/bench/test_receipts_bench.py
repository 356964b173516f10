"""``anywire bench``'s clients acknowledge by the receipt rule the server advertises
(docs/protocol.md 6.4), and ``--rx-every N`` still forces a fixed count."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .test_smoke import bench


def test_the_generator_follows_the_advertised_receipt_rule() -> None:
    """By default the WebSocket clients send rx by the advertised rule (250 frames for the
    bench app: a drawn threshold in [125, 250]); --rx-every 16 forces the old fixed count.
    The two runs start side by side."""
    args = ("--clients", "10", "--burst", "1", "--duration", "1")
    with ThreadPoolExecutor(2) as pool:
        drawn_run = pool.submit(bench, *args)
        fixed_run = pool.submit(bench, *args, "--rx-every", "16")
        drawn, fixed = drawn_run.result(timeout=120), fixed_run.result(timeout=120)
    assert drawn["rx_sent"] > 0
    assert 110 <= drawn["deliveries"] / drawn["rx_sent"] <= 250
    assert 15 <= fixed["deliveries"] / fixed["rx_sent"] <= 17
