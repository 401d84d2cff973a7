"""Streaming partials on the page, in a real Chromium against the real server (`--engine test`): the words appear
while the speaker talks, the tentative tail greyed, and the final text replaces them on the same card."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.test_client_thin import ARTIFACTS, browser, open_page, pw, speech_wav, wait_joined  # noqa: F401
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("partials") / "data", "--partials").start()
    yield srv
    srv.kill()


def test_partial_text_greyed_then_replaced_by_the_final(server: ServerProcess, browser: object) -> None:  # noqa: F811
    speaker = open_page(browser, f"{server.url}?room=partials&name=Speaker&lang=en")
    listener = open_page(browser, f"{server.url}?room=partials&name=Listener&lang=de", phone=True)
    try:
        wait_joined(speaker)
        wait_joined(listener)
        speaker.click("#mic")
        # One look at a card while it is partial: the final may replace it at any moment (on a slow machine, right
        # after its first partial), so the card's id, the tail's look and the hidden latency are read together.
        seen = listener.wait_for_function(
            """() => {
                const tail = document.querySelector('article.utt.partial .tail');
                if (!tail) return null;
                const card = tail.closest('article'), lat = card.querySelector('.lat');
                const t = getComputedStyle(tail), txt = getComputedStyle(tail.closest('.txt'));
                return {
                    utt: card.dataset.utt,
                    greyed: t.color !== txt.color || Number(t.opacity) < 1,
                    latHidden: !lat || lat.offsetParent === null || getComputedStyle(lat).display === 'none',
                };
            }""",
            timeout=20_000,  # words while the speaker is still talking
        ).json_value()
        utt = seen["utt"]
        card = listener.locator(f"article.utt[data-utt='{utt}']")
        assert seen["greyed"], "the tentative tail must look different from settled text"
        assert seen["latHidden"]  # no latency on text still being spoken
        listener.screenshot(path=ARTIFACTS / "phone-partials.png")
        # The same card turns final: no tail, no partial look, my language's final text.
        handle = card.element_handle()
        listener.wait_for_function(
            "(el) => !el.classList.contains('partial') && !el.querySelector('.tail')", arg=handle, timeout=20_000
        )
        assert card.locator(".main .txt").inner_text().startswith("[de] utterance ")
        assert card.locator(".orig .txt").inner_text().startswith("utterance ")
        # The speaker sees their own words stream too, marked as theirs.
        speaker.locator("article.utt.mine").first.wait_for(timeout=10_000)
        speaker.click("#mic")
    finally:
        speaker.context.close()
        listener.context.close()
