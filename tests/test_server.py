"""Real sockets: `server_cpu.py` as a subprocess, the reference client, draining, a slow reader."""

import asyncio
import json
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import httpx
import pytest
import uvicorn
import websockets

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.fake import FakeEngine
from tests.audio import frames, silence
from tests.serverproc import ROOT, ServerProcess


@pytest.fixture
def server(tmp_path):
    srv = ServerProcess(tmp_path / "data").start()
    yield srv.port
    srv.stop()


def test_reference_client_through_a_real_server(server, librivox, tmp_path):
    wav = librivox["sense_and_sensibility_01_austen_64kb-0880"][0]
    out = subprocess.run(
        [sys.executable, "-m", "babelfish.client", str(wav), "--server", f"ws://127.0.0.1:{server}", "--name", "Dan",
         "--language", "en", "--listen", "de", "--listen", "pt", "--json", "--wait", "1.5", "--save-audio",
         str(tmp_path / "audio")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    messages = [json.loads(line) for line in out.stdout.splitlines()]
    by = {(m["connection"], m["type"]) for m in messages}
    assert {("speaker", "transcript"), ("listen:de", "translation"), ("listen:pt", "audio")} <= by
    assert ("speaker", "translation") not in by and ("speaker", "audio") not in by
    for lang in ("de", "pt"):
        mine = [m for m in messages if m["connection"] == f"listen:{lang}" and m["type"] == "translation"]
        assert len(mine) == 1 and mine[0]["language"] == lang
    uid = next(m["utterance_id"] for m in messages if m["type"] == "transcript")
    assert sorted(p.name for p in (tmp_path / "audio").iterdir()) == [f"{uid}-de.wav", f"{uid}-pt.wav"]


def test_reference_client_push_to_talk_sends_only_what_is_pressed(server, librivox, tmp_path):
    """Someone reads on; two presses of the button take two pieces of it. Only the pressed audio reaches the server,
    and each release ends what was said (the test engine's transcript says how long the audio was)."""
    wav = librivox["sense_and_sensibility_01_austen_64kb-0890"][0]
    presses = [(0.5, 1.7), (2.5, 3.5)]
    out = subprocess.run(
        [sys.executable, "-m", "babelfish.client", str(wav), "--server", f"ws://127.0.0.1:{server}", "--json",
         "--wait", "1.5", *(f"--press={a}:{b}" for a, b in presses)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    texts = [json.loads(line) for line in out.stdout.splitlines()]
    seconds = [float(m["text"].split()[1].rstrip("s")) for m in texts if m["type"] == "transcript"]
    pressed = sum(b - a for a, b in presses)
    assert len(seconds) >= len(presses)  # a pause inside a press may cut it too
    assert pressed - 0.5 <= sum(seconds) <= pressed + 0.05
    assert max(seconds) <= max(b - a for a, b in presses) + 0.05


def test_client_rejects_a_press_that_ends_before_it_starts(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "babelfish.client", str(tmp_path / "x.wav"), "--press", "2:1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "a press ends after it starts" in out.stderr


def test_client_exits_non_zero_on_error(server, tmp_path):
    wav = tmp_path / "x.wav"
    import wave

    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(silence(0.2))
    out = subprocess.run(
        [sys.executable, "-m", "babelfish.client", str(wav), "--server", f"ws://127.0.0.1:{server}",
         "--language", "xx"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert "unsupported_language" in out.stdout + out.stderr


def test_port_in_use_is_one_clear_line(server, tmp_path):
    out = subprocess.run(
        [sys.executable, "server_cpu.py", "--engine", "test", "--host", "127.0.0.1", "--port", str(server)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode != 0
    assert f"Port {server} is already in use" in out.stderr and "--port" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_sigterm_drains_clients(tmp_path):
    srv = ServerProcess(tmp_path / "data").start()
    port = srv.port

    async def scenario():
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/client") as ws:
            await ws.send(json.dumps({"type": "join", "name": "A", "language": "en"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "welcome"
            srv.proc.send_signal(signal.SIGTERM)
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert msg["type"] == "draining" and msg["reconnect_after_ms"] > 0
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 10)
            assert info.value.rcvd.code == 1012

    try:
        asyncio.run(scenario())
        assert srv.stop(15) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
    finally:
        srv.kill()


def test_slow_reader_is_dropped_others_unaffected(tmp_path, speech_pcm):
    """A listener that never reads fills its outbox and is dropped: it leaves the room at once, a reading listener
    gets everything, and a restart does not wait for the stuck client (it cannot even take a close frame)."""
    from babelfish.cli import _Server

    # 12 utterances, faster than real time: none shed or dropped here, this is about the reader.
    settings = Settings(data_dir=tmp_path, send_queue_max=4, inference_max_wait_seconds=60, pending_utterances_max=12)
    app = create_app(settings, engine=FakeEngine(tone_seconds=20.0))  # ~880 kB per audio message
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2), app, "http", "127.0.0.1")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the in-process server did not start"
        time.sleep(0.02)
    url = f"ws://127.0.0.1:{port}/ws/client"
    utterances = 12

    async def scenario():
        join = {"type": "join", "name": "x", "room": "r"}
        slow_sock = socket.create_connection(("127.0.0.1", port))
        slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow = await websockets.connect(url, sock=slow_sock, max_size=None, ping_interval=None)
        async with websockets.connect(url, max_size=None) as good, websockets.connect(url) as speaker:
            for ws, lang in ((slow, "de"), (good, "de"), (speaker, "en")):
                await ws.send(json.dumps({**join, "language": lang}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "welcome"
            slow.transport.pause_reading()  # the slow client stops reading from its socket
            audio, leaves = 0, []

            async def read_good():
                nonlocal audio
                while audio < utterances or not leaves:
                    frame = await good.recv()
                    if isinstance(frame, bytes):
                        audio += 1
                    elif (m := json.loads(frame))["type"] == "participants" and m["event"] == "leave":
                        leaves.append(m)

            async def until_good_has(n: int) -> None:
                deadline = time.monotonic() + 30
                while audio < n:
                    if reader.done():
                        reader.result()  # its error, if it failed
                    assert time.monotonic() < deadline, f"the reading listener got {audio} of {n} audio messages"
                    await asyncio.sleep(0.01)

            reader = asyncio.create_task(read_good())
            for i in range(utterances):
                for frame in frames(speech_pcm[:16000] + silence(0.1)):
                    await speaker.send(frame)
                await speaker.send('{"type": "end_utterance"}')
                # The next one once the reading listener has this one's audio: it is then never more than one
                # utterance (3 messages) behind, whatever the machine's load, while the one that does not read
                # falls further behind with each. (A free-running burst evicted the reader too on a loaded machine
                # when it fell 4 messages behind.)
                await until_good_has(i + 1)
            await asyncio.wait_for(reader, 30)  # the slow client's leave
            assert leaves[0]["count"] == 2  # the reader and the speaker are still there
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                metrics = (await http.get("/metrics")).json()
            assert (metrics["clients_dropped"], metrics["clients"]) == (1, 2)
            # A restart with the stuck client still connected: the others get `draining`, the server exits.
            server.should_exit = True
            assert json.loads(await asyncio.wait_for(good.recv(), 10))["type"] == "draining"
            await asyncio.to_thread(thread.join, 20)
            assert not thread.is_alive(), "shutdown waited on a client that does not read"
        slow_sock.close()

    try:
        asyncio.run(scenario())
    finally:
        server.should_exit = True
        thread.join(10)


def test_seamless_without_weights_is_one_clear_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "server_cpu.py", "--engine", "seamless", "--seamless-model", str(tmp_path / "none"),
         "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "no local SeamlessM4T weights" in out.stderr and "--seamless-model" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_https_with_its_own_certificate(tmp_path, librivox):
    """--https: a local CA and a server certificate are made on first start; wss works; the CA is served."""
    srv = ServerProcess(tmp_path / "data", "--https").start()
    try:
        ca = tmp_path / "data" / "tls" / "ca.pem"
        trust = ssl.create_default_context(cafile=str(ca))  # the chain must verify against our own CA
        page = httpx.get(f"https://localhost:{srv.port}/", verify=trust)
        assert page.status_code == 200
        assert httpx.get(f"https://localhost:{srv.port}/ca.pem", verify=trust).content == ca.read_bytes()
        wav = librivox["sense_and_sensibility_01_austen_64kb-0880"][0]
        out = subprocess.run(
            [sys.executable, "-m", "babelfish.client", str(wav), "--server", f"wss://127.0.0.1:{srv.port}",
             "--insecure", "--listen", "de", "--wait", "1"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        assert "→ de: [de] utterance" in out.stdout
    finally:
        srv.stop()


def test_frame_over_the_socket_limit_gets_the_documented_error(server):
    """A frame far over max_frame_bytes is refused by the frame parser (never buffered), yet answered like any other
    oversized frame: `frame_too_large`, then 1009 — not a bare close from the ASGI server."""

    async def scenario():
        async with websockets.connect(f"ws://127.0.0.1:{server}/ws/client", max_size=None) as ws:
            await ws.send(json.dumps({"type": "join", "name": "A", "language": "en"}))
            assert json.loads(await ws.recv())["type"] == "welcome"
            await ws.send(bytes(1_000_000))
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert (msg["type"], msg["code"]) == ("error", "frame_too_large") and "64000" in msg["message"]
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 10)
            assert info.value.rcvd.code == 1009

    asyncio.run(scenario())
