"""anywire doctor URL [--token T] [--json]: probe every transport from here to an anywire
server, print a verdict per transport and advice in plain words (docs/doctor.md). Exit
status 1 when no transport works, 2 on bad usage."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from ..clihelp import HelpFormatter, plain
from .probe import Options, endpoint, probe
from .rules import diagnose, render

__all__ = ["main", "parser"]


def _holds(text: str) -> tuple[float, ...]:
    try:
        holds = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds like 5,15,30, got {text!r}") from None
    if not holds or any(not 0 < h <= 600 for h in holds):
        raise argparse.ArgumentTypeError("each hold must be between 0 and 600 seconds")
    return holds


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("expected seconds between 0 and 3600")
    return value


def parser() -> argparse.ArgumentParser:
    """The ``anywire doctor`` command line."""
    d = Options()
    p = argparse.ArgumentParser(
        prog="anywire doctor",
        description=plain(__doc__),
        formatter_class=HelpFormatter,
    )
    p.add_argument("url", help="the server (https://host) or anywire's prefix (https://host/rt)")
    p.add_argument("--token", help="bearer token for negotiate, when the doctor endpoints are off")
    p.add_argument("--json", action="store_true", help="print facts and verdicts as JSON")
    holds = ",".join(f"{h:g}" for h in d.holds)
    p.add_argument("--holds", type=_holds, default=holds, metavar="S,S,...",
                   help="hold times to try in turn (stops at the first cut)")  # fmt: skip
    p.add_argument("--max-hold", type=_positive, default=d.max_hold, metavar="S",
                   help="most seconds all holds may take together")  # fmt: skip
    p.add_argument("--timeout", type=_positive, default=d.timeout, metavar="S",
                   help="wait for an answer that should come at once")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``anywire doctor`` with ``argv``; the exit status."""
    args = parser().parse_args(argv)
    try:
        endpoint(args.url)
    except ValueError as exc:
        print(f"anywire doctor: {exc}", file=sys.stderr)
        return 2
    options = Options(token=args.token, holds=args.holds, max_hold=args.max_hold,
                      timeout=args.timeout)  # fmt: skip
    facts = asyncio.run(probe(args.url, options))
    diagnosis = diagnose(facts)
    if args.json:
        print(json.dumps({"facts": facts, **diagnosis}, indent=2))
    else:
        print(render(diagnosis, facts["url"]), end="")
    return 0 if diagnosis["ok"] else 1
