"""Real human voices installed by pocketsphinx-testdata, grouped by speaker (for tests and bench_speakers_id).

- `librivox`: one LibriVox reader (five clips of Sense and Sensibility, chapter 1: a single reader);
- `an4`: one speaker of CMU's AN4 census database (the `cards` clips);
- `dhd`: David Huggins-Daines, who recorded pocketsphinx's own test clips (goforward, numbers, something) and the
  TIDIGITS-style `dhd.*` clip (his initials; the four clips embed alike).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.audio import pcm16, read_wav

__all__ = ["RATE", "pcm16", "voices"]
DATA = Path("/usr/share/pocketsphinx/test/data")
RATE = 16_000


def _raw(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<i2").astype(np.float32) / 32768


def voices() -> dict[str, list[np.ndarray]]:
    """speaker -> clips (16 kHz mono float32). Fails loudly when the Debian package is missing."""
    found = {
        "librivox": [read_wav(p) for p in sorted((DATA / "librivox").glob("*.wav"))],
        "an4": [read_wav(p) for p in sorted((DATA / "cards").glob("*.wav"))],
        "dhd": [_raw(DATA / n) for n in ("goforward.raw", "numbers.raw", "something.raw", "tidigits/dhd.2934z.raw")],
    }
    assert all(found.values()), "install pocketsphinx-testdata: bash scripts/setup.sh --test"
    return found
