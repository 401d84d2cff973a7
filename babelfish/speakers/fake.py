"""A fake embedder for tests: the "voice" of an utterance is the pitch of its strongest tone.

Tones within 50 Hz of each other are one voice (cosine 1); tones further apart are different voices
(orthogonal vectors). Deterministic and instant, so registry and protocol tests need no model.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000


class FakeEmbedder:
    name = "fake-pitch"
    dim = 64

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, audio: np.ndarray) -> np.ndarray:
        self.calls += 1
        spectrum = np.abs(np.fft.rfft(np.asarray(audio, dtype=np.float64)))
        pitch = float(np.argmax(spectrum)) * SAMPLE_RATE / max(len(audio), 1)
        vector = np.zeros(self.dim, dtype=np.float32)
        vector[round(pitch / 100) % self.dim] = 1.0
        return vector


def tone(hz: float, seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * hz * t) * level).astype(np.float32)
