"""Small helpers to drive the harness page from Python."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from .conftest import WAIT_MS, wait


def open_socket(
    page: Page, name: str, sub: str, record: tuple[str, ...] = (), **options: Any
) -> None:
    """Open socket ``name`` as user ``sub`` and wait until it is connected."""
    page.evaluate("([n, s, o, r]) => h.open(n, s, o, r)", [name, sub, options, list(record)])
    wait(page, "h.s[arg].socket.state === 'connected'", name)


def js(page: Page, expression: str, arg: Any = None) -> Any:
    """Evaluate ``(arg) => expression`` (awaited when it is a promise)."""
    return page.evaluate(f"async (arg) => {expression}", arg)


def events(page: Page, name: str, event: str) -> list[Any]:
    return list(js(page, "h.s[arg[0]].events[arg[1]]", [name, event]))


def wait_events(page: Page, name: str, event: str, n: int, timeout: int = WAIT_MS) -> list[Any]:
    """Wait until socket ``name`` recorded ``n`` ``event`` events; returns them."""
    wait(page, "h.s[arg[0]].events[arg[1]].length >= arg[2]", [name, event, n], timeout)
    return events(page, name, event)


def error_name(page: Page, name: str, event: str, data: Any, timeout: int | None = None) -> str:
    """The class name of the error ``call`` rejects with ('' if it resolves)."""
    return str(
        js(
            page,
            """h.call(arg[0], arg[1], arg[2], arg[3] ? {timeout: arg[3]} : undefined)
                 .then(() => "", (err) => err.name)""",
            [name, event, data, timeout],
        )
    )
