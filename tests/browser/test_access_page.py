"""The page with access control, in a real Chromium: a room passcode and the invite link that carries it, and an
access token through the shipped nginx config with TLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from babelfish.tokens import TokenStore
from tests.browser.test_client_thin import DESKTOP, browser, pw, speech_wav, wait_joined  # noqa: F401 (fixtures)
from tests.nginxproc import nginx_in_front
from tests.serverproc import ROOT, ServerProcess

pytestmark = pytest.mark.browser


def new_page(browser: object, url: str, insecure: bool = False) -> object:  # noqa: F811 (the fixture, passed in)
    ctx = browser.new_context(viewport=DESKTOP, permissions=["microphone"], ignore_https_errors=insecure)  # type: ignore[attr-defined]
    page = ctx.new_page()
    page.on("pageerror", lambda e: pytest.fail(f"page error: {e}"))
    page.goto(url)
    return page


def form_error(page: object) -> str:
    page.wait_for_function("() => document.querySelector('#settings-err').textContent !== ''", timeout=15_000)  # type: ignore[attr-defined]
    return page.locator("#settings-err").inner_text()  # type: ignore[attr-defined]


def test_room_passcode_and_the_invite_that_carries_it(browser: object, tmp_path: Path) -> None:  # noqa: F811
    srv = ServerProcess(tmp_path / "data", "--access", "passcode").start()
    try:
        host = new_page(browser, f"{srv.url}?room=locked&name=Ann&lang=en")  # a full link joins at once...
        assert "passcode" in form_error(host)  # ...but a new room needs a passcode here: the form says so
        host.fill("#f-passcode", "tulip 42")
        host.click("#join-btn")
        wait_joined(host)
        host.click("#invite-btn")
        link = host.locator("#invite-link").input_value()
        assert link == f"{srv.url}?room=locked#passcode=tulip+42", link
        assert "passcode%3Dtulip%2B42" in host.locator("#qr").get_attribute("src")  # the QR code is of that link

        guest = new_page(browser, link)
        guest.wait_for_selector("#settings:not(.hidden)")
        assert guest.locator("#f-passcode").input_value() == "tulip 42"
        assert "#" not in guest.url  # read, then dropped from the address bar...
        guest.reload()  # ...and kept on the device, so a reload before joining does not lose it
        guest.wait_for_selector("#settings:not(.hidden)")
        assert guest.locator("#f-passcode").input_value() == "tulip 42"
        guest.fill("#f-name", "Ben")
        guest.select_option("#f-lang", "de")
        guest.click("#join-btn")
        wait_joined(guest)
        host.wait_for_selector("text=Ben", timeout=10_000)

        intruder = new_page(browser, f"{srv.url}?room=locked&name=Eve&lang=fr")
        assert "passcode" in form_error(intruder)
        assert intruder.evaluate("() => window.babblefish.state") == "failed"  # no retrying a wrong passcode
    finally:
        srv.stop()


def test_page_with_a_token_through_nginx(browser: object, tmp_path: Path) -> None:  # noqa: F811
    secret = TokenStore.in_data_dir(tmp_path / "data").create("ann")
    with nginx_in_front(tmp_path, "--access", "token") as (port, srv):
        base = f"https://127.0.0.1:{port}/"
        nobody = new_page(browser, base + "?room=t&name=Nobody&lang=en", insecure=True)
        # Refused at the handshake (HTTP 403): the page never gets in and waits to retry.
        nobody.wait_for_function("() => window.babblefish.state === 'waiting'", timeout=15_000)
        page = new_page(browser, base + f"?room=t&name=Ann&lang=en#token={secret}", insecure=True)
        wait_joined(page)
        assert secret not in page.url
        assert page.evaluate("() => JSON.parse(localStorage.getItem('babblefish.token'))") == secret
        page.reload()  # the address bar no longer has the token; the saved one is used
        wait_joined(page)
    log = srv.log.read_text()
    assert "missing_token" in log and secret not in log


def test_file_page_carries_token_and_passcode_to_the_servers_page(browser: object, tmp_path: Path) -> None:  # noqa: F811
    secret = TokenStore.in_data_dir(tmp_path / "data").create("dan")
    srv = ServerProcess(tmp_path / "data", "--access", "token").start()
    try:
        page = new_page(browser, (ROOT / "client_thin.html").as_uri())
        page.fill("#f-name", "Dan")
        page.fill("#f-room", "filed")
        page.fill("#f-passcode", "owl 7")
        page.fill("#f-server", f"127.0.0.1:{srv.port}")
        page.fill("#f-token", secret)
        page.select_option("#f-lang", "de")
        page.click("#join-btn")
        wait_joined(page)  # the token opened the WebSocket; the room was created with the passcode
        assert page.url.startswith(srv.url + "?") and secret not in page.url
        page.click("#invite-btn")
        assert page.locator("#invite-link").input_value().endswith("?room=filed#passcode=owl+7")
    finally:
        srv.stop()
