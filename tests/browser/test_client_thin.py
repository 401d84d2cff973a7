"""The thin client in a real headless Chromium against the real server (`--engine test`).

Chromium comes from Debian (/usr/bin/chromium) and is driven by Python Playwright; its fake capture device
plays an espeak-ng sentence (padded with silence so the server's VAD cuts it) in a loop into getUserMedia.
Covers: two pages in one room (names, translations, received audio), push-to-talk (button and space bar),
kill -9 and restart of the server (both pages reconnect, the conversation goes on), PWA installability.
Screenshots (phone 360×640 and desktop) go to tests/artifacts/.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright comes from pip; never `playwright install`: the browser is Debian's chromium. scripts/setup.sh --test
# installs both; a missing one fails here rather than quietly skipping the browser tests.
from playwright import sync_api as playwright_sync

from tests.browser.chromium import CHROMIUM, chromium_args
from tests.serverproc import ROOT, ServerProcess

pytestmark = pytest.mark.browser
ARTIFACTS = ROOT / "tests" / "artifacts"
PHONE = {"width": 360, "height": 640}
DESKTOP = {"width": 1280, "height": 800}

assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: bash scripts/setup.sh --test"


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("speech")
    raw, wav = d / "raw.wav", d / "speech.wav"
    text = "Good morning, this is a test of the translator."
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True)
    # 48 kHz mono 16-bit, 0.6 s of silence before and 1.2 s after: the VAD cuts one utterance per loop.
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(wav), "pad", "0.6", "1.2"], check=True)
    return wav


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    d = tmp_path_factory.mktemp("server")
    srv = ServerProcess(d / "data").start()
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def pw() -> Iterator[object]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(pw: object, speech_wav: Path) -> Iterator[object]:
    b = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(speech_wav))  # type: ignore[attr-defined]
    yield b
    b.close()


def open_page(browser: object, url: str, phone: bool = False, dark: bool = False) -> object:
    ctx = browser.new_context(  # type: ignore[attr-defined]
        viewport=PHONE if phone else DESKTOP,
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
        permissions=["microphone"],
        color_scheme="dark" if dark else "light",
    )
    page = ctx.new_page()
    page.on("pageerror", lambda e: pytest.fail(f"page error: {e}"))
    page.goto(url)
    return page


def stats(page: object) -> dict[str, int]:
    return page.evaluate("() => ({...window.babblefish.stats, state: window.babblefish.state})")  # type: ignore[attr-defined]


def wait_joined(page: object, timeout_ms: int = 15_000) -> None:
    page.wait_for_function("() => window.babblefish && window.babblefish.state === 'joined'", timeout=timeout_ms)  # type: ignore[attr-defined]


def test_pwa_is_installable(server: ServerProcess, pw: object, speech_wav: Path, tmp_path: Path) -> None:
    # Installability needs a real profile: Playwright's ordinary contexts count as incognito.
    ctx = pw.chromium.launch_persistent_context(  # type: ignore[attr-defined]
        str(tmp_path / "profile"), executable_path=CHROMIUM, args=chromium_args(speech_wav), viewport=DESKTOP
    )
    try:
        page = ctx.new_page()
        page.on("pageerror", lambda e: pytest.fail(f"page error: {e}"))
        page.goto(server.url)
        page.wait_for_function("async () => !!(await navigator.serviceWorker.ready).active", timeout=10_000)
        cdp = ctx.new_cdp_session(page)
        manifest = cdp.send("Page.getAppManifest")
        assert not manifest.get("errors"), manifest.get("errors")
        assert json.loads(manifest["data"])["short_name"] == "BabbleFish"
        errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
        assert errors == [], errors
        # The service worker serves the shell but never API responses.
        cached = page.evaluate("async () => (await (await caches.open('babblefish-shell-v1')).keys()).map(r => r.url)")
        assert any(u.endswith("/client_thin.html") for u in cached), cached
        assert not any("/languages" in u or "/ws/" in u or "qr.svg" in u for u in cached), cached
        # The join form comes first when the URL does not say everything.
        assert page.locator("#settings").is_visible()
        page.wait_for_function("() => document.querySelectorAll('#f-lang option').length > 5")
        page.screenshot(path=ARTIFACTS / "desktop-join-form.png")
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def room(server: ServerProcess, browser: object) -> Iterator[tuple[object, object]]:
    """A speaker (desktop, English) and a listener (phone, German) in one room."""
    speaker = open_page(browser, f"{server.url}?room=browser&name=Speaker&lang=en")
    listener = open_page(browser, f"{server.url}client_thin.html?room=browser&name=Listener&lang=de", phone=True)
    wait_joined(speaker)
    wait_joined(listener)
    yield speaker, listener
    speaker.context.close()
    listener.context.close()


def utterances(page: object) -> int:
    return page.locator("article.utt").count()  # type: ignore[attr-defined]


def test_hands_free_conversation(room: tuple[object, object]) -> None:
    speaker, listener = room
    speaker.wait_for_selector("text=Listener joined (German).", timeout=5_000)
    assert "Here: Speaker" in listener.locator(".sys").first.inner_text()
    speaker.click("#mic")  # one click and the speaker is live
    card = listener.locator("article.utt").first
    card.wait_for(timeout=20_000)
    assert card.locator(".who").inner_text() == "Speaker"
    listener.wait_for_function("() => document.querySelector('article.utt .main .txt')?.textContent.startsWith('[de]')")
    assert card.locator(".orig .tag").inner_text().lower() == "en"  # the original, with its language
    listener.wait_for_function("() => window.babblefish.stats.audioReceived > 0", timeout=10_000)
    s = stats(listener)
    assert s["audioBytes"] > 1000 and s["audioPlayed"] >= 1, s
    # The speaker sees their own utterance, marked as theirs, and never gets audio of it.
    speaker.locator("article.utt.mine").first.wait_for(timeout=10_000)
    assert stats(speaker)["audioReceived"] == 0
    speaker.click("#mic")  # stop
    speaker.wait_for_function("() => document.querySelector('#mic').textContent === 'Start talking'")
    time.sleep(0.5)
    listener.screenshot(path=ARTIFACTS / "phone-conversation.png")
    speaker.screenshot(path=ARTIFACTS / "desktop-conversation.png")


def test_transcript_download(room: tuple[object, object]) -> None:
    _, listener = room  # after test_hands_free_conversation: the room has said something
    listener.click("#settings-btn")
    listener.locator("#transcript").wait_for(state="visible", timeout=5_000)
    with listener.expect_download(timeout=10_000) as info:  # type: ignore[attr-defined]
        listener.click("#transcript [data-format=json]")
    download = info.value
    name = download.suggested_filename
    assert name.startswith("babblefish-browser-") and name.endswith(".json"), name
    doc = json.loads(Path(download.path()).read_text())
    assert doc["room"] == "browser" and doc["utterances"], doc
    assert doc["utterances"][0]["speaker"]["name"] == "Speaker"
    assert doc["utterances"][0]["translations"]["de"].startswith("[de]")
    listener.click("#close-settings")


def test_push_to_talk(room: tuple[object, object]) -> None:
    speaker, listener = room
    speaker.click("#mode-ptt")
    assert speaker.locator("#mic").inner_text() == "Hold to talk"
    time.sleep(1.5)  # let anything in flight from hands-free arrive
    before_sent, before_cards = stats(speaker)["framesSent"], utterances(listener)
    time.sleep(1.0)
    assert stats(speaker)["framesSent"] == before_sent, "push-to-talk must not send while released"

    box = speaker.locator("#mic").bounding_box()
    speaker.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    speaker.mouse.down()
    speaker.wait_for_function("() => document.querySelector('#mic').classList.contains('live')")
    time.sleep(1.2)
    speaker.mouse.up()
    s = stats(speaker)
    assert s["framesSent"] > before_sent + 30 and s["endUtterances"] >= 1, s

    # Space bar too (a desktop keyboard).
    speaker.locator("body").click(position={"x": 5, "y": 200})
    speaker.keyboard.down("Space")
    speaker.wait_for_function("() => document.querySelector('#mic').classList.contains('live')")
    time.sleep(2.5)
    speaker.keyboard.up("Space")
    assert stats(speaker)["endUtterances"] >= 2
    more = f"() => document.querySelectorAll('article.utt').length > {before_cards}"
    listener.wait_for_function(more, timeout=15_000)
    speaker.screenshot(path=ARTIFACTS / "desktop-push-to-talk.png")


def test_echo_gating_mutes_the_mic_while_speech_plays(room: tuple[object, object]) -> None:
    """A listener talking hands-free sends silence, not the room, while translated speech plays."""
    speaker, listener = room
    listener.click("#mic")  # the listener's mic goes live too (hands-free, gating on by default)
    listener.wait_for_function("() => window.babblefish.stats.framesSent > 10")
    played, gated = stats(listener)["audioPlayed"], stats(listener)["framesGated"]
    speaker.click("#mode-ptt")
    speaker.locator("body").click(position={"x": 5, "y": 200})
    speaker.keyboard.down("Space")
    time.sleep(2.0)
    speaker.keyboard.up("Space")
    listener.wait_for_function(f"() => window.babblefish.stats.audioPlayed > {played}", timeout=15_000)
    listener.wait_for_function(f"() => window.babblefish.stats.framesGated > {gated}", timeout=5_000)
    listener.click("#mic")  # stop, so the listener's own test audio does not reach later tests
    listener.wait_for_function("() => document.querySelector('#mic').textContent === 'Start talking'")


def test_reconnects_after_server_restart(server: ServerProcess, room: tuple[object, object]) -> None:
    speaker, listener = room
    server.kill()
    for page in room:
        page.wait_for_function("() => window.babblefish.state !== 'joined'", timeout=10_000)
    time.sleep(1.5)  # a couple of failed attempts: backoff in action
    listener.screenshot(path=ARTIFACTS / "phone-reconnecting.png")
    assert "retry in" in listener.locator("#status-text").inner_text()
    server.start()
    for page in room:
        wait_joined(page, timeout_ms=20_000)
        assert stats(page)["reconnects"] >= 1
    # Same names, same room: the conversation continues.
    before = utterances(listener)
    speaker.click("#mode-hf")
    speaker.click("#mic")
    listener.wait_for_function(f"() => document.querySelectorAll('article.utt').length > {before}", timeout=20_000)
    last = listener.locator("article.utt").last
    assert last.locator(".who").inner_text() == "Speaker"
    speaker.click("#mic")


def test_draining_restart_is_handled_like_a_drop(server: ServerProcess, room: tuple[object, object]) -> None:
    listener = room[1]
    before = stats(listener)["reconnects"]
    server.stop()
    listener.wait_for_selector("text=The server is restarting.", timeout=10_000)
    server.start()
    for page in room:
        back = f"() => window.babblefish.stats.reconnects > {before} && window.babblefish.state === 'joined'"
        page.wait_for_function(back, timeout=20_000)


def test_invite_dialog_and_phone_layout(server: ServerProcess, room: tuple[object, object]) -> None:
    _, listener = room
    listener.click("#invite-btn")
    link = listener.locator("#invite-link").input_value()
    assert link.endswith("?room=browser"), link
    listener.wait_for_function("() => document.querySelector('#qr').naturalWidth > 100", timeout=5_000)
    listener.screenshot(path=ARTIFACTS / "phone-invite.png")
    listener.click("#close-invite")
    # Nothing overflows sideways at 360 px, and the talk button is a big touch target.
    assert listener.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    mic = listener.locator("#mic").bounding_box()
    assert mic["height"] >= 48 and mic["width"] >= 120


def test_opened_from_a_file_with_a_typed_server_url(server: ServerProcess, browser: object) -> None:
    page = open_page(browser, (ROOT / "client_thin.html").as_uri(), phone=True, dark=True)
    page.wait_for_selector("#settings:not(.hidden)")
    assert page.locator("#advanced").get_attribute("open") is not None  # no origin: the server field is shown
    page.fill("#f-name", "Filer")
    page.fill("#f-room", "from-file")
    page.fill("#f-server", f"127.0.0.1:{server.port}")
    page.select_option("#f-lang", "fr")
    page.screenshot(path=ARTIFACTS / "phone-join-from-file.png")
    page.click("#join-btn")
    wait_joined(page)
    page.screenshot(path=ARTIFACTS / "phone-dark-joined.png")
    # Remembered on the device for the next visit.
    assert page.evaluate("() => JSON.parse(localStorage.getItem('babblefish.name'))") == "Filer"
    page.context.close()
