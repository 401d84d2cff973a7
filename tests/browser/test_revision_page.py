"""Revisions on the page, in a real Chromium against the real server (`--engine test`): the fake microphone says a
sentence with a breath pause in it, the server cuts it in two and then revises the turn; the listener's two cards
become one, marked revised, with the revised original and translation."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.test_client_thin import ARTIFACTS, CHROMIUM, chromium_args, open_page, pw, wait_joined  # noqa: F401
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def paused_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ "Good morning, everybody.", a breath (~0.8 s), "This is a test of the translator.", 4 s of silence."""
    d = tmp_path_factory.mktemp("paused")
    parts = []
    for i, text in enumerate(["Good morning, everybody.", "This is a test of the translator."]):
        raw = d / f"raw{i}.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True)
        parts.append(raw)
    wav = d / "paused.wav"
    subprocess.run(
        ["sox", str(parts[0]), "-r", "48000", "-c", "1", "-b", "16", str(d / "a.wav"), "pad", "0.6", "0.6"], check=True
    )
    subprocess.run(["sox", str(parts[1]), "-r", "48000", "-c", "1", "-b", "16", str(d / "b.wav"), "pad", "0", "4"],
                   check=True)  # fmt: skip
    subprocess.run(["sox", str(d / "a.wav"), str(d / "b.wav"), str(wav)], check=True)
    return wav


@pytest.fixture(scope="module")
def paused_browser(pw: object, paused_wav: Path) -> Iterator[object]:  # noqa: F811
    b = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(paused_wav))  # type: ignore[attr-defined]
    yield b
    b.close()


def test_the_turns_cards_merge_into_one_revised_card(tmp_path: Path, paused_browser: object) -> None:
    srv = ServerProcess(tmp_path / "data").start()
    speaker = open_page(paused_browser, f"{srv.url}?room=rev&name=Speaker&lang=en")
    listener = open_page(paused_browser, f"{srv.url}?room=rev&name=Listener&lang=de", phone=True)
    try:
        wait_joined(speaker)
        wait_joined(listener)
        speaker.click("#mic")
        card = listener.locator("article.utt.revised").first
        card.wait_for(timeout=30_000)
        speaker.click("#mic")
        assert listener.evaluate("() => window.babblefish.stats.revisions") >= 1  # type: ignore[attr-defined]
        # the revised card holds the whole turn: the fake engine names the audio's length in its text
        main, orig = card.locator(".main .txt").inner_text(), card.locator(".orig .txt").inner_text()
        assert main.startswith("[de] utterance ") and orig.startswith("utterance ")
        seconds = float(orig.split()[1].rstrip("s"))
        assert seconds > 3.0, orig  # both pieces (each under 3 s) in one
        ids = card.get_attribute("data-utt")
        assert listener.locator(f"article.utt[data-utt='{ids}']").count() == 1
        assert card.locator(".meta").evaluate("(el) => getComputedStyle(el, '::after').content") == '"revised"'
        speaker.locator("article.utt.mine.revised").first.wait_for(timeout=10_000)  # the speaker's own card too
        listener.screenshot(path=ARTIFACTS / "phone-revised.png")
    finally:
        speaker.context.close()
        listener.context.close()
        srv.kill()
