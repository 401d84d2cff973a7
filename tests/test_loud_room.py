"""A phone that hears a crowd is told once, through the real app, that push-to-talk works better there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.fake import FakeEngine
from tests.audio import frames, pcm16
from tests.test_background import Loud as Crowd  # Silero as a crowd makes it: all audible is voice
from tests.wsclient import BoundedClient

RATE = 16_000


class Fan:
    """Silero in steady noise: only the voice near the phone (louder than -20 dBFS here) is speech."""

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        rms = np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=1))
        return np.where(rms > 0.1, 0.95, 0.05).astype(np.float32)

    def reset(self) -> None:
        pass


def noise(seconds: float, dbfs: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * 10 ** (dbfs / 20)).astype(np.float32)


def join(ws: Any) -> None:
    ws.send_text(json.dumps({"type": "join", "name": "Ana", "language": "en", "room": "cafe"}))
    assert ws.receive_json()["type"] == "welcome"


def say(ws: Any, background: np.ndarray) -> list[dict]:
    """Stream `background`, then a turn louder than it, and end the utterance: what came back up to the turn's
    transcript (the VAD has cut everything sent by then)."""
    turn = noise(1.0, -10, 9)
    for frame in frames(pcm16(np.concatenate([background, background[:RATE] + turn]))):
        ws.send_bytes(frame)
    ws.send_text('{"type": "end_utterance"}')
    seen: list[dict] = []
    while not (seen and seen[-1]["type"] == "transcript" and has_turn(seen[-1]["text"])):
        msg = ws.receive_json()
        if msg["type"] == "audio":
            ws.receive_bytes()
        seen.append(msg)
    return seen


def has_turn(transcript: str) -> bool:
    """Whether the test engine's transcript is of audio with the turn in it (the crowd alone is -30 dBFS)."""
    return int(transcript.split()[2].removesuffix("dBFS")) > -20


def loud_notices(seen: list[dict]) -> list[dict]:
    return [m for m in seen if m["type"] == "notice" and m["code"] == "loud_room"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # The tests stream faster than real time: a VAD executor that falls behind must not drop their frames.
    return Settings(data_dir=tmp_path, engine="test", speaker_embedder="off", audio_burst_seconds=120,
                    vad_backlog_seconds=120)  # fmt: skip


@pytest.fixture
def cafe(settings: Settings) -> Iterator[BoundedClient]:
    with BoundedClient(create_app(settings, engine=FakeEngine(), detector_factory=Crowd, embedder=None)) as c:
        yield c


@pytest.fixture
def fan(settings: Settings) -> Iterator[BoundedClient]:
    with BoundedClient(create_app(settings, engine=FakeEngine(), detector_factory=Fan, embedder=None)) as c:
        yield c


def test_a_silent_phone_in_a_crowd_is_told_before_its_speaker_speaks(cafe: BoundedClient) -> None:
    """The crowd alone: the gate cannot be on (nobody stands out over it), the offer comes all the same."""
    with cafe.websocket_connect("/ws/client") as ws:
        join(ws)
        for frame in frames(pcm16(noise(6.0, -30, 1))):
            ws.send_bytes(frame)
        first = ws.receive_json()  # bounded: fails after RECEIVE_TIMEOUT if nothing comes
        assert first["type"] == "notice" and first["code"] == "loud_room", first
        assert "push-to-talk" in first["message"].lower()


def test_a_phone_in_a_crowd_is_told_once_a_connection(cafe: BoundedClient) -> None:
    with cafe.websocket_connect("/ws/client") as ws:
        join(ws)
        seen = say(ws, noise(8.0, -30, 1)) + say(ws, noise(8.0, -30, 2))
    assert len(loud_notices(seen)) == 1, [m["type"] for m in seen]


def test_steady_noise_is_no_crowd(fan: BoundedClient) -> None:
    with fan.websocket_connect("/ws/client") as ws:
        join(ws)
        seen = say(ws, noise(12.0, -30, 1))
    assert [m for m in seen if m["type"] == "notice"] == []
