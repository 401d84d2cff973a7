"""The crowd gate on made-up window levels and probabilities (no model): when it turns on, and what it lets through."""

import numpy as np

from babelfish.background import MIN_HISTORY_SECONDS, BackgroundGate

WINDOW_S = 0.032
RNG = np.random.default_rng(3)


def gate(margin: float = 8.0) -> BackgroundGate:
    return BackgroundGate(margin, window_seconds=WINDOW_S, voiced=0.35)


def rms(db: float) -> float:
    return float(10 ** (db / 20))


def feed(g: BackgroundGate, seconds: float, level_db: float, spread_db: float, prob: float) -> None:
    """`seconds` of windows around `level_db` that Silero rates `prob`."""
    for db in RNG.uniform(level_db - spread_db, level_db + spread_db, round(seconds / WINDOW_S)):
        g.admit(rms(db), prob, speaking=False)


def test_a_crowd_turns_the_gate_on_and_only_a_louder_voice_passes():
    g = gate()
    feed(g, 10, -30, 3, 0.9)  # a crowd Silero takes for speech, all along
    assert g.crowd
    assert -33 <= g.floor_db <= -30
    assert not g.admit(rms(g.floor_db + 3), 0.95, speaking=False)  # the crowd's own peaks start nothing
    assert g.admit(rms(g.floor_db + 12), 0.95, speaking=False)  # the voice at the phone does
    # Once a turn has begun, half the margin keeps it going: quieter syllables do not end it, the crowd does.
    assert g.admit(rms(g.floor_db + 5), 0.95, speaking=True)
    assert not g.admit(rms(g.floor_db + 5), 0.95, speaking=False)
    assert not g.admit(rms(g.floor_db + 2), 0.95, speaking=True)


def test_a_quiet_room_changes_nothing():
    g = gate()
    for _ in range(6):  # turns and pauses: the pauses are the quietest windows, and Silero hears no voice in them
        feed(g, 1.5, -60, 2, 0.02)
        feed(g, 2.0, -25, 8, 0.97)
    assert not g.crowd
    assert g.admit(rms(-65), 0.6, speaking=False)


def test_reading_on_with_short_pauses_is_no_crowd():
    """Near the floor a reader's windows are mostly voiced (the quiet ends of words), but the quietest tenth are the
    pauses: measured, a floor-plus-margin test took a reader for a crowd 56% of the time."""
    g = gate()
    for _ in range(12):
        feed(g, 2.5, -28, 4, 0.98)  # words
        feed(g, 0.2, -36, 2, 0.9)  # their quiet ends, still voiced
        feed(g, 0.3, -55, 2, 0.05)  # a breath
    assert not g.crowd


def test_steady_noise_silero_does_not_take_for_speech_is_no_crowd():
    g = gate()
    feed(g, 10, -35, 2, 0.1)  # a fan, pink noise
    assert not g.crowd
    assert g.admit(rms(-34), 0.6, speaking=False)


def test_off_until_the_history_says_something_and_when_set_to_zero():
    g = gate()
    feed(g, MIN_HISTORY_SECONDS - 0.1, -30, 3, 0.9)
    assert not g.crowd and g.admit(rms(-30), 0.9, speaking=False)
    feed(g, 0.2, -30, 3, 0.9)
    assert g.crowd
    off = gate(margin=0)
    feed(off, 10, -30, 3, 0.9)
    assert not off.crowd and off.admit(rms(-30), 0.9, speaking=False)


def test_the_gate_follows_the_room():
    """The history is the last 10 s: leaving the café turns the gate off again."""
    g = gate()
    feed(g, 10, -30, 3, 0.9)
    assert g.crowd
    feed(g, 10, -62, 2, 0.02)
    assert not g.crowd
