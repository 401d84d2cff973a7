"""The shipped nginx config in front of a real server: HTTPS page and WSS conversation through the proxy, open and
with access tokens."""

import json
import ssl
import subprocess
import sys

import httpx
import pytest
import websockets
import websockets.sync.client as ws_client

from babelfish.tokens import TokenStore
from tests.nginxproc import ACCESS_LOG, nginx_in_front
from tests.serverproc import ROOT


@pytest.fixture
def proxied(tmp_path):
    with nginx_in_front(tmp_path) as (https_port, _):
        yield https_port


def run_client(wav, https_port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "babelfish.client", str(wav), "--server", f"wss://127.0.0.1:{https_port}", "--insecure",
         "--language", "en", "--listen", "de", "--json", "--wait", "1.5", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def kinds(out: subprocess.CompletedProcess[str]) -> set[tuple[str, str]]:
    return {(m["connection"], m["type"]) for m in map(json.loads, out.stdout.splitlines())}


def test_conversation_through_nginx(proxied, librivox):
    base = f"https://127.0.0.1:{proxied}"
    page = httpx.get(base + "/", verify=False)
    assert page.status_code == 200 and "BabbleFish" in page.text
    assert httpx.get(base + "/metrics", verify=False).status_code == 200  # local: allowed
    out = run_client(librivox["sense_and_sensibility_01_austen_64kb-0880"][0], proxied)
    assert out.returncode == 0, out.stdout + out.stderr
    assert {("speaker", "transcript"), ("listen:de", "translation"), ("listen:de", "audio")} <= kinds(out)


def test_tokens_and_origin_through_nginx(tmp_path, librivox):
    secret = TokenStore.in_data_dir(tmp_path / "data").create("alice")
    with nginx_in_front(tmp_path, "--access", "token") as (port, srv):
        wav = librivox["sense_and_sensibility_01_austen_64kb-0880"][0]
        out = run_client(wav, port)
        assert out.returncode == 1 and "HTTP 403" in out.stderr, out.stderr
        out = run_client(wav, port, "--token", secret)
        assert out.returncode == 0, out.stdout + out.stderr
        assert {("speaker", "transcript"), ("listen:de", "translation")} <= kinds(out)
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        url = f"wss://127.0.0.1:{port}/ws/client?token={secret}"
        # The page's own origin passes through the proxy (nginx hands on the browser's Host, port included).
        with ws_client.connect(url, ssl=insecure, origin=f"https://127.0.0.1:{port}", open_timeout=10) as ws:
            ws.send(json.dumps({"type": "join", "name": "Page", "language": "de"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
        with pytest.raises(websockets.InvalidStatus) as info:
            ws_client.connect(url, ssl=insecure, origin="https://evil.example", open_timeout=10)
        assert info.value.response.status_code == 403
        assert httpx.get(f"https://127.0.0.1:{port}/metrics", verify=False).status_code == 200  # from the machine
    assert secret not in srv.log.read_text()
    access = (tmp_path / ACCESS_LOG).read_text()
    assert "/ws/client" in access and secret not in access  # logged, without the token
