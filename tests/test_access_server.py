"""Access control on a real server process: the reference client's --token, logs without secrets, oversized
request heads on the real HTTP parser, systemd readiness (Type=notify) and the start-up warning."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx
import pytest
import websockets.sync.client as ws_client

from babelfish.cli import exposed
from babelfish.tokens import TokenStore
from tests.serverproc import ROOT, ServerProcess


def client(wav, server: ServerProcess, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "babelfish.client", str(wav), "--server", f"ws://127.0.0.1:{server.port}",
         "--language", "en", "--no-realtime", "--wait", "1", "--timeout", "30", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_token_server_reference_client_and_quiet_logs(tmp_path, librivox, notify_socket):
    data = tmp_path / "data"
    secret = TokenStore.in_data_dir(data).create("cli")
    srv = ServerProcess(data, "--access", "token", "--log-level", "debug").start()
    try:
        # systemd readiness arrives once the engine is loaded and the port listens (the ready line is out).
        assert b"READY=1" in notify_socket.recv(4096)
        wav = librivox["sense_and_sensibility_01_austen_64kb-0880"][0]
        out = client(wav, srv)
        assert out.returncode == 1 and "HTTP 403" in out.stderr and "access token" in out.stderr, out.stderr
        out = client(wav, srv, "--token", "bf_not-a-token")
        assert out.returncode == 1 and "revoked" in out.stderr, out.stderr
        out = client(wav, srv, "--token", secret, "--listen", "de")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "listen:de" in out.stdout
        assert httpx.get(f"{srv.url}metrics?token={secret}").status_code == 200  # loopback: the operator's machine
    finally:
        srv.stop()
    log = srv.log.read_text()
    assert "WebSocket /ws/client?token=***" in log  # uvicorn's line, scrubbed
    assert secret not in log and "bf_not-a-token" not in log


def test_oversized_heads_on_the_real_parser(tmp_path):
    srv = ServerProcess(tmp_path / "data").start()
    try:

        def status(head: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                try:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
                    return s.recv(64).split(b"\r\n")[0]
                except (ConnectionResetError, BrokenPipeError):  # cut off mid-send: the server stopped reading
                    return b"reset"

        assert status(b"X-Big: " + b"a" * 20_000 + b"\r\n") == b"HTTP/1.1 431 Request Header Fields Too Large"
        many = b"".join(b"X-%d: 1\r\n" % i for i in range(200))
        assert status(many) == b"HTTP/1.1 431 Request Header Fields Too Large"
        started = time.monotonic()
        assert status(b"X-Big: " + b"a" * 10_000_000 + b"\r\n") in (b"HTTP/1.1 400 Bad Request", b"reset")
        assert time.monotonic() - started < 10
        assert httpx.get(srv.url + "healthz").status_code == 200  # and the server carries on
        refused = httpx.get(srv.url + "metrics").json()["refused"]
        assert (refused["headers_too_large"], refused["too_many_headers"]) == (1, 1)
    finally:
        srv.stop()


def test_warning_when_open_to_the_network(tmp_path):
    assert exposed("0.0.0.0") and exposed("192.168.1.20") and exposed("::") and exposed("example.org")
    assert not exposed("127.0.0.1") and not exposed("::1") and not exposed("localhost")
    srv = ServerProcess(tmp_path / "data", "--host", "0.0.0.0").start()  # the later --host wins
    srv.stop()
    assert "with --access open: anyone who can reach port" in srv.log.read_text()
    srv = ServerProcess(tmp_path / "data2", "--access", "token").start()
    srv.stop()
    assert "anyone who can reach" not in srv.log.read_text()


def test_reference_client_passcode(tmp_path, librivox):
    data = tmp_path / "data"
    secret = TokenStore.in_data_dir(data).create("cli")  # no Origin: a token is needed under --access passcode
    srv = ServerProcess(data, "--access", "passcode").start()
    try:
        url = f"ws://127.0.0.1:{srv.port}/ws/client?token={secret}"
        with ws_client.connect(url, open_timeout=10) as holder:  # creates the room, with its passcode
            holder.send(json.dumps({"type": "join", "name": "Host", "language": "de", "room": "r", "passcode": "p w"}))
            assert json.loads(holder.recv(timeout=10))["type"] == "welcome"
            wav = librivox["sense_and_sensibility_01_austen_64kb-0880"][0]
            out = client(wav, srv, "--token", secret, "--room", "r", "--passcode", "nope")
            assert out.returncode == 1 and "bad_passcode" in out.stdout + out.stderr, out.stdout + out.stderr
            out = client(wav, srv, "--token", secret, "--room", "r", "--passcode", "p w")
            assert out.returncode == 0, out.stdout + out.stderr
    finally:
        srv.stop()
