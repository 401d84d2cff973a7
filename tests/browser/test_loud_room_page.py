"""A phone in a café, in a real headless Chromium against the real server (`--engine test`, real Silero VAD).

The fake capture device plays a crowd of six voices (Pico, played backwards) in a loop: the server hears a voiced
background and tells the page once; in hands-free mode the page offers push-to-talk, and one tap switches to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright import sync_api as playwright_sync

from tests.audio import write_wav
from tests.browser.chromium import CHROMIUM, chromium_args
from tests.browser.test_client_thin import open_page, wait_joined
from tests.engines.conversation_audio import SR, babble
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def crowd_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crowd") / "crowd.wav"
    write_wav(path, babble(12.0, 0.3, np.random.default_rng(4), talkers=6), SR)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("server") / "data").start()
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def browser(crowd_wav: Path) -> Iterator[object]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args(crowd_wav))
        yield b
        b.close()


def test_hands_free_in_a_crowd_offers_push_to_talk(server: ServerProcess, browser: object) -> None:
    page = open_page(browser, f"{server.url}?room=cafe&name=Ana&lang=en&mode=handsfree")
    try:
        wait_joined(page)
        page.click("#mic")  # hands-free: live until stopped
        button = page.locator("#banner-btn")
        button.wait_for(state="visible", timeout=20_000)
        assert button.inner_text() == "Use push-to-talk"
        assert "loud" in page.locator("#banner-text").inner_text().lower()
        button.click()
        page.wait_for_function("() => document.querySelector('#mode-ptt').getAttribute('aria-pressed') === 'true'")
        assert page.locator("#banner").is_hidden()
        assert page.locator("#mic").inner_text() == "Hold to talk"
        # The log keeps what the banner said.
        assert page.locator(".sys", has_text="Push-to-talk gets your words out").count() == 1
        # Once a visit: back in hands-free, the offer is not made again.
        page.click("#mode-hf")
        page.wait_for_function("() => document.querySelector('#mode-hf').getAttribute('aria-pressed') === 'true'")
        assert page.locator("#banner").is_hidden()
        assert page.locator(".sys", has_text="Push-to-talk gets your words out").count() == 1
    finally:
        page.context.close()  # type: ignore[attr-defined]
