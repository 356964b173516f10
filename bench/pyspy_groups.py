"""Shares of a py-spy profile by component of the delivery path (docs/perf/cpu.md).

Reads collapsed stacks (``py-spy record --format raw``, e.g. from
``bench/server_cpu.py --count pyspy``) and counts each stack to the innermost group its
frames match (from the leaf up); stacks under twelve frames deep that match nothing are
the event loop's own work.

    python3 bench/pyspy_groups.py /tmp/aw.pyspy /tmp/raw.pyspy
"""

from __future__ import annotations

import argparse
import collections

GROUPS = [
    ("timer sweep (_run_timers)", ["_run_timers"]),
    (
        "reading client frames (rx)",
        ["_reader (", "data_received", "Inbox.get", "Protocol.parse", "receive ("],
    ),
    (
        "kernel write() (uvicorn send's last line, or the direct write)",
        ["websockets_sansio_impl.py:514)", "write_now (anywire/server/wsprotocol.py"],
    ),
    (
        "WebSocket framing (websockets send_text, data_to_send)",
        ["Protocol.send_text", "Protocol.data_to_send", "Protocol.send_frame", "Frame.serialize"],
    ),
    (
        "uvicorn send() other (writable wait, checks, encode)",
        ["WebSocketsSansIOProtocol.send", "Gate.wait", "Event.wait"],
    ),
    ("ASGI send wrapper (_MeteredProtocol.send)", ["_MeteredProtocol.send", "_send_other"]),
    (
        "batching writer task (create_task, _run, _flush)",
        ["create_task", "_Writer._run", "_Writer._flush"],
    ),
    (
        "frames out: host.outgoing (take_pending, codec.frame, body)",
        [
            "SessionHost.outgoing",
            "SessionHost.has_pending",
            "Delivery.outgoing",
            "Delivery.has_pending",
        ],
    ),
    (
        "write at once: _Writer.wake/_write_now/_message",
        ["_Writer.wake", "_Writer._write_now", "_Writer._message"],
    ),
    ("session push (outbox, seq)", ["ServerSession.push", "SessionHost.push (", "Delivery.push ("]),
    (
        "deliver loop, wake chain (Link.wake, _wake)",
        ["SessionHost.deliver", "Delivery.deliver", "Link.wake", "SessionHost._wake"],
    ),
    ("publisher, emit, encode once", ["Publisher._paced", "publish_paced", "Anywire.emit"]),
]


def group(stack: str) -> str:
    """The component of one collapsed stack."""
    frames = stack.split(";")
    for frame in reversed(frames):
        for name, keys in GROUPS:
            if any(k in frame for k in keys):
                return name
    return "event loop itself" if len(frames) < 12 else "other"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profiles", nargs="+", help="py-spy --format raw files")
    args = parser.parse_args()
    for path in args.profiles:
        counts: collections.Counter[str] = collections.Counter()
        total = 0
        with open(path) as f:
            for line in f:
                stack, _, n = line.rstrip().rpartition(" ")
                total += int(n)
                counts[group(stack)] += int(n)
        print(f"{path}: {total} samples")
        for name, n in counts.most_common():
            print(f"  {n / max(1, total):6.1%}  {name}")


if __name__ == "__main__":
    main()
