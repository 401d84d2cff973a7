"""Shared fixtures: real speech clips, silence and noise, and an app with the test engine."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub lookup costs ~23 s offline; tests never need one
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
# Voice recognition loads a model at start-up: off for every app and server subprocess a test starts, unless the
# test turns it on (Settings(speaker_embedder=...), create_app(embedder=...) or --speaker-embedder).
os.environ.setdefault("BABELFISH_SPEAKER_EMBEDDER", "off")
# Streaming partials add messages to every stream of speech: off unless a test turns them on (Settings(partials=True)
# or --partials), so the tests of exact result sequences stay exact.
os.environ.setdefault("BABELFISH_PARTIALS", "false")

from collections.abc import Iterator
from pathlib import Path

import pytest

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.fake import FakeEngine
from tests.audio import LIBRIVOX, SPEECH_CLIP, librivox_transcripts, pcm16, read_wav
from tests.wsclient import BoundedClient


@pytest.fixture(scope="session")
def librivox() -> dict[str, tuple[Path, str]]:
    """LibriVox clips (16 kHz mono) and their reference transcripts."""
    return {name: (LIBRIVOX / f"{name}.wav", text) for name, text in librivox_transcripts().items()}


@pytest.fixture(scope="session")
def speech_pcm() -> bytes:
    """About 3 s of real human English speech, 16 kHz PCM16."""
    return pcm16(read_wav(SPEECH_CLIP))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, engine="test")


@pytest.fixture
def client(settings: Settings) -> Iterator[BoundedClient]:
    with BoundedClient(create_app(settings, engine=FakeEngine())) as c:
        yield c
