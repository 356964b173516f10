"""The deployment files docs/deployment.md shows, checked for real: the guide shows them
verbatim, the systemd unit passes ``systemd-analyze verify``, the Kubernetes manifests
parse and hold together, and the container's entry point serves and drains."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy"
GUIDE = (ROOT / "docs" / "deployment.md").read_text()


@pytest.mark.parametrize(
    ("fence", "path"),
    [("ini", DEPLOY / "anywire.service"), ("yaml", DEPLOY / "kubernetes.yaml"),
     ("dockerfile", ROOT / "Dockerfile")],
)  # fmt: skip
def test_the_guide_shows_the_files_verbatim(fence: str, path: Path) -> None:
    blocks = re.findall(rf"```{fence}\n(.*?)```", GUIDE, re.S)
    assert path.read_text() in blocks


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (DEPLOY / "anywire.service").read_text()
    anywire = shutil.which("anywire") or str(Path(sys.executable).parent / "anywire")
    assert "/srv/chat/.venv/bin/anywire" in unit
    (tmp_path / "anywire.service").write_text(unit.replace("/srv/chat/.venv/bin/anywire", anywire))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "anywire.service")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_kubernetes_manifests_hold_together() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text())}
    assert set(docs) == {"Deployment", "Service", "Ingress"}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/anywire/health"
    assert "httpGet" not in container["livenessProbe"]
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    # preStop, the drain (2 s) and uvicorn's last second fit in the grace period.
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + 2 + 1
    assert docs["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert docs["Service"]["spec"]["selector"] == labels
    args = container["args"]
    scrape = docs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert args[args.index("--metrics-port") + 1] == scrape["prometheus.io/port"]
    assert {"name": "metrics", "containerPort": 9100} in container["ports"]
    timeouts = docs["Ingress"]["metadata"]["annotations"]
    assert int(timeouts["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > 20 + 20


def test_the_container_entry_point_serves_and_drains() -> None:
    """The Dockerfile's ENTRYPOINT + CMD, run here (no docker daemon needed): it serves
    the example application and exits promptly on SIGTERM, as docker stop sends it."""
    text = (ROOT / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    assert entry[:2] == ["anywire", "serve"]
    port = free_port()
    argv = [a.replace("0.0.0.0", "127.0.0.1").replace("8000", str(port)) for a in entry + cmd]
    proc = subprocess.Popen(
        [sys.executable, "-m", "anywire.server.cli", *argv[1:]], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/anywire/health", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.05)
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        assert time.monotonic() - stopped < 5  # the drain is bounded (2 s + 1 s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert "Traceback" not in (proc.stderr.read().decode() if proc.stderr else "")
