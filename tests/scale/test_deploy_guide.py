"""docs/deployment.md's nginx configurations, run as the guide gives them: every ``nginx``
block of the guide is one of docs/deploy/nginx-*.conf byte for byte, and each of those
runs in real nginx in front of two real nodes on a real Redis, with traffic on
websocket, sse and longpoll.

The test only puts the files inside a minimal main configuration (temporary prefix, as
``include`` from its ``http`` block, like /etc/nginx/conf.d/) and points the example
addresses at the test's ports.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, free_port
from tests.proxies.nginx import Nginx, run_nginx

from .conftest import wait_for
from .crossing import forwarded
from .test_round_robin import _chat

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDE = DOCS / "deployment.md"
CONFS = {"round-robin": DOCS / "deploy" / "nginx-round-robin.conf",
         "sticky": DOCS / "deploy" / "nginx-sticky.conf"}  # fmt: skip
MAIN = """worker_processes 1;
pid nginx.pid;
events { worker_connections 1024; }
http {
    access_log logs/access.log;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    include anywire.conf;
}
"""


def nginx_blocks(path: Path) -> list[str]:
    return re.findall(r"```nginx\n(.*?)```", path.read_text(), re.S)


def test_every_nginx_block_of_the_docs_is_a_tested_config() -> None:
    files = {path.read_text(): name for name, path in CONFS.items()}
    pages = [*DOCS.rglob("*.md"), DOCS.parent / "README.md"]
    for page in pages:
        for block in nginx_blocks(page):
            assert block in files, f"an nginx block of {page.name} is no tested config:\n{block}"
    shown = {files[block] for block in nginx_blocks(GUIDE)}
    assert shown == set(CONFS), "the guide does not show every tested config"


def site(name: str, listen: int, nodes: list[Server]) -> str:
    """The guide's file with its example addresses pointed at this test's processes."""
    text = CONFS[name].read_text()
    for old, new in (("listen 80;", f"listen 127.0.0.1:{listen};"),
                     ("10.0.0.11:8000", f"127.0.0.1:{nodes[0].port}"),
                     ("10.0.0.12:8000", f"127.0.0.1:{nodes[1].port}")):  # fmt: skip
        assert text.count(old) == 1, (name, old)
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module", params=sorted(CONFS))
def proxy(request: pytest.FixtureRequest, nodes: list[Server]) -> Iterator[Nginx]:
    port = free_port()
    ngx = run_nginx(request.param, MAIN, port, {"anywire.conf": site(request.param, port, nodes)})

    def healthy() -> bool:
        try:
            return httpx.get(ngx.url + "/anywire/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 10, "nginx to proxy to the nodes")
        yield ngx
    finally:
        ngx.stop()


async def test_every_transport_works_through_the_guide_config(
    proxy: Nginx, nodes: list[Server], transport: str
) -> None:
    before = forwarded(nodes)
    await _chat(proxy.url, transport, f"guide-{proxy.name}")
    if proxy.name == "round-robin" and transport != "websocket":
        # No affinity: polls and POSTs reached the node that does not own the session.
        assert forwarded(nodes) > before


def test_round_robin_reaches_both_nodes_and_sticky_one(proxy: Nginx) -> None:
    seen = {httpx.get(proxy.url + "/anywire/health").json()["node"] for _ in range(6)}
    assert len(seen) == (2 if proxy.name == "round-robin" else 1)
    assert "[error]" not in proxy.error_log() and "[crit]" not in proxy.error_log()


def test_node_figures_are_not_served_through_the_proxy(proxy: Nginx, nodes: list[Server]) -> None:
    assert httpx.get(proxy.url + "/anywire/metrics").status_code == 403
    assert httpx.get(proxy.url + "/anywire/metrics?format=json").status_code == 403
    assert httpx.get(nodes[0].url + "/anywire/metrics").status_code == 200
