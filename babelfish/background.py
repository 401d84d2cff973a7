"""Tell the voice at the phone from a crowd that never stops, by its level over the phone's own background.

Silero hears a crowd (a café, a hall, a television) as speech: on an open microphone there it rates most windows of
the crowd alone as voice, so the silence that ends a turn never comes and turns run on to the utterance cap. The
voice at the phone is louder than the crowd around it, so in a crowd a window counts as voice only when it is also
`margin_db` over the phone's background, its floor: the 20th percentile of its window levels over the last 10 s. Once
a turn has begun, 3 dB less keeps it going (as Silero's own threshold has hysteresis): a voice's quieter syllables fall
under the full margin, and at 5-10 dB SNR that cut read speech at every other word; with 4 dB less the crowd's own
peaks kept turns going twice as long after they ended.

The gate is on when two things hold:
- The background is voiced: the last stretches of a second in which nobody spoke near the phone (their mean power
  within 3 dB of the floor, no window `margin_db` over it) were mostly windows Silero calls voice. The first judgement
  (at 3 s) looks for them over all it has heard, so a phone that comes on in a crowd knows it then. A quiet room, or
  steady noise (a fan, a car), is not voiced; while someone talks on without such a second, the last verdict holds.
  (The quietest windows of the history would not do: read speech at 0-5 dB SNR in steady noise has voiced ones too.)
- The phone's own speaker stands out over it: the loudest 1% of the last 10 s at least `margin_db` + 6 dB over the
  floor. Where the speaker is not that much louder than the background, the gate could not tell them apart and would
  cut their words; it stays off, and turns end late rather than lose words. A speaker who stood out clearly over the
  crowd (4 dB more again) is remembered for a minute after their words leave the last 10 s: in a conversation of
  several, each listens a while.

In a crowd, a segment whose loudest window is not `margin_db` + 4 dB over the floor was opened by the crowd alone
(its peaks), and is dropped like a burst too short to be speech; one that begins within a second of a segment that
did stand out needs only `margin_db` + 2 dB (a quieter clause of the same speaker). Push-to-talk is no exception.
What the segmenter does with the verdicts (a segment opened before the gate knew the room judged again, the crowd's
tail left out of a turn) is in babelfish/segmenter.py.
Measured in docs/benchmarks.md, "A crowd that never stops".
"""

from __future__ import annotations

import math

import numpy as np

HISTORY_SECONDS = 10.0
FLOOR_QUANTILE = 0.2
QUIET_SECOND = 1.0  # a stretch this long whose mean level is near the floor: nobody at the phone spoke in it
NEAR_FLOOR_DB = 3.0  # "near": the mean power of such a stretch within this of the floor
CROWD_SHARE = 0.5  # of the windows of those stretches voiced: a crowd
PEAK_QUANTILE = 0.99  # the phone's loudest windows: its own speaker, when they spoke in the last 10 s
STANDS_OUT_DB = 6.0  # how far those must be over the margin for the gate to tell the speaker from the background
CLEARLY_DB = 4.0  # a speaker that far over that again is remembered ...
STANDS_OUT_MEMORY_SECONDS = 60.0  # ... this long: in a conversation of several, one speaker may be quiet a while
SEGMENT_PEAK_DB = 4.0  # in a crowd, how far a segment's loudest window must be over the margin to be the speaker's
GOING_ON_PEAK_DB = 2.0  # the same for a segment that follows right on one that stood out
KEEP_HYSTERESIS_DB = 3.0  # once a turn has begun, this much less keeps it going
UPDATE_EVERY = 4  # windows (128 ms) between judgements: the room changes slower, and each costs ~15 us
MIN_HISTORY_SECONDS = 3.0  # a floor from less is a guess: the gate stays off until then
SILENT_DB = -120.0  # the level of digital silence, which has none
# `known_floor` (for weighing one phone's copy of a voice against another's) needs this much sound that is not digital
# silence (the page's zeros while it plays a translation never count).
HEARD_FLOOR_SECONDS = 1.0
# It is taken from the windows Silero calls unvoiced once there are this many of them: a phone that talks within its
# first second has heard mostly its own speaker, and a floor from all it heard lay high, so that its first turn was
# kept from a farther phone (bench_echoes part 4, (e)). Fewer (people talking without pauses): from all it heard.
QUIET_FLOOR_SECONDS = 0.25


def level_db(rms: np.ndarray) -> np.ndarray:
    """Windows' levels in dBFS from their RMS (full scale 1); digital silence is SILENT_DB."""
    return 20 * np.log10(np.maximum(rms, 10 ** (SILENT_DB / 20)))


