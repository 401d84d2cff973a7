"""WebSocket tests through the real app (test engine, real VAD)."""

import json
import time

import pytest
from starlette.websockets import WebSocketDisconnect

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.fake import FakeEngine
from tests import wsclient
from tests.audio import frames, silence
from tests.wsclient import BoundedClient


def join(ws, name, language, **extra):
    ws.send_text(json.dumps({"type": "join", "name": name, "language": language, **extra}))
    msg = ws.receive_json()
    assert msg["type"] == "welcome", msg
    return msg


def speak(ws, pcm):
    for frame in frames(silence(0.3) + pcm + silence(0.6)):
        ws.send_bytes(frame)


def receive_until(ws, kind, seconds=30.0):
    """Messages up to and including the first of type `kind` (audio payloads attached); fails after `seconds`."""
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = ws.receive_json()  # itself bounded (tests/wsclient.py)
        if msg["type"] == "audio":
            msg["payload"] = ws.receive_bytes()
        got.append(msg)
        if msg["type"] == kind:
            return got
    raise AssertionError(f"no {kind!r} within {seconds:.0f} s; got {[m['type'] for m in got]}")


def assert_nothing_pending(ws):
    """A ping is answered after everything already queued for `ws`: a pong next means nothing else was."""
    ws.send_text('{"type": "ping"}')
    assert ws.receive_json()["type"] == "pong"


def assert_closed(ws, code):
    with pytest.raises(WebSocketDisconnect) as info:
        ws.receive_json()
    assert info.value.code == code


def test_three_languages_each_get_their_own(client, speech_pcm):
    with (
        client.websocket_connect("/ws/client") as en,
        client.websocket_connect("/ws/client") as de,
        client.websocket_connect("/ws/client") as pt,
        client.websocket_connect("/ws/client") as de2,
    ):
        welcome = join(en, "Ann", "en")
        assert {"code", "name", "speech_in", "text_out", "speech_out"} <= set(welcome["languages"][0])
        assert welcome["engine"]["name"] == "test"
        join(de, "Bernd", "de-DE")
        join(pt, "Paula", "por")
        join(de2, "Dora", "de")
        for ws in (en, de, pt):  # drain the join notices
            while ws.receive_json()["count"] < 4:
                pass
        speak(en, speech_pcm)

        mine = receive_until(en, "transcript")[-1]
        assert mine["speaker"]["name"] == "Ann" and mine["language"] == "en" and mine["text"].startswith("utterance")
        for ws, lang in ((de, "de"), (pt, "pt"), (de2, "de")):
            got = receive_until(ws, "audio")
            kinds = [m["type"] for m in got if m["type"] != "participants"]
            assert kinds == ["transcript", "translation", "audio"]
            transcript, translation, audio = (m for m in got if m["type"] != "participants")
            assert transcript["text"] == mine["text"] and transcript["utterance_id"] == mine["utterance_id"]
            assert translation["language"] == lang and translation["text"] == f"[{lang}] {mine['text']}"
            assert translation["speaker"] == mine["speaker"] and translation["source_language"] == "en"
            assert audio["language"] == lang and audio["bytes"] == len(audio["payload"]) > 0
            assert audio["encoding"] == "pcm_s16le" and audio["sample_rate"] == 22050
            assert all(isinstance(m["latency_ms"], int) for m in (transcript, translation, audio))
        # Everything for this utterance was queued before the listeners' audio: a pong now proves the speaker
        # got no translation and no audio of its own voice.
        en.send_text('{"type": "ping", "id": 1}')
        assert en.receive_json() == {"type": "pong", "id": 1}

    metrics = client.get("/metrics").json()
    assert metrics["utterances_processed"] == 1
    assert metrics["latency_ms"]["translation"]["count"] == 2  # once per language (de, pt), not per listener
    assert metrics["latency_ms"]["audio"]["count"] == 2


def test_same_language_listener_gets_transcript_only(client, speech_pcm):
    with (
        client.websocket_connect("/ws/client") as a,
        client.websocket_connect("/ws/client") as b,
        client.websocket_connect("/ws/client") as c,
    ):
        join(a, "A", "en")
        join(b, "B", "en-US")
        join(c, "C", "de")  # a marker: its audio comes after anything the engine would have made for B
        speak(a, speech_pcm)
        receive_until(c, "audio")
        got = [m for m in receive_until(b, "transcript") if m["type"] != "participants"]
        assert [m["type"] for m in got] == ["transcript"]
        assert_nothing_pending(b)


def test_untranslatable_pair_gets_notice(client, speech_pcm):
    with client.websocket_connect("/ws/client") as a, client.websocket_connect("/ws/client") as b:
        join(a, "A", "en")
        join(b, "Livia", "la")
        a.receive_json()
        speak(a, speech_pcm)
        got = receive_until(b, "notice")
        assert got[-1]["code"] == "untranslatable" and "cannot translate into Latin" in got[-1]["message"]


