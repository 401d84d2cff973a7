"""Where the speaker's words begin and end in a segment a crowd surrounds, on made-up windows (no model)."""

import numpy as np

from babelfish.background import BackgroundGate
from babelfish.voice_span import SPEAKER_RUN_WINDOWS, TAIL_GAP_WINDOWS, onset, voice_end

WINDOW_S = 0.032
SECOND = round(1 / WINDOW_S)


def in_a_cafe() -> BackgroundGate:
    """A gate that knows the room: a crowd at -30 dBFS Silero calls voice, and a speaker at -12 dBFS over it."""
    g = BackgroundGate(8.0, window_seconds=WINDOW_S, voiced=0.35)
    rng = np.random.default_rng(1)
    for _ in range(3):
        for db in rng.uniform(-33, -27, 3 * SECOND):
            g.add(db, 0.9)
        for db in rng.uniform(-16, -8, 25):
            g.add(db, 0.99)
    for db in rng.uniform(-33, -27, 45):
        g.add(db, 0.9)
    assert g.crowd and -32 <= g.floor_db <= -28
    return g


def test_the_words_begin_with_the_speakers_run_not_a_crowd_peak_before_it():
    g = in_a_cafe()
    crowd, peak, voice = g.floor_db + 2, g.floor_db + 10, g.floor_db + 18  # peak: over the margin, but alone
    levels = [crowd] * 30 + [peak] + [crowd] * 40 + [voice] * 10 + [crowd] * 20
    probs = [0.9] * len(levels)
    assert onset(probs, levels, g, 0.5, run_gap=SECOND) == 71


def test_a_run_of_windows_over_the_margin_is_the_speakers_even_when_none_stands_out():
    """A quieter speaker (10 dB over the floor) whose words keep coming is theirs; a shorter run at that level not."""
    g = in_a_cafe()
    crowd, soft = g.floor_db, g.floor_db + 10
    short = [crowd] * 20 + [soft] * (SPEAKER_RUN_WINDOWS - 1) + [crowd] * 50
    assert onset([0.9] * len(short), short, g, 0.5, run_gap=SECOND) is None
    run = [crowd] * 20 + [soft] * SPEAKER_RUN_WINDOWS + [crowd] * 50
    assert onset([0.9] * len(run), run, g, 0.5, run_gap=SECOND) == 20


def test_soft_voiced_windows_just_before_the_run_are_the_speakers():
    g = in_a_cafe()
    crowd, keep, voice = g.floor_db, g.floor_db + 6, g.floor_db + 18  # keep: over the lower bar only
    levels = [crowd] * 20 + [keep] * 2 + [voice] * 6 + [crowd] * 10
    probs = [0.2] * 20 + [0.8] * 8 + [0.2] * 10
    assert onset(probs, levels, g, 0.5, run_gap=SECOND) == 20
    unvoiced = [0.2] * 20 + [0.2, 0.2] + [0.8] * 6 + [0.2] * 10  # Silero hears no voice in them: not theirs
    assert onset(unvoiced, levels, g, 0.5, run_gap=SECOND) == 22


def test_the_voice_ends_at_the_last_loud_window_and_its_soft_syllables_after_it():
    bar, voiced, silence = -20.0, 0.35, 9
    loud, soft, crowd = -12.0, -24.0, -26.0
    # The reply, two soft syllables after a gap of TAIL_GAP_WINDOWS, then the crowd's peaks holding the turn open.
    levels = [loud] * 10 + [crowd] * TAIL_GAP_WINDOWS + [soft] * 2 + [crowd] * 4 + [soft] * 20 + [crowd] * silence
    heard = [0.9] * 10 + [0.1] * TAIL_GAP_WINDOWS + [0.8] * 2 + [0.1] * 4 + [0.8] * 20 + [0.1] * silence
    end = voice_end(np.asarray(heard), np.asarray(levels), bar, voiced, silence)
    assert end == 10 + TAIL_GAP_WINDOWS + 1
    # Ended just before the silence that cut it: nothing of the crowd to leave out.
    levels, heard = [loud] * 10 + [crowd] * silence, [0.9] * 10 + [0.1] * silence
    assert voice_end(np.asarray(heard), np.asarray(levels), bar, voiced, silence) is None
    # Nothing over the full bar: no voice to end.
    levels, heard = [soft] * 30 + [crowd] * silence, [0.9] * 30 + [0.1] * silence
    assert voice_end(np.asarray(heard), np.asarray(levels), bar, voiced, silence) is None
