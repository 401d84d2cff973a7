"""Speaker labels through the real app: real voices, one client, two people taking turns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.fake import FakeEngine
from babelfish.speakers.embedder import ResemblyzerEmbedder
from babelfish.store.sqlite import SqliteStore, database_path
from tests.audio import frames
from tests.voices import pcm16, voices
from tests.wsclient import BoundedClient


class AlwaysSpeech:
    """A VAD that hears speech everywhere: utterances end only at end_utterance, one per clip."""

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        return np.ones(len(windows), np.float32)

    def reset(self) -> None:
        pass


@pytest.fixture(scope="module")
def embedder() -> ResemblyzerEmbedder:
    return ResemblyzerEmbedder()


@pytest.fixture
def app_client(tmp_path: Path, embedder: ResemblyzerEmbedder) -> Iterator[BoundedClient]:
    settings = Settings(data_dir=tmp_path, speaker_embedder="resemblyzer")
    app = create_app(settings, engine=FakeEngine(), detector_factory=AlwaysSpeech, embedder=embedder)
    with BoundedClient(app) as c:
        yield c


def say(ws, audio) -> dict:
    for frame in frames(pcm16(audio)):
        ws.send_bytes(frame)
    ws.send_text('{"type": "end_utterance"}')
    while True:
        msg = ws.receive_json()
        if msg["type"] == "audio":
            ws.receive_bytes()
        if msg["type"] == "transcript":
            return msg


def test_two_people_alternating_through_one_client_get_two_labels(app_client: BoundedClient, tmp_path: Path) -> None:
    v = voices()
    turns = [("reader", v["librivox"][0]), ("dhd", v["dhd"][1]), ("reader", v["librivox"][2]),
             ("dhd", v["dhd"][2]), ("reader", v["librivox"][3]), ("dhd", v["dhd"][0])]  # fmt: skip
    with app_client.websocket_connect("/ws/client") as ws, app_client.websocket_connect("/ws/client") as listener:
        ws.send_text(json.dumps({"type": "join", "name": "Table phone", "language": "en", "room": "r"}))
        assert ws.receive_json()["type"] == "welcome"
        listener.send_text(json.dumps({"type": "join", "name": "L", "language": "de", "room": "r", "audio": False}))
        assert listener.receive_json()["type"] == "welcome"
        ws.receive_json()  # the listener's arrival
        labels = {who: set() for who, _ in turns}
        for who, clip in turns:
            labels[who].add((msg := say(ws, clip))["speaker"]["id"])
            seen = [listener.receive_json() for _ in range(2)]  # transcript and translation, same label
            assert {m["speaker"]["id"] for m in seen} == {msg["speaker"]["id"]}
        short = say(ws, v["dhd"][1][:16000])  # 1 s: too short to tell, so it keeps the last speaker
        assert short["speaker"]["id"] in labels["dhd"]
    assert len(labels["reader"]) == 1 and len(labels["dhd"]) == 1 and labels["reader"] != labels["dhd"]
    store = SqliteStore(database_path(tmp_path))
    names = {r.id: r.name for r in store.speakers()}
    store.close()
    [reader], [dhd] = labels["reader"], labels["dhd"]
    assert names == {reader: "Table phone", dhd: "Speaker 2 (via Table phone)"}