class BackgroundGate:
    """One stream's background, fed every window in order (one thread at a time, like the Segmenter)."""

    def __init__(self, margin_db: float, *, window_seconds: float, voiced: float) -> None:
        """`margin_db`: how far over the floor a window must be in a crowd (0: the gate is off); `window_seconds`:
        one window's length; `voiced`: the speech probability Silero's windows count as voice from."""
        self._margin = margin_db
        self._voiced = voiced
        size = max(1, round(HISTORY_SECONDS / window_seconds))
        self._levels = np.full(size, SILENT_DB, np.float64)
        self._power = np.zeros(size, np.float64)  # the same, as mean squares
        self._probs = np.zeros(size, np.float32)
        self._quiet = np.zeros(size, bool)  # the window lay in a quiet second
        self._n = 0  # windows seen, so far
        self._min = max(1, round(MIN_HISTORY_SECONDS / window_seconds))
        self._second = max(1, round(QUIET_SECOND / window_seconds))
        self.floor_db = SILENT_DB
        self._heard_min = max(1, round(HEARD_FLOOR_SECONDS / window_seconds))
        self._quiet_min = max(1, round(QUIET_FLOOR_SECONDS / window_seconds))
        self._heard_floor: float | None = None
        self._voiced_background = False  # the last quiet seconds were mostly ones Silero calls voice
        self._stood_out_at = -(10**9)  # window count when the speaker last stood out over the floor
        self._stands_out_memory = round(STANDS_OUT_MEMORY_SECONDS / window_seconds)
        self.crowd = False  # whether the background is a crowd now (the gate is on)

    def add(self, level: float, prob: float) -> None:
        """Add one window: its level (dBFS) and Silero's probability."""
        size = len(self._levels)
        i = self._n % size
        power = 10 ** (level / 10) if level > SILENT_DB else 0.0  # digital silence (a muted phone) is no quiet second
        self._levels[i], self._power[i], self._probs[i], self._quiet[i] = level, power, prob, False
        self._n += 1
        if self._n % UPDATE_EVERY == 0:
            self._heard_floor = self._floor_of_sound()
        if self._margin > 0 and self._n >= self._min and (self._n - self._min) % UPDATE_EVERY == 0:
            self._judge(i)

    def allows(self, level: float, speaking: bool) -> bool:
        """Whether a window `level` (dBFS) loud may count as voice: always outside a crowd; in one, only when it is
        `margin_db` over the floor (3 dB less while `speaking`)."""
        return not self.crowd or level >= self.bar(speaking)

    @property
    def voiced_background(self) -> bool:
        """Whether the background is a crowd (voiced), whether or not the phone's speaker stands out over it so that
        the gate can be on. Free to ask."""
        return self._voiced_background

    def bar(self, speaking: bool) -> float:
        """In a crowd, the level (dBFS) a window must reach to count as voice; 3 dB less `speaking` (a turn goes on)."""
        return self.floor_db + self._margin - (KEEP_HYSTERESIS_DB if speaking else 0.0)

    def over(self, level: float) -> float:
        """How far a window `level` (dBFS) loud is over the floor (dB); infinite while the gate does not know the
        room."""
        return level - self.floor_db if self._margin > 0 and self._n >= self._min else math.inf

    @property
    def known_floor(self) -> float | None:
        """The floor (dBFS) of what the phone heard over the last 10 s, digital silence left out, once that was 1 s
        (gate on or off); else None. Taken from the windows Silero calls unvoiced where there are a quarter second of
        them: what the phone hears when nobody near it speaks, a level that every phone's speech can be weighed
        against whatever its gain (babelfish/echoes.py, `quality`). Where people talk on without pauses it is a
        quantile of all it heard instead, their speech included, and the room's echo of it counts again."""
        return self._heard_floor

    def _floor_of_sound(self) -> float | None:
        n = min(self._n, len(self._levels))
        seen, probs = self._levels[:n], self._probs[:n]
        sound = seen > SILENT_DB  # the page sends zeros while it plays a translation: those are no floor
        if sound.sum() < self._heard_min:
            return None
        unvoiced = seen[sound & (probs < self._voiced)]
        heard = unvoiced if len(unvoiced) >= self._quiet_min else seen[sound]
        k = int(FLOOR_QUANTILE * (len(heard) - 1))
        return float(np.partition(heard, k)[k])

    def _judge(self, i: int) -> None:
        """The floor, the quiet seconds and the verdict, from the history up to window slot `i`."""
        size = len(self._levels)
        seen = min(self._n, size)
        k, top = int(FLOOR_QUANTILE * (seen - 1)), int(PEAK_QUANTILE * (seen - 1))
        ranked = np.partition(self._levels[:seen], (k, top))
        self.floor_db = float(ranked[k])
        # The first judgement looks back over all the history it has, step by step as later ones do: a phone that
        # opens in a crowd learns the room from its first seconds, not only from the next quiet one.
        first = self._n == self._min
        for end in range(i, self._second - 2 if first else i - 1, -UPDATE_EVERY):
            self._mark_quiet(np.arange(end - self._second + 1, end + 1) % size)
        quiet = self._quiet[:seen]
        if quiet.sum() >= self._second:  # else the last judgement holds: someone has talked all along
            self._voiced_background = bool(
                np.count_nonzero(self._probs[:seen][quiet] >= self._voiced) > CROWD_SHARE * quiet.sum()
            )
        stands_out = ranked[top] >= self.floor_db + self._margin + STANDS_OUT_DB
        if self._voiced_background and ranked[top] >= self.floor_db + self._margin + STANDS_OUT_DB + CLEARLY_DB:
            self._stood_out_at = self._n  # over the crowd, not over a quiet room the crowd has since filled
        recalled = self._n - self._stood_out_at <= self._stands_out_memory
        self.crowd = self._voiced_background and (stands_out or recalled)

    def _mark_quiet(self, last: np.ndarray) -> None:
        """Mark the window slots `last` (a second) quiet if nobody spoke near the phone in them."""
        mean_power = float(np.mean(self._power[last]))
        if (
            mean_power > 0
            and 10 * np.log10(mean_power) < self.floor_db + NEAR_FLOOR_DB
            and self._levels[last].max() < self.floor_db + self._margin
        ):
            self._quiet[last] = True

    def stands_out(self, peak_db: float, going_on: bool = False) -> bool:
        """Whether a segment whose loudest window was `peak_db` over the floor can be the phone's speaker in a crowd:
        a segment the crowd alone opened peaks lower (measured: 9 dB at the median, 12 at the 95th percentile, against
        15.5 dB at the 5th percentile for the speaker's). `going_on`: it follows right on one of the speaker's (a
        quieter clause of theirs, or the crowd just after them), and a lower bar applies."""
        return peak_db >= self._margin + (GOING_ON_PEAK_DB if going_on else SEGMENT_PEAK_DB)
