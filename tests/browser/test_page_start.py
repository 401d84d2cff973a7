"""How the page starts and when it stops trying, in headless Chromium against the real server (`--engine test`).

The page opened from a file continues on the page its server serves (modules and worklets do not load from file://);
a join the server refuses for good (a name over the server's limit) stops with the form instead of reconnecting
forever; a server whose /languages fails leaves the language picker as it was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.serverproc import ROOT, ServerProcess

pytestmark = pytest.mark.browser
PROBLEMS: list[str] = []  # page errors and console errors of the current test's page
CHROMIUM = os.environ.get("BABELFISH_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # A server with a shorter name limit than the page's form (40): "Alexandra" is fine in the form, not here.
    srv = ServerProcess(tmp_path_factory.mktemp("server") / "data", "--max-name-chars", "5").start()
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: bash scripts/setup.sh --test"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 360, "height": 640}, permissions=["microphone"])
    pg = ctx.new_page()
    pg.on("pageerror", lambda e: PROBLEMS.append(f"page error: {e}"))
    pg.on("console", lambda m: PROBLEMS.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    PROBLEMS.clear()
    yield pg
    ctx.close()


def test_file_page_takes_the_guides_websocket_address(server: ServerProcess, page: Page) -> None:
    """The original guide says: open the file, type ws://SERVER:9000/ws/client. That still gets you talking."""
    page.goto((ROOT / "client_thin.html").as_uri())
    page.fill("#f-name", "Dan")
    page.fill("#f-room", "guide")
    page.fill("#f-server", f"ws://127.0.0.1:{server.port}/ws/client")
    page.select_option("#f-lang", "de")
    page.uncheck("#f-latency")
    assert PROBLEMS == []  # the file page loads no module, so no CORS errors
    page.click("#join-btn")
    page.wait_for_function("() => window.babblefish && window.babblefish.state === 'joined'", timeout=15_000)
    assert page.url.startswith(server.url + "?")  # now on the server's own page
    assert "guide · 1 person" in page.locator("#status-text").inner_text()
    keys = "['name', 'lang', 'room', 'latency']"
    stored = page.evaluate(f"() => {keys}.map(k => JSON.parse(localStorage.getItem('babblefish.' + k)))")
    assert stored == ["Dan", "de", "guide", False]  # the choices made on the file page came along
    assert PROBLEMS == []


def test_a_name_the_server_refuses_stops_with_the_form(server: ServerProcess, page: Page) -> None:
    page.goto(f"{server.url}?room=limits&name=Alexandra&lang=en")
    page.wait_for_selector("#settings:not(.hidden)", timeout=10_000)
    assert "5 characters" in page.locator("#settings-err").inner_text()
    assert page.evaluate("() => window.babblefish.state") == "failed"
    time.sleep(2.5)  # the first reconnect would have come after ~1 s
    assert page.evaluate("() => window.babblefish.state") == "failed"
    assert page.locator(".sys.bad").count() == 1  # said once, not once per retry
    page.fill("#f-name", "Alex")
    page.click("#join-btn")
    page.wait_for_function("() => window.babblefish.state === 'joined'", timeout=10_000)


def test_a_failing_language_list_leaves_the_picker_alone(server: ServerProcess, page: Page) -> None:
    not_found = '{"detail": "Not Found"}'  # JSON, so a page that ignores r.ok would read it as an empty list
    page.route("**/languages", lambda r: r.fulfill(status=404, content_type="application/json", body=not_found))
    page.goto(server.url)
    page.wait_for_selector("#settings:not(.hidden)")
    page.wait_for_load_state("networkidle")
    options = page.evaluate("() => [...document.querySelectorAll('#f-lang option')].map(o => o.value)")
    assert len(options) > 10 and "fr" in options and "auto" in options, options  # the page's built-in list


def test_the_picker_says_what_a_listener_gets(server: ServerProcess, page: Page) -> None:
    page.goto(server.url)
    page.wait_for_selector("#settings:not(.hidden)")
    page.wait_for_function("() => document.querySelector('#f-lang option[value=la]')", timeout=10_000)  # server's list
    page.select_option("#f-lang", "la")  # the test engine cannot translate into Latin
    assert "No translation into it" in page.locator("#f-lang-note").inner_text()
    page.select_option("#f-lang", "fr")
    assert page.locator("#f-lang-note").inner_text() == "Translations as text (test), spoken by test."
    assert "spoken by" in (page.locator("#f-lang option[value=fr]").get_attribute("title") or "")
    assert PROBLEMS == []
