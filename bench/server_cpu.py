"""Server CPU per delivery, real server, one workload: where it goes (issue #17).

Runs anywire's bench app or the raw ASGI loop (bench/peers/raw_app.py) on uvicorn, drives
it with the C load generator over real sockets, and reports per delivery (fan-out, open
loop) or per round trip (echo) one of:

* ``--count proc`` (default): user and system CPU of the server process from /proc, in
  microseconds. Wall-clock independent, but a shared machine still moves it (caches,
  frequency); alternate A and B runs.
* ``--count callgrind``: instructions executed in the server's user space (valgrind's
  callgrind, counting only while the load runs; ``--out FILE`` keeps the profile for
  ``callgrind_annotate``). Repeats within ~1%; the kernel's share is not in it.
* ``--count strace``: system calls per delivery by name (``strace -c -f`` attached while
  the load runs; strace slows the server, so only the counts mean anything).

    python3 bench/server_cpu.py --server anywire --workload open --rate 10
    python3 bench/server_cpu.py --server raw --workload open --rate 10
    python3 bench/server_cpu.py --workload burst1 --count callgrind --secs 4
    python3 bench/server_cpu.py --workload echo --clients 100 --count strace
    python3 bench/server_cpu.py --transport sse --workload single --count callgrind
    python3 bench/server_cpu.py --tree ../other ...     # another checkout of anywire

Under callgrind the server runs 30-50 times slower: keep the offered load low (the open
loop's rate is divided by ``--slowdown``, default 40, so that it stays an open loop of
single events rather than a backlog that coalesces).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anywire.bench.generator import Generator, cpu_prefix  # noqa: E402
from anywire.bench.runner import free_port, raise_nofile  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from callgrind import instrument, wait_up  # noqa: E402  (the same start-up and callgrind switch)

SERVERS = {
    # name: (command after the interpreter, generator dialect)
    "anywire": (["-m", "anywire.bench.app"], "anywire"),
    "raw": ([str(REPO / "bench" / "peers" / "raw_app.py")], "raw"),
}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One run; the counts of the measured window."""
    server_args, dialect = SERVERS[args.server]
    tree = Path(args.tree).resolve()
    port = free_port()
    python = os.path.realpath(sys.executable)  # not a shim: valgrind follows no child
    tmp = tempfile.mkdtemp()
    out = args.out or f"{tmp}/callgrind.out"
    prefix: list[str] = cpu_prefix(args.server_cpu)
    if args.count == "callgrind":
        prefix += [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no",
            f"--callgrind-out-file={out}", *args.callgrind_args.split(),
        ]  # fmt: skip
    cmd = [*prefix, python, *server_args, "--port", str(port)]
    # The tree first; what PYTHONPATH held after it (a diagnostic sitecustomize, say).
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), *rest])}
    rate = args.rate / (args.slowdown if args.count == "callgrind" else 1)
    raise_nofile()
    proc = subprocess.Popen(
        cmd, env=env, cwd=str(tree), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    server_pid = proc.pid
    counts: dict[str, Any] = {}
    try:
        wait_up(port, proc)
        workload = "echo" if args.workload == "echo" else "fanout"
        mix = {args.transport: args.clients}
        gen = Generator(port, dialect, workload, mix, args.size, args.gen_cpu)
        tracer: subprocess.Popen[bytes] | None = None
        try:
            gen.ready()
            time.sleep(0.3)
            if args.count == "callgrind":
                # The idle cost of the same connections (timer sweeps), to take off the
                # loaded figure: under callgrind the offered load is --slowdown times
                # lower, so per-second costs would weigh that much more per delivery.
                instrument(server_pid, "on")
                time.sleep(args.secs)
                counts["idle_per_sec"] = _dump(server_pid, out, "idle") / args.secs
            if workload == "fanout" and args.workload != "single":
                burst = args.burst if args.workload == "burst" else 1
                query = f"?secs={args.secs + 30}&size={args.size}&burst={burst}"
                if args.workload == "open":
                    query += f"&rate={rate}"
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/ctl/start{query}", method="POST", data=b""
                )
                with urllib.request.urlopen(req, timeout=60) as r:
                    r.read()
                time.sleep(0.5 if args.count != "callgrind" else 3.0)
            if args.count == "callgrind":
                _dump(server_pid, out, "setup")  # zeroes the counters
            elif args.count == "pyspy":
                # PYSPY_NATIVE=1: C frames too (py-spy then has to pause the server).
                native = ["--native"] if os.environ.get("PYSPY_NATIVE") else ["--nonblocking"]
                tracer = subprocess.Popen(
                    ["py-spy", "record", "--pid", str(server_pid), "--rate", "1000",
                     "--format", "raw", *native, "-o", out.replace("callgrind", "pyspy"),
                     "--duration", str(int(args.secs))],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(1.0)  # attached
            elif args.count == "strace":
                tracer = subprocess.Popen(
                    ["strace", "-c", "-f", "-p", str(server_pid), "-o", f"{tmp}/strace.txt"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1.0)  # attached
            singles = None
            if args.workload == "single":
                singles = threading.Thread(target=_singles, args=(port, args), daemon=True)
            cpu0 = _cpu(server_pid)
            t0 = time.monotonic()
            if singles is not None:
                singles.start()
            result = gen.measure(args.secs)
            wall = time.monotonic() - t0
            cpu1 = _cpu(server_pid)
            if args.count == "callgrind":
                loaded = _dump(server_pid, out, "load")
                instrument(server_pid, "off")
            if tracer is not None:
                if args.count == "strace":
                    tracer.send_signal(signal.SIGINT)
                tracer.wait(timeout=60)
        finally:
            gen.stop()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deliveries = int(result["deliveries"])
    counts |= {
        "deliveries": deliveries,
        "wall": wall,
        "user_us": (cpu1[0] - cpu0[0]) * 1e6 / max(1, deliveries),
        "sys_us": (cpu1[1] - cpu0[1]) * 1e6 / max(1, deliveries),
        "share": (cpu1[0] + cpu1[1] - cpu0[0] - cpu0[1]) / wall,
        "p50": result.get("lat_us", {}).get("p50", 0) / 1000,
        "p99": result.get("lat_us", {}).get("p99", 0) / 1000,
        "tmp": tmp,
    }
    counts["out"] = out
    if args.count == "callgrind":
        counts["instructions"] = loaded / max(1, deliveries)
        counts["net"] = (loaded - counts["idle_per_sec"] * wall) / max(1, deliveries)
    if args.count == "strace":
        counts["syscalls"] = _strace_table(Path(f"{tmp}/strace.txt"), deliveries)
    return counts


def _singles(port: int, args: argparse.Namespace) -> None:
    """The single workload: one event at a time, ``--gap`` seconds apart, each alone in
    the server (a paced run of one event), so no write ever coalesces two."""
    query = f"?secs=0.000001&size={args.size}&rate=1"
    deadline = time.monotonic() + args.secs - args.gap
    while time.monotonic() < deadline:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/ctl/start{query}", method="POST", data=b""
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
        time.sleep(args.gap)


def _cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _strace_table(path: Path, deliveries: int) -> dict[str, float]:
    calls: dict[str, float] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            calls[parts[-1]] = int(parts[3]) / max(1, deliveries)
    return dict(sorted(calls.items(), key=lambda kv: -kv[1]))


_EVENTS: dict[str, dict[str, int]] = {}  # every event of each dump (with --cache-sim)


def _dump(pid: int, out: str, name: str) -> int:
    """Dump callgrind's counters so far (``OUT.N``, zeroing them); their total."""
    before = set(Path(out).parent.glob(Path(out).name + ".*"))
    subprocess.run(["callgrind_control", "-d", name, str(pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for path in set(Path(out).parent.glob(Path(out).name + ".*")) - before:
            text = path.read_text(errors="replace")
            found = re.search(r"^(?:summary|totals): ([\d ]+)", text, re.M)
            if found:
                numbers = [int(x) for x in found.group(1).split()]
                events = re.search(r"^events: (.*)$", text, re.M)
                if events and len(numbers) > 1:
                    _EVENTS[name] = dict(zip(events.group(1).split(), numbers, strict=False))
                return numbers[0]
        time.sleep(0.2)
    raise SystemExit(f"callgrind wrote no dump for {name}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", choices=sorted(SERVERS), default="anywire")
    parser.add_argument("--tree", default=str(REPO), help="the anywire checkout to run")
    parser.add_argument(
        "--workload", choices=("open", "single", "burst1", "burst", "echo"), default="open",
        help="open: --rate events/s to the room; single: one event every --gap seconds, "
        "each written alone (for instruction counts: nothing coalesces); burst1: one "
        "event per loop tick as fast as delivered; burst: --burst events per tick; echo: "
        "emit-with-ack round trips",
    )  # fmt: skip
    parser.add_argument(
        "--transport", choices=("ws", "sse", "poll"), default="ws",
        help="the clients' transport (anywire only; sse and poll: fan-out workloads)",
    )  # fmt: skip
    parser.add_argument("--rate", type=float, default=10.0, help="open loop: events/s")
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--gap", type=float, default=1.0, help="single: seconds apart")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--secs", type=float, default=6.0)
    parser.add_argument("--count", choices=("proc", "callgrind", "strace", "pyspy"), default="proc")
    parser.add_argument("--slowdown", type=float, default=40.0)
    parser.add_argument(
        "--callgrind-args", default="", help="more valgrind options, e.g. --cache-sim=yes"
    )
    parser.add_argument("--out", default=None, help="callgrind: keep the profile here")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--gen-cpu", type=int, default=1)
    args = parser.parse_args()
    if args.transport != "ws" and (args.server != "anywire" or args.workload == "echo"):
        raise SystemExit("--transport sse/poll: anywire's fan-out workloads only")
    tool = {"callgrind": "valgrind", "strace": "strace", "pyspy": "py-spy"}.get(args.count)
    if tool is not None and shutil.which(tool) is None:
        raise SystemExit(f"--count {args.count} needs {tool} installed")
    c = measure(args)
    unit = "round trip" if args.workload == "echo" else "delivery"
    line = (
        f"{args.server} {args.transport} {args.workload} {args.clients} clients: "
        f"{c['deliveries']:,} {unit.replace('y', 'ie')}s in {c['wall']:.1f} s; "
        f"per {unit}: user {c['user_us']:.2f} us, "
        f"sys {c['sys_us']:.2f} us (server CPU share {c['share']:.0%}); "
        f"p50/p99 {c['p50']:.1f}/{c['p99']:.1f} ms; load {os.getloadavg()[0]:.1f}"
    )
    if "instructions" in c:
        line += (
            f"\n  instructions per {unit} (user space): {c['instructions']:,.0f}; less the "
            f"idle rate ({c['idle_per_sec']:,.0f}/s): {c['net']:,.0f}  ({c['out']}.*)"
        )
    if args.count == "pyspy":
        line += f"\n  py-spy samples (collapsed stacks): {c['out'].replace('callgrind', 'pyspy')}"
    if "load" in _EVENTS and "idle" in _EVENTS:
        idle, load = _EVENTS["idle"], _EVENTS["load"]
        per = {
            k: (load[k] - idle[k] * c["wall"] / args.secs) / max(1, c["deliveries"]) for k in load
        }
        shown = ", ".join(f"{k} {v:,.1f}" for k, v in per.items())
        line += f"\n  per {unit} less idle: {shown}"
    if "syscalls" in c:
        line += (
            "\n  syscalls per "
            + unit
            + ": "
            + ", ".join(f"{k} {v:.3f}" for k, v in c["syscalls"].items() if v >= 0.001)
        )
    print(line)


if __name__ == "__main__":
    main()