def test_text_only_listener_gets_no_audio(client, speech_pcm):
    with (
        client.websocket_connect("/ws/client") as a,
        client.websocket_connect("/ws/client") as b,
        client.websocket_connect("/ws/client") as c,
    ):
        join(a, "A", "en")
        join(b, "B", "de", audio=False)
        join(c, "C", "de")
        speak(a, speech_pcm)
        receive_until(c, "audio")
        got = receive_until(b, "translation")
        assert "audio" not in {m["type"] for m in got}
        assert_nothing_pending(b)


def test_rooms_are_separate(client, speech_pcm):
    with client.websocket_connect("/ws/client") as a, client.websocket_connect("/ws/client") as b:
        join(a, "A", "en", room="one")
        welcome = join(b, "B", "de", room="two")
        assert [p["name"] for p in welcome["participants"]] == ["B"]
        speak(a, speech_pcm)
        mine = receive_until(a, "transcript")[-1]  # A's utterance is done; B, in another room, got none of it
        assert mine["speaker"]["name"] == "A"
        assert_nothing_pending(b)


def test_end_utterance_cuts_push_to_talk(client, speech_pcm):
    with client.websocket_connect("/ws/client") as a:
        join(a, "A", "en")
        for frame in frames(speech_pcm[: len(speech_pcm) // 2]):
            a.send_bytes(frame)
        a.send_text('{"type": "end_utterance"}')
        msg = a.receive_json()
        assert msg["type"] == "transcript" and 1.0 < msg["audio_seconds"] < 2.0


def test_silence_and_noise_never_reach_the_engine(tmp_path, speech_pcm):
    class Recording(FakeEngine):
        def __init__(self):
            super().__init__()
            self.heard = []

        def transcribe(self, utterance):
            if not utterance.revision:  # a finished turn decoded again is not new audio reaching the engine
                self.heard.append(utterance.seconds)
            return super().transcribe(utterance)

    from tests.audio import white_noise

    engine = Recording()
    with (
        # Partials off: their decodes of the speech would count as engine calls too (they only ever see speech).
        BoundedClient(create_app(Settings(data_dir=tmp_path, partials=False), engine=engine)) as c,
        c.websocket_connect("/ws/client") as a,
    ):
        join(a, "A", "en")
        for frame in frames(silence(2) + white_noise(2, 0.05) + white_noise(2, 0.3, seed=1)):
            a.send_bytes(frame)
        a.send_text('{"type": "end_utterance"}')
        speak(a, speech_pcm)  # a marker: real speech after the noise is transcribed, and is the first thing heard
        got = receive_until(a, "transcript")
        assert [m["type"] for m in got] == ["transcript"] and got[0]["audio_seconds"] == round(engine.heard[0], 2)
    assert len(engine.heard) == 1 and engine.heard[0] > 2.0


def test_participants_join_and_leave(client):
    with client.websocket_connect("/ws/client") as a:
        join(a, "A", "en")
        with client.websocket_connect("/ws/client") as b:
            join(b, "B", "de")
            msg = a.receive_json()
            assert (msg["type"], msg["event"], msg["who"]["name"]) == ("participants", "join", "B")
            assert client.get("/metrics").json()["clients"] == 2
        msg = a.receive_json()
        assert (msg["event"], msg["who"]["name"], msg["count"]) == ("leave", "B", 1)


def test_a_message_that_never_comes_fails_the_test(client, monkeypatch):
    monkeypatch.setattr(wsclient, "RECEIVE_TIMEOUT", 0.5)
    with client.websocket_connect("/ws/client") as a:
        join(a, "A", "en")
        started = time.monotonic()
        with pytest.raises(AssertionError, match="nothing received"):
            receive_until(a, "transcript")
        assert time.monotonic() - started < 5


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "code", "close"),
    [
        (b"\x00\x01", "not_joined", 1008),
        ('{"type": "end_utterance"}', "not_joined", 1008),
        ("{oops", "bad_json", 1008),
        ('{"type": "hello"}', "unknown_type", 1008),
        ('{"type": "join", "name": "A", "language": "klingon"}', "unsupported_language", 1008),
        ('{"type": "join", "name": "A", "language": "xx"}', "unsupported_language", 1008),
        ('{"type": "join", "name": "A", "language": "en", "sample_rate": 12345}', "unsupported_sample_rate", 1003),
        ('{"type": "join", "name": "' + "n" * 41 + '", "language": "en"}', "invalid_name", 1008),
    ],
)
def test_bad_first_message(client, first, code, close):
    with client.websocket_connect("/ws/client") as ws:
        ws.send_bytes(first) if isinstance(first, bytes) else ws.send_text(first)
        msg = ws.receive_json()
        assert (msg["type"], msg["code"]) == ("error", code) and msg["message"]
        assert_closed(ws, close)


