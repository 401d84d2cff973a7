"""Nothing spoken is lost: hanging up, a restart (drain), floods, and a listener that stops reading.

In-process apps (TestClient, or uvicorn in a thread where a real shutdown is needed) with a slow test engine, so
that work is really in flight when the speaker leaves or the server is asked to stop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import httpx
import pytest
import websockets
from starlette.websockets import WebSocketDisconnect

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.fake import FakeEngine
from tests.audio import frames, silence
from tests.test_ws import join, receive_until
from tests.wsclient import BoundedClient


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cut", ["end_utterance", "mid_speech"])
def test_hanging_up_lets_the_last_utterance_finish(tmp_path, speech_pcm, cut):
    """The speaker closes the page 20 ms after finishing (or while the VAD still waits for silence): the room still
    gets what was said."""
    app = create_app(Settings(data_dir=tmp_path), engine=FakeEngine(delay_seconds=0.3))
    with BoundedClient(app) as c, c.websocket_connect("/ws/client") as listener:
        join(listener, "L", "de")
        with c.websocket_connect("/ws/client") as speaker:
            join(speaker, "S", "en")
            assert listener.receive_json()["event"] == "join"
            for frame in frames(speech_pcm):
                speaker.send_bytes(frame)
            if cut == "end_utterance":
                speaker.send_text('{"type": "end_utterance"}')
            time.sleep(0.02)
        got = receive_until(listener, "translation")
        kinds = [m["type"] for m in got if m["type"] != "participants"]
        assert kinds == ["transcript", "translation"] and got[-1]["language"] == "de"
        assert "leave" in [m.get("event") for m in got if m["type"] == "participants"]


class _InThread:
    """uvicorn serving `app` in a thread, with our server class (drain on shutdown)."""

    def __init__(self, app, settings: Settings) -> None:
        from babelfish.cli import _Server, uvicorn_config

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = _Server(uvicorn_config(app, settings), app, "http", "127.0.0.1")
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        self.url = f"ws://127.0.0.1:{self.port}/ws/client"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.mark.timeout(90)
def test_sigterm_loses_nothing_already_spoken(tmp_path, speech_pcm):
    """A restart right after two people spoke (one pressed end_utterance, the other is still inside the VAD's
    silence wait): both utterances are transcribed and translated before `draining`, and the close says why."""
    # A and B send the very same clip at the same moment but stand for two people: one-phone-per-voice would
    # (rightly) deliver it once, so it is off here.
    settings = Settings(data_dir=tmp_path, log_level="warning", one_phone_per_voice=False)
    srv = _InThread(create_app(settings, engine=FakeEngine(delay_seconds=0.4)), settings)

    async def scenario():
        async with (
            websockets.connect(srv.url, max_size=None) as listener,
            websockets.connect(srv.url) as a,
            websockets.connect(srv.url) as b,
        ):
            for ws, name, lang in ((listener, "L", "de"), (a, "A", "en"), (b, "B", "fr")):
                await ws.send(json.dumps({"type": "join", "name": name, "language": lang, "audio": False}))
                assert json.loads(await ws.recv())["type"] == "welcome"
            for frame in frames(speech_pcm):
                await a.send(frame)
                await b.send(frame)
            await a.send('{"type": "end_utterance"}')
            await asyncio.sleep(0.1)
            srv.server.should_exit = True  # what SIGTERM does
            seen: list[dict] = []
            with pytest.raises(websockets.ConnectionClosed) as info:
                while True:
                    seen.append(json.loads(await asyncio.wait_for(listener.recv(), 20)))
            kinds = [(m["type"], m.get("speaker", {}).get("name")) for m in seen if m["type"] != "participants"]
            assert kinds.count(("transcript", "A")) == 1 and kinds.count(("transcript", "B")) == 1, kinds
            assert kinds.count(("translation", "A")) == 1 and kinds.count(("translation", "B")) == 1, kinds
            assert kinds[-1] == ("draining", None)
            assert info.value.rcvd.code == 1012 and info.value.rcvd.reason

    try:
        asyncio.run(scenario())
    finally:
        srv.stop()
    assert not srv.thread.is_alive()


def test_control_flood_is_limited_and_closed(tmp_path):
    settings = Settings(data_dir=tmp_path, max_control_rate=20, control_burst=40)
    with (
        BoundedClient(create_app(settings, engine=FakeEngine())) as c,
        c.websocket_connect("/ws/client") as flood,
        c.websocket_connect("/ws/client") as other,
    ):
        join(flood, "F", "en")
        join(other, "O", "en")
        for i in range(2000):
            flood.send_text(json.dumps({"type": "ping", "id": i}))
        pongs, errors = 0, []
        with pytest.raises(WebSocketDisconnect) as info:
            while True:
                msg = flood.receive_json()
                pongs += msg["type"] == "pong"
                if msg["type"] == "error":
                    errors.append(msg["code"])
        assert info.value.code == 1008
        # Reported once when the flood starts, then again with the close (10 × control_burst dropped).
        assert errors == ["control_too_fast", "control_too_fast"] and 40 <= pongs <= 70
        other.send_text('{"type": "ping", "id": "still here"}')
        msgs = [other.receive_json() for _ in range(2)]
        assert {"type": "pong", "id": "still here"} in msgs


@pytest.mark.timeout(60)
def test_reader_that_stops_is_dropped_before_the_keepalive(tmp_path, speech_pcm):
    """A listener that stops reading while results flow: dropped by our policy (it leaves the room, counted in
    /metrics) within send_timeout_seconds, long before uvicorn's keepalive (20 s + 20 s) would cut it blindly."""
    settings = Settings(data_dir=tmp_path, send_timeout_seconds=3, log_level="warning")
    srv = _InThread(create_app(settings, engine=FakeEngine(tone_seconds=2.0)), settings)

    async def scenario():
        slow_sock = socket.create_connection(("127.0.0.1", srv.port))
        slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow = await websockets.connect(srv.url, sock=slow_sock, max_size=None, ping_interval=None)
        async with websockets.connect(srv.url, max_size=None) as good, websockets.connect(srv.url) as speaker:
            for ws, lang in ((slow, "de"), (good, "fr"), (speaker, "en")):
                await ws.send(json.dumps({"type": "join", "name": lang, "language": lang}))
                assert json.loads(await ws.recv())["type"] == "welcome"
            slow.transport.pause_reading()
            started = time.monotonic()
            left = asyncio.Event()

            async def read_good():
                async for frame in good:
                    if isinstance(frame, str) and '"event":"leave"' in frame:
                        left.set()

            reader = asyncio.create_task(read_good())
            while not left.is_set() and time.monotonic() - started < 30:
                for frame in frames(speech_pcm[:32000] + silence(0.05)):
                    await speaker.send(frame)
                await speaker.send('{"type": "end_utterance"}')
                await asyncio.sleep(0.2)
            assert left.is_set(), "the stuck reader was never dropped"
            assert time.monotonic() - started < 25  # before the keepalive's 40 s
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.port}") as http:
                assert (await http.get("/metrics")).json()["clients_dropped"] == 1
            reader.cancel()
        slow_sock.close()

    try:
        asyncio.run(scenario())
    finally:
        srv.stop()
