"""The events the bandwidth benchmark publishes: a realistic chat message and a small
signal, generated the same way every run (a seeded random sequence).

A chat message is what a chat app sends per line said: a message id, the room, the
author (id and display name), a sentence of ordinary words of varied length, a
timestamp, a reply reference and empty reactions; 170 to 320 bytes of JSON. The small
event is a typing indicator (a user id and a flag). Padding such as ``"xxxx..."`` would
flatter every compressor: the words here are drawn from a 200-word vocabulary, so what
deflate finds is what it finds in real chat (repeated keys, common words), no more.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["KINDS", "payloads"]

_VOCABULARY = """the be to of and a in that have I it for not on with he as you do at this but
his by from they we say her she or an will my one all would there their what so up out if
about who get which go me when make can like time no just him know take people into year
your good some could them see other than then now look only come its over think also back
after use two how our work first well way even new want because any these give day most us
is was are were been has had did said got made went came saw knew thought told found gave
meeting lunch tomorrow tonight today later soon sorry thanks great sure okay yes maybe
please call phone message train station office home coffee weekend friday monday ticket
plan late early minutes hour running meet place room link file photo picture doc review
ship build deploy test fix bug issue release team design draft idea question answer"""
_WORDS = _VOCABULARY.split()
_NAMES = ["Alice Martin", "Bob Nguyen", "Chiara Rossi", "Dmitri Ivanov", "Emma Schmidt",
          "Farid Haddad", "Grace Okafor", "Hiro Tanaka"]  # fmt: skip
KINDS = ("chat", "small")


def _chat(i: int, rng: random.Random) -> dict[str, Any]:
    author = rng.randrange(len(_NAMES))
    words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 28))]
    text = " ".join(words).capitalize() + rng.choice([".", "!", "?", "", " :)"])
    return {
        "id": f"msg_{rng.getrandbits(64):016x}",
        "room": "general",
        "from": {"id": f"u_{1000 + author}", "name": _NAMES[author]},
        "text": text,
        "ts": 1_765_000_000_000 + i * 1337,
        "reply_to": None if rng.random() < 0.8 else f"msg_{rng.getrandbits(64):016x}",
        "reactions": {},
    }


def _small(i: int, rng: random.Random) -> dict[str, Any]:
    return {"user": f"u_{1000 + rng.randrange(len(_NAMES))}", "typing": i % 2 == 0}


def payloads(kind: str, n: int, seed: int = 17) -> list[dict[str, Any]]:
    """``n`` events of ``kind`` (``chat`` or ``small``), the same list for the same seed."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    rng = random.Random(seed)
    make = _chat if kind == "chat" else _small
    return [make(i, rng) for i in range(n)]