def test_recoverable_errors_keep_the_session(client, speech_pcm):
    with client.websocket_connect("/ws/client") as a, client.websocket_connect("/ws/client") as b:
        join(a, "A", "en")
        join(b, "B", "de")
        a.receive_json()
        for bad, code in [
            ("{oops", "bad_json"),
            ('{"type": "hello"}', "unknown_type"),
            ('{"type": "join", "name": "A", "language": "en"}', "already_joined"),
            (b"\x00\x01\x02", "bad_audio"),
        ]:
            a.send_bytes(bad) if isinstance(bad, bytes) else a.send_text(bad)
            assert a.receive_json()["code"] == code
        speak(a, speech_pcm)  # the session still works, and B never noticed anything
        got = receive_until(b, "audio")
        assert [m["type"] for m in got] == ["transcript", "translation", "audio"]


def test_oversized_frame_closes_only_that_client(client):
    with client.websocket_connect("/ws/client") as a, client.websocket_connect("/ws/client") as b:
        join(a, "A", "en")
        join(b, "B", "de")
        a.receive_json()
        a.send_bytes(bytes(64_002))
        assert a.receive_json()["code"] == "frame_too_large"
        assert_closed(a, 1009)
        assert b.receive_json()["event"] == "leave"
        assert_nothing_pending(b)


def test_room_and_server_limits(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, max_clients_per_room=1, max_rooms=1), engine=FakeEngine())
    with BoundedClient(app) as c, c.websocket_connect("/ws/client") as a:
        join(a, "A", "en", room="r1")
        for room, code in (("r1", "room_full"), ("r2", "too_many_rooms")):
            with c.websocket_connect("/ws/client") as b:
                b.send_text(json.dumps({"type": "join", "name": "B", "language": "en", "room": room}))
                assert b.receive_json()["code"] == code
                assert_closed(b, 1013)


def test_join_timeout(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, join_timeout_seconds=0.2), engine=FakeEngine())
    with BoundedClient(app) as c, c.websocket_connect("/ws/client") as ws:
        assert ws.receive_json()["code"] == "join_timeout"
        assert_closed(ws, 1008)


def test_engine_failure_is_contained(tmp_path, speech_pcm):
    class Broken(FakeEngine):
        def transcribe(self, utterance):
            raise RuntimeError("model exploded")

    with (
        BoundedClient(create_app(Settings(data_dir=tmp_path), engine=Broken())) as c,
        c.websocket_connect("/ws/client") as a,
    ):
        join(a, "A", "en")
        speak(a, speech_pcm)
        msg = a.receive_json()
        assert (msg["type"], msg["code"]) == ("error", "internal_error")
        assert_nothing_pending(a)


# --- HTTP ---------------------------------------------------------------------------------------


def test_healthz_languages_metrics(client):
    assert client.get("/healthz").json()["engine"]["name"] == "test"
    langs = client.get("/languages").json()["languages"]
    de = next(row for row in langs if row["code"] == "de")
    assert de["name"] == "German" and de["iso639_3"] == "deu" and de["speech_out"]
    m = client.get("/metrics").json()
    assert {"cpu_percent", "memory_mb", "clients", "uptime_seconds", "engine", "rooms", "utterances_processed"} <= set(
        m
    )
    assert set(m["latency_ms"]) == {"transcript", "translation", "audio"}
    for url, headers in (("/metrics?format=prometheus", {}), ("/metrics", {"Accept": "text/plain"})):
        r = client.get(url, headers=headers)
        assert r.headers["content-type"].startswith("text/plain")
        assert "babelfish_latency_seconds_bucket" in r.text and 'babelfish_engine_info{engine="test"' in r.text


def test_audio_flood_is_throttled_not_fatal(tmp_path, speech_pcm):
    settings = Settings(data_dir=tmp_path, max_audio_rate=1.0, audio_burst_seconds=2.0)
    with BoundedClient(create_app(settings, engine=FakeEngine())) as c, c.websocket_connect("/ws/client") as a:
        join(a, "A", "en")
        # 20 s of audio at once, ten times the 2 s burst. The bucket refills by wall-clock time between the frames'
        # arrivals at the server, so a flood only just over the burst (3 s) passed when a loaded machine spread
        # its 150 frames over more than a second; this one is refused unless they take 18 s to arrive.
        for frame in frames(silence(20), ms=1000):
            a.send_bytes(frame)
        msg = a.receive_json()
        assert (msg["type"], msg["code"]) == ("error", "audio_too_fast")
        assert_nothing_pending(a)  # reported once, the session goes on
