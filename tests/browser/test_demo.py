"""``anywire demo`` in Chromium, on every transport: two people chat in the lobby, see
each other in the presence list, see the typing indicator, get ticks for acked messages
and a badge naming the live transport; the switch forces another transport."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import TRANSPORTS, running_demo

from .conftest import WAIT_MS


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    with running_demo() as url:
        yield url


def open_chat(browser: Browser, url: str) -> Page:
    page = browser.new_context().new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    return page


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_people_chat(browser: Browser, demo: str, transport: str) -> None:
    ann = open_chat(browser, f"{demo}/?transport={transport}")
    bob = open_chat(browser, f"{demo}/?transport={transport}")
    try:
        for page in (ann, bob):
            expect(page.get_by_test_id("transport")).to_have_text(transport)
            expect(page.locator("#state")).to_have_attribute("data-state", "connected")
        expect(ann.get_by_test_id("people").locator("li")).to_have_count(2)
        expect(bob.get_by_test_id("people").locator("li")).to_have_count(2)

        ann.get_by_test_id("text").press_sequentially("hi")
        expect(bob.get_by_test_id("typing")).to_contain_text("is typing")
        ann.get_by_test_id("text").fill(f"hello over {transport}")
        ann.get_by_test_id("text").press("Enter")
        expect(bob.get_by_test_id("log")).to_contain_text(f"hello over {transport}")
        expect(ann.locator("#log li.mine .tick")).to_have_attribute("data-status", "acked")
        expect(ann.locator("#log li.mine .tick")).to_have_text("✓")

        bob.get_by_test_id("text").fill("hi ann")
        bob.get_by_test_id("text").press("Enter")
        expect(ann.get_by_test_id("log")).to_contain_text("hi ann")
    finally:
        ann.context.close()
        bob.context.close()


def test_switch_forces_a_transport(browser: Browser, demo: str) -> None:
    page = open_chat(browser, demo + "/")
    try:
        expect(page.get_by_test_id("transport")).to_have_text("websocket")
        page.get_by_test_id("force").select_option("longpoll")
        expect(page.get_by_test_id("transport")).to_have_text("longpoll")
        assert "transport=longpoll" in page.url
        page.get_by_test_id("text").fill("polling works")
        page.get_by_test_id("text").press("Enter")
        expect(page.locator("#log li.mine .tick")).to_have_attribute("data-status", "acked")
    finally:
        page.context.close()
