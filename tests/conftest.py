"""Shared fixtures: real speech clips, silence and noise, and an app with the test engine."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub lookup costs ~23 s offline; tests never need one
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.fake import FakeEngine

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def read_pcm(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        return w.readframes(w.getnframes())


@pytest.fixture(scope="session")
def librivox() -> dict[str, tuple[Path, str]]:
    """LibriVox clips (16 kHz mono) and their reference transcripts."""
    refs = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, ident = line.rpartition("(")
        refs[ident.strip(" )")] = text.replace("<s>", "").replace("</s>", "").strip()
    return {k: (LIBRIVOX / f"{k}.wav", v) for k, v in refs.items()}


@pytest.fixture(scope="session")
def speech_pcm(librivox: dict[str, tuple[Path, str]]) -> bytes:
    """About 3 s of real human English speech, 16 kHz PCM16."""
    return read_pcm(librivox["sense_and_sensibility_01_austen_64kb-0880"][0])


def silence(seconds: float, rate: int = 16000) -> bytes:
    return bytes(2 * int(seconds * rate))


def white_noise(seconds: float, level: float = 0.1, rate: int = 16000, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * rate)) * level * 32767).clip(-32768, 32767).astype("<i2").tobytes()


def frames(pcm: bytes, ms: int = 20, rate: int = 16000) -> Iterator[bytes]:
    step = rate * ms // 1000 * 2
    for i in range(0, len(pcm), step):
        yield pcm[i : i + step]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, engine="test")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=FakeEngine())) as c:
        yield c
