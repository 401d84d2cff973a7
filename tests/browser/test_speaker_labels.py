"""Speaker labels on the page, with voice recognition on: one colour per voice on every page, tap to name it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.test_client_thin import browser, open_page, pw, speech_wav, wait_joined  # noqa: F401 - fixtures
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def voice_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("voices") / "data", "--speaker-embedder", "resemblyzer")
    srv.start(timeout=240)
    yield srv
    srv.kill()


def test_label_colour_and_tap_to_rename(voice_server: ServerProcess, browser: object) -> None:  # noqa: F811
    speaker = open_page(browser, f"{voice_server.url}?room=voices&name=Desk&lang=en")
    listener = open_page(browser, f"{voice_server.url}?room=voices&name=Phone&lang=de", phone=True)
    try:
        wait_joined(speaker)
        wait_joined(listener)
        speaker.click("#mic")
        # A voice's label can be tapped; cards that show streaming partials (or a first utterance too short to
        # recognise) are labelled with the client until their final names the voice.
        label = listener.locator("article.utt .who:enabled").first
        label.wait_for(timeout=30_000)
        assert label.inner_text() == "Desk"  # the first voice heard through "Desk" takes its name
        mine = speaker.locator("article.utt.mine .who:enabled").first
        mine.wait_for(timeout=30_000)  # the speaker's own card, marked as theirs though labelled by voice
        colour = "(el) => getComputedStyle(el).color"
        assert label.evaluate(colour) == mine.evaluate(colour) != "rgb(0, 0, 0)"  # one voice, one colour everywhere
        speaker.click("#mic")  # stop talking
        listener.once("dialog", lambda d: d.accept("Robot"))
        label.click()
        # Cards with final text; one still streaming partials may be labelled with the client until its final.
        renamed = (
            "() => [...document.querySelectorAll('article.utt:not(.partial) .who')]"
            ".every(w => w.textContent === 'Robot')"
        )
        for page in (listener, speaker):
            page.wait_for_function(renamed, timeout=10_000)
    finally:
        speaker.context.close()
        listener.context.close()
