"""Real human voices installed by pocketsphinx-testdata, grouped by speaker (for tests and bench_speakers_id).

- `librivox`: one LibriVox reader (five clips of Sense and Sensibility, chapter 1: a single reader);
- `an4`: one speaker of CMU's AN4 census database (the `cards` clips);
- `dhd`: David Huggins-Daines, who recorded pocketsphinx's own test clips (goforward, numbers, something) and the
  TIDIGITS-style `dhd.*` clip (his initials; the four clips embed alike).
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

DATA = Path("/usr/share/pocketsphinx/test/data")
RATE = 16_000


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2), path
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


def _raw(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<i2").astype(np.float32) / 32768


def voices() -> dict[str, list[np.ndarray]]:
    """speaker -> clips (16 kHz mono float32). Fails loudly when the Debian package is missing."""
    found = {
        "librivox": [_wav(p) for p in sorted((DATA / "librivox").glob("*.wav"))],
        "an4": [_wav(p) for p in sorted((DATA / "cards").glob("*.wav"))],
        "dhd": [_raw(DATA / n) for n in ("goforward.raw", "numbers.raw", "something.raw", "tidigits/dhd.2934z.raw")],
    }
    assert all(found.values()), "install pocketsphinx-testdata: bash scripts/setup.sh --test"
    return found


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
