"""Tell the voice at the phone from a crowd that never stops, by its level over the phone's own background.

Silero hears a crowd (a café, a hall, a television) as speech: on an open microphone there it rates most windows of
the crowd alone as voice, so the silence that ends a turn never comes and turns run on to the utterance cap. The
voice at the phone is louder than the crowd around it, so in a crowd a window counts as voice only when it is also
`margin_db` over the phone's background: the 20th percentile of its window levels over the last 10 s. Once a turn has
begun, half the margin keeps it going (as Silero's own threshold has hysteresis): a voice's quieter syllables fall
under the full margin, and at 5-10 dB SNR it cut read speech at every other word.

Whether the background is a crowd is decided from the same history: its quietest tenth is what the phone hears when
its speaker is quiet. When most of those windows are ones Silero calls voice, and their level is steady (the 10th and
20th percentiles within 4.5 dB), that is a crowd; in a quiet room, or steady noise Silero does not take for speech,
they are not, and the gate changes nothing. (The windows near the floor would not do: someone reading on with short
pauses has most of those voiced too, the quiet ends of words. Steadiness keeps a history of speech alone, as
push-to-talk or a phone spoken into at once gives, from counting as a crowd: a crowd's bottom spans 1-4 dB, one
voice's 5-7.)
Measured in docs/benchmarks.md, "A crowd that never stops".
"""

from __future__ import annotations

import numpy as np

HISTORY_SECONDS = 10.0
FLOOR_QUANTILE = 0.2
QUIET_QUANTILE = 0.1  # the quietest tenth: the background alone, unless a crowd never lets up
CROWD_SHARE = 0.5  # of the quietest tenth voiced: a crowd
STEADY_DB = 4.5  # a crowd's quietest tenth to its floor
MIN_HISTORY_SECONDS = 3.0  # a floor from less is a guess: the gate stays off until then
SILENT_DB = -120.0  # the level of digital silence, which has none


class BackgroundGate:
    """One stream's background, fed every window in order (one thread at a time, like the Segmenter)."""

    def __init__(self, margin_db: float, *, window_seconds: float, voiced: float) -> None:
        """`margin_db`: how far over the floor a window must be in a crowd (0: the gate is off); `window_seconds`:
        one window's length; `voiced`: the speech probability Silero's windows count as voice from."""
        self._margin = margin_db
        self._voiced = voiced
        size = max(1, round(HISTORY_SECONDS / window_seconds))
        self._levels = np.full(size, SILENT_DB, np.float64)
        self._probs = np.zeros(size, np.float32)
        self._n = 0  # windows seen, so far
        self._min = max(1, round(MIN_HISTORY_SECONDS / window_seconds))
        self.floor_db = SILENT_DB
        self.crowd = False  # whether the background is a crowd now (the gate is on)

    def admit(self, rms: float, prob: float, speaking: bool) -> bool:
        """Add one window (its RMS, full scale 1; Silero's probability) and say whether it may count as voice: always
        outside a crowd; in one, only when it is `margin_db` over the floor (half that while `speaking`)."""
        if self._margin <= 0:
            return True
        level = 20 * np.log10(rms) if rms > 0 else SILENT_DB
        i = self._n % len(self._levels)
        self._levels[i], self._probs[i] = max(level, SILENT_DB), prob
        self._n += 1
        if self._n < self._min:
            return True
        seen = min(self._n, len(self._levels))
        levels, probs = self._levels[:seen], self._probs[:seen]
        quiet_k, floor_k = int(QUIET_QUANTILE * (seen - 1)), int(FLOOR_QUANTILE * (seen - 1))
        ranked = np.partition(levels, (quiet_k, floor_k))
        self.floor_db = float(ranked[floor_k])
        quiet = levels <= ranked[quiet_k]
        voiced = np.count_nonzero(probs[quiet] >= self._voiced) > CROWD_SHARE * np.count_nonzero(quiet)
        self.crowd = bool(voiced and self.floor_db - ranked[quiet_k] <= STEADY_DB)
        return not self.crowd or level >= self.floor_db + (self._margin / 2 if speaking else self._margin)
