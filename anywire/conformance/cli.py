"""``anywire conformance``: serve the conformance kit until every scenario is judged (or
the time limit), then print the report as text (and JSON with ``--json``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from pathlib import Path

from .kit import CONTROL, TRANSPORTS, Kit
from .scenarios import scenarios

DONE_GRACE = 5.0  # seconds the kit stays up after the last verdict, for the driver's last /next


def main(argv: list[str]) -> int:
    names = ", ".join(s.name for s in scenarios())
    p = argparse.ArgumentParser(
        prog="anywire conformance",
        description="Drive a client under test through scripted scenarios "
        "(docs/clients.md). Exit 0 when every scenario passed or was skipped.",
        epilog=f"Scenarios: {names}. Control interface (the driver polls it): GET "
        f"{CONTROL}/next, POST {CONTROL}/report, GET {CONTROL}/results, GET "
        f"{CONTROL}/token?sub=NAME&ttl=SECONDS[&late=1].",
    )
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--transports", default=",".join(TRANSPORTS), help="comma-separated")
    p.add_argument("--only", default="", help="comma-separated scenario names")
    p.add_argument("--json", metavar="FILE", help="also write the JSON report there ('-': stdout)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before giving up")
    p.add_argument("--parallel", type=int, default=1, metavar="N",
                   help="runs out at once at most (advertised in every /next answer; a "
                   "driver polling from one worker gets them one after another)")  # fmt: skip
    args = p.parse_args(argv)
    try:
        kit = Kit(
            tuple(t for t in args.transports.split(",") if t),
            tuple(n for n in args.only.split(",") if n),
            args.parallel,
        )
    except ValueError as exc:
        p.error(str(exc))
    finished = asyncio.run(_serve(kit, args.host, args.port, args.timeout))
    print(kit.text(), flush=True)
    if not finished:
        print(f"timed out after {args.timeout} s with scenarios not run", flush=True)
    if args.json == "-":
        print(json.dumps(kit.results(), indent=2))
    elif args.json:
        Path(args.json).write_text(json.dumps(kit.results(), indent=2) + "\n")
    res = kit.results()
    return 0 if finished and res["fail"] == 0 else 1


async def _serve(kit: Kit, host: str, port: int, timeout: float) -> bool:
    import uvicorn

    config = uvicorn.Config(kit, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn has no started event; the listener binds quickly
        if task.done():
            await task  # bind failed: uvicorn raised or exited
            raise SystemExit(f"anywire conformance: could not listen on {host}:{port}")
        await asyncio.sleep(0.02)
    # The first stdout line: drivers and tests may start once they read it.
    print(f"anywire conformance: serving on http://{host}:{port} "
          f"({len(kit.runs)} scenario runs)", flush=True)  # fmt: skip
    try:
        await asyncio.wait_for(kit.done.wait(), timeout)
        finished = True
    except TimeoutError:
        finished = False
    if finished:
        # The driver asks for the next scenario after its last report: answer it
        # {"done": true} rather than a refused connection (bounded: a driver may not ask).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(kit.told_done.wait(), DONE_GRACE)
    await kit.close()  # a /next still waiting for a slot is answered done
    server.should_exit = True
    await task
    return finished
