"""Where the phone's own speaker is, inside a segment a crowd surrounds: two searches over its windows.

The crowd gate (babelfish/background.py) judges each window by its level over the phone's background. The segmenter
(babelfish/segmenter.py) acts on those verdicts as windows come, and twice it has to look back over a segment:
- `onset`: a segment the crowd opened before the gate knew the room is judged again when the gate turns on; the
  speaker's words begin at the first run of windows that is theirs, and the crowd before is dropped.
- `voice_end`: once a turn has begun, windows over the gate's lower "keep" bar keep it going, and the crowd's own peaks
  reach that bar often enough to hold a short reply open a second or more after it ended; Whisper makes words of
  that. The voice ends at the speaker's last window over the full bar, with the soft windows just after it.
Both take a segment's windows as arrays (Silero's probabilities, the gate's, the levels), so they are tested alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from babelfish.background import BackgroundGate

# A turn's voice runs on through gaps this short (windows) after the speaker's last loud window, as soft syllables end
# a sentence; after a longer gap, the crowd's own peaks took over. The same holds before the first loud window of a
# segment judged again.
TAIL_GAP_WINDOWS = 2
# A segment judged again begins with the first run of windows over the margin that is the speaker's: one standing out
# over the crowd, or this many (the crowd's own peaks over the margin are 1% of its windows, and come alone).
SPEAKER_RUN_WINDOWS = 5


def onset(
    probs: Sequence[float], levels: Sequence[float], gate: BackgroundGate, threshold: float, run_gap: int
) -> int | None:
    """Where the speaker's words begin among a segment's windows (Silero's `probs`, `levels` in dBFS) judged again by
    `gate`, or None if nowhere. Windows that would open a segment (`threshold`) and are over the margin, `run_gap`
    windows apart at most, run together; the first run that is the speaker's (one of its windows stands out over the
    crowd as theirs do, or it has SPEAKER_RUN_WINDOWS of them) begins them, with the softer voiced windows (over the
    lower bar) just before it."""
    pairs = enumerate(zip(probs, levels, strict=True))
    opens = [k for k, (p, lv) in pairs if p >= threshold and gate.allows(lv, False)]
    runs: list[list[int]] = []
    for k in opens:
        if runs and k - runs[-1][-1] <= run_gap:
            runs[-1].append(k)
        else:
            runs.append([k])
    loud = [gate.stands_out(gate.over(level)) for level in levels]
    theirs = [r for r in runs if len(r) >= SPEAKER_RUN_WINDOWS or any(loud[j] for j in r)]
    if not theirs:
        return None
    first = theirs[0][0]
    for k in range(first - 1, max(-1, first - TAIL_GAP_WINDOWS - 2), -1):
        if probs[k] >= threshold and gate.allows(levels[k], True):
            first = k
    return first


def voice_end(heard: np.ndarray, levels: np.ndarray, bar: float, voiced: float, silence: int) -> int | None:
    """The window where the speaker's voice ended in a turn (`heard`: the probabilities as the gate let them count;
    `levels` in dBFS), when more than `silence` windows of the crowd followed it (else None): the last window counted
    as voice (`voiced`) and over the full `bar`, then the voiced windows after it through gaps of TAIL_GAP_WINDOWS at
    most (a sentence's soft last syllables are the speaker's)."""
    is_voice = heard >= voiced
    strong = np.flatnonzero(is_voice & (levels >= bar))
    if not len(strong):
        return None
    last = int(strong[-1])
    for k in range(last + 1, len(is_voice)):
        if k - last > TAIL_GAP_WINDOWS + 1:
            break
        if is_voice[k]:
            last = k
    return last if last + 1 + silence < len(is_voice) else None
