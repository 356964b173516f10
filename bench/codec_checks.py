"""Microseconds per encode and decode of an echo's frames, to price the data-model checks
(issue #13: integer range, finite floats, string keys, nesting) on the hot path.

    python3 bench/codec_checks.py                      # this checkout
    git archive <commit> anywire | tar -x -C /tmp/old  # another one, to compare
    PYTHONPATH=/tmp/old python3 bench/codec_checks.py

Best of 7 runs of 200,000 calls each; a shared machine still swings by ~5%.
"""

from __future__ import annotations

import timeit

import msgpack

from anywire.server.codecs import make_codecs

PAD = "x" * 70
EVENT = {"t": "event", "s": 12345, "id": 12345, "e": "echo", "d": {"ts": 1, "p": PAD}}
ACK_FIELDS = {"id": 12345, "ok": True, "d": {"ts": 1, "p": PAD}}
N = 200_000


def main() -> None:
    codecs = make_codecs()
    json_codec, mp = codecs["json"], codecs["msgpack"]
    text = json_codec.encode(EVENT).decode()
    packed = bytes(msgpack.packb(EVENT))
    cases = {
        "json encode_body (ack)": lambda: json_codec.encode_body(ACK_FIELDS),
        "json decode_event (text)": lambda: json_codec.decode_event(text),
        "json decode (text)": lambda: json_codec.decode(text),
        "msgpack encode_body (ack)": lambda: mp.encode_body(ACK_FIELDS),
        "msgpack decode": lambda: mp.decode(packed),
    }
    if hasattr(json_codec, "suspect"):
        cases["json suspect (text)"] = lambda: json_codec.suspect(text)
        cases["msgpack suspect"] = lambda: mp.suspect(packed)
    for name, fn in cases.items():
        best = min(timeit.repeat(fn, number=N, repeat=7)) / N * 1e6
        print(f"{name:28s} {best:.3f} us")


if __name__ == "__main__":
    main()
