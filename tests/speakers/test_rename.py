"""`rename_speaker` through the real app, with the fake (pitch) embedder: no model needed."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.fake import FakeEngine
from babelfish.speakers.backup import backup_dir, backups
from babelfish.speakers.fake import FakeEmbedder, tone
from tests.audio import frames
from tests.speakers.test_conversation import AlwaysSpeech
from tests.voices import pcm16
from tests.wsclient import BoundedClient


def join(ws, name: str, room: str = "r") -> dict:
    ws.send_text(json.dumps({"type": "join", "name": name, "language": "en", "room": room, "audio": False}))
    msg = ws.receive_json()
    assert msg["type"] == "welcome"
    return msg


def say(ws, hz: float, seconds: float = 2.0) -> dict:
    for frame in frames(pcm16(tone(hz, seconds))):
        ws.send_bytes(frame)
    ws.send_text('{"type": "end_utterance"}')
    return next_of(ws, "transcript")


def next_of(ws, kind: str) -> dict:
    while True:
        msg = ws.receive_json()
        if msg["type"] == kind:
            return msg


def app(tmp_path: Path, embedder: FakeEmbedder | None) -> BoundedClient:
    settings = Settings(data_dir=tmp_path, max_name_chars=10)
    return BoundedClient(create_app(settings, engine=FakeEngine(), detector_factory=AlwaysSpeech, embedder=embedder))


def test_rename_reaches_every_room_and_sticks(tmp_path: Path) -> None:
    with app(tmp_path, FakeEmbedder()) as c, c.websocket_connect("/ws/client") as dan, \
            c.websocket_connect("/ws/client") as ann, c.websocket_connect("/ws/client") as far:  # fmt: skip
        join(dan, "Dan")
        join(ann, "Ann")
        join(far, "Far", room="elsewhere")
        first = say(dan, 300)
        assert first["speaker"]["name"] == "Dan" and first["speaker"]["id"].startswith("spk-")
        assert next_of(ann, "transcript")["speaker"] == first["speaker"]
        ann.send_text(json.dumps({"type": "rename_speaker", "id": first["speaker"]["id"], "name": "  Maria  "}))
        renamed = {"type": "speaker_renamed", "speaker": {"id": first["speaker"]["id"], "name": "Maria"}}
        for ws in (dan, ann, far):
            assert next_of(ws, "speaker_renamed") == renamed
        assert say(dan, 310)["speaker"] == renamed["speaker"]  # same voice, new name
        assert say(dan, 1000)["speaker"]["name"] == "Speaker 2 (via Dan)"
        ann.send_text(json.dumps({"type": "rename_speaker", "id": "spk-00000000", "name": "X"}))
        assert next_of(ann, "error")["code"] == "unknown_speaker"
        ann.send_text(json.dumps({"type": "rename_speaker", "id": first["speaker"]["id"], "name": "A" * 11}))
        assert next_of(ann, "error")["code"] == "invalid_name"
        ann.send_text('{"type": "ping", "id": 1}')
        assert next_of(ann, "pong")["id"] == 1  # still connected
    with app(tmp_path, FakeEmbedder()) as c, c.websocket_connect("/ws/client") as again:
        join(again, "Tablet")
        assert say(again, 300)["speaker"] == renamed["speaker"]  # the name is on disk


def test_recognition_off_labels_the_client_and_stores_nothing(tmp_path: Path) -> None:
    with app(tmp_path, None) as c, c.websocket_connect("/ws/client") as dan:
        me = join(dan, "Dan")
        assert say(dan, 300)["speaker"] == {"id": me["client_id"], "name": "Dan"}
        dan.send_text(json.dumps({"type": "rename_speaker", "id": me["client_id"], "name": "X"}))
        assert next_of(dan, "error")["code"] == "unknown_speaker"
    assert not (tmp_path / "speakers").exists()


def test_a_failing_store_labels_with_the_client_and_registers_nothing(tmp_path: Path) -> None:
    with app(tmp_path, FakeEmbedder()) as c, c.websocket_connect("/ws/client") as dan:
        me = join(dan, "Dan")
        registry = c.app.state.hub.speakers.registry

        def broken(*_: object) -> None:
            raise OSError(28, "No space left on device")

        registry._store.put = broken  # the disk is full from now on
        assert say(dan, 300)["speaker"] == {"id": me["client_id"], "name": "Dan"}
        assert registry.speakers() == []
        dan.send_text('{"type": "ping", "id": 2}')
        assert next_of(dan, "pong")["id"] == 2


def test_a_failing_store_refuses_a_rename_and_keeps_the_connection(tmp_path: Path) -> None:
    with app(tmp_path, FakeEmbedder()) as c, c.websocket_connect("/ws/client") as dan:
        join(dan, "Dan")
        first = say(dan, 300)
        store = c.app.state.hub.speakers.registry._store

        def locked(*_: object) -> bool:
            raise sqlite3.OperationalError("database is locked")  # e.g. a long `speakers import` holds the lock

        store.rename = locked
        dan.send_text(json.dumps({"type": "rename_speaker", "id": first["speaker"]["id"], "name": "Maria"}))
        assert next_of(dan, "error")["code"] == "internal_error"
        dan.send_text('{"type": "ping", "id": 3}')
        assert next_of(dan, "pong")["id"] == 3  # still connected
        assert say(dan, 300)["speaker"] == first["speaker"]  # the name did not change


def test_automatic_backups_rotate_and_hold_the_known_voices(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, speaker_backups=2, speaker_backup_hours=0.5 / 3600)  # every 0.5 s
    folder = backup_dir(tmp_path)
    with BoundedClient(create_app(settings, engine=FakeEngine(), detector_factory=AlwaysSpeech,
                                  embedder=FakeEmbedder())) as c, c.websocket_connect("/ws/client") as dan:  # fmt: skip
        join(dan, "Dan")
        spoken = say(dan, 300)["speaker"]
        deadline = time.monotonic() + 30
        data: dict = {}
        while spoken["id"] not in data.get("speakers", {}) and time.monotonic() < deadline:
            time.sleep(0.1)
            if found := backups(folder):
                data = json.loads(found[-1].read_text())
        assert data["speakers"][spoken["id"]]["name"] == "Dan" and len(data["known_embeddings"][spoken["id"]]) == 64
        # Rotated: once a third backup was written, only the newest speaker_backups are kept. Watched rather than
        # slept on (a loaded machine writes fewer backups in a given time).
        seen: set[str] = set()
        while time.monotonic() < deadline:
            current = backups(folder)
            seen |= {p.name for p in current}
            if len(seen) >= 3 and len(current) == 2:
                break
            time.sleep(0.1)
        assert len(seen) >= 3 and len(backups(folder)) == 2, (sorted(seen), backups(folder))
        assert all(p.stat().st_mode & 0o077 == 0 for p in backups(folder))  # biometric data: owner only
