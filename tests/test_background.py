"""The crowd gate on made-up window levels and probabilities (no model): when it turns on, and what it lets through."""

from dataclasses import replace

import numpy as np
import pytest

from babelfish.background import MIN_HISTORY_SECONDS, BackgroundGate
from babelfish.config import Settings
from babelfish.segmenter import Segment, Segmenter, SegmenterConfig
from tests.audio import frames, pcm16

WINDOW_S = 0.032
RNG = np.random.default_rng(3)


@pytest.fixture(autouse=True)
def _draws():
    """Each test draws its own levels, whatever ran before it."""
    global RNG
    RNG = np.random.default_rng(3)


def gate(margin: float = 8.0) -> BackgroundGate:
    return BackgroundGate(margin, window_seconds=WINDOW_S, voiced=0.35)


def admit(g: BackgroundGate, db: float, prob: float, speaking: bool) -> bool:
    """Add a window `db` loud that Silero rates `prob`; whether it may count as voice."""
    g.add(db, prob)
    return g.allows(db, speaking)


def feed(g: BackgroundGate, seconds: float, level_db: float, spread_db: float, prob: float) -> None:
    """`seconds` of windows around `level_db` that Silero rates `prob`."""
    for db in RNG.uniform(level_db - spread_db, level_db + spread_db, round(seconds / WINDOW_S)):
        admit(g, db, prob, speaking=False)


def cafe(g: BackgroundGate, rounds: int = 3, speaker_db: float = -12) -> None:
    """A crowd Silero takes for speech, all along, and now and then the phone's speaker, well over it."""
    for _ in range(rounds):
        feed(g, 3, -30, 3, 0.9)
        feed(g, 0.8, speaker_db, 4, 0.99)


def test_a_crowd_with_the_speaker_over_it_turns_the_gate_on_and_only_a_louder_voice_passes():
    g = gate()
    cafe(g)
    feed(g, 1.5, -30, 3, 0.9)
    assert g.crowd
    assert -33 <= g.floor_db <= -29
    assert not admit(g, g.floor_db + 3, 0.95, speaking=False)  # the crowd's own peaks start nothing
    assert admit(g, g.floor_db + 12, 0.95, speaking=False)  # the voice at the phone does
    # Once a turn has begun, a little less keeps it going: quieter syllables do not end it, the crowd does.
    assert admit(g, g.floor_db + 6, 0.95, speaking=True)
    assert not admit(g, g.floor_db + 6, 0.95, speaking=False)
    assert not admit(g, g.floor_db + 2, 0.95, speaking=True)
    # A segment the crowd opened peaks lower than the speaker.
    assert g.stands_out(13) and not g.stands_out(10)


def test_until_the_speaker_stands_out_over_the_crowd_the_gate_stays_off():
    """The crowd alone, or a speaker hardly louder than it: the gate could not tell them apart, and would cut words."""
    g = gate()
    feed(g, 10, -30, 3, 0.9)
    assert not g.crowd and admit(g, -30, 0.9, speaking=False)
    quiet_speaker = gate()
    cafe(quiet_speaker, speaker_db=-26)
    assert not quiet_speaker.crowd


def test_a_speaker_clearly_over_the_crowd_is_remembered_while_they_listen():
    """In a conversation of several, a phone's speaker may be quiet for a while: the gate stays on if they stood out
    clearly (18 dB over the floor), for a minute; if only just (14 dB), for as long as they are in the last 10 s."""
    clear, just = gate(), gate()
    for g, speaker_db in ((clear, -8.0), (just, -15.0)):
        for _ in range(2):
            feed(g, 3, -30, 3, 0.9)
            for db in RNG.uniform(speaker_db - 1, speaker_db + 1, 25):
                admit(g, db, 0.99, speaking=False)
        feed(g, 1.5, -30, 3, 0.9)
        assert g.crowd
        feed(g, 20, -30, 3, 0.9)  # the others talk
    assert clear.crowd and not just.crowd
    feed(clear, 55, -30, 3, 0.9)  # a minute after their words left the last 10 s
    assert not clear.crowd


def test_a_quiet_room_changes_nothing():
    g = gate()
    for _ in range(6):  # turns and pauses: the pauses are the quietest windows, and Silero hears no voice in them
        feed(g, 1.5, -60, 2, 0.02)
        feed(g, 2.0, -25, 8, 0.97)
    assert not g.crowd
    assert admit(g, -65, 0.6, speaking=False)


def test_talking_on_in_steady_noise_is_no_crowd():
    """Someone reading on, breathing every few seconds, in noise 5 dB under them: every second has the voice in it, so
    there is no voiced background to see, and the fan alone is not voiced."""
    g = gate()
    feed(g, 2, -35, 1, 0.05)  # the fan before they start
    for _ in range(8):
        feed(g, 2.7, -28, 6, 0.97)
        feed(g, 0.3, -35, 1, 0.6)  # a breath: the fan, Silero still half in speech
    assert not g.crowd


def test_steady_noise_silero_does_not_take_for_speech_is_no_crowd():
    g = gate()
    for _ in range(3):
        feed(g, 3, -35, 2, 0.1)  # a fan, pink noise
        feed(g, 0.8, -15, 4, 0.99)
    assert not g.crowd
    assert admit(g, -34, 0.6, speaking=False)


def test_off_until_the_history_says_something_and_when_set_to_zero():
    g = gate()
    feed(g, MIN_HISTORY_SECONDS - 0.1, -30, 3, 0.9)
    assert not g.crowd and admit(g, -30, 0.9, speaking=False)
    assert g.stands_out(g.over(-30))  # a segment begun before the gate knew the room is never dropped as the crowd's
    off = gate(margin=0)
    cafe(off)
    assert not off.crowd and admit(off, -30, 0.9, speaking=False)


def test_the_gate_follows_the_room():
    """The history is the last 10 s: leaving the café turns the gate off again."""
    g = gate()
    cafe(g)
    feed(g, 1.5, -30, 3, 0.9)
    assert g.crowd
    feed(g, 5, -62, 2, 0.02)
    feed(g, 0.8, -20, 4, 0.99)
    feed(g, 5, -62, 2, 0.02)
    assert not g.crowd


class Loud:
    """Silero as a crowd makes it: everything audible is voice."""

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        return np.full(len(windows), 0.95, np.float32)

    def reset(self) -> None:
        pass


def tone(seconds: float, db: float) -> np.ndarray:
    """Noise at a steady level (RMS in dBFS), standing in for a crowd or a voice."""
    return (RNG.standard_normal(int(seconds * 16000)) * 10 ** (db / 20)).astype(np.float32)


def segments(*parts: np.ndarray) -> list[tuple[float, float]]:
    seg = Segmenter(Loud(), SegmenterConfig.from_settings(Settings()))
    out = []
    for i, frame in enumerate(frames(pcm16(np.concatenate(parts)))):
        end = (i + 1) * 0.02
        out += [(round(end - len(s.audio) / 16000, 1), round(end, 1)) for s in seg.feed(frame, now=end)]
    return out


def test_a_segment_the_crowd_opened_is_dropped_unless_it_goes_on_from_the_speaker():
    crowd = -30.0
    speaker = tone(1.0, crowd + 16)
    near_peak = tone(0.4, crowd + 10.5)  # over the margin, under 12 dB: a crowd peak, or a quieter clause of theirs
    start = [tone(4.0, crowd), speaker, tone(2.5, crowd), speaker, tone(3.0, crowd)]  # the gate learns the room
    # Far from the speaker's last words (3 s on, at 11.5 s), such a peak is the crowd's: nothing comes of it.
    alone = segments(*start, near_peak, tone(2.0, crowd))
    assert [s for s in alone if s[1] > 11.0] == [], alone
    # Right after them (0.5 s on, at 9 s), it goes on from them (a quieter clause): kept.
    after = segments(*start[:-1], tone(0.5, crowd), near_peak, tone(2.0, crowd))
    assert [s for s in after if s[0] >= 8.5 and s[1] > 9.0], after
    # A peak as loud as the speaker is kept wherever it comes.
    loud = segments(*start, tone(0.4, crowd + 14), tone(2.0, crowd))
    assert [s for s in loud if s[1] > 11.0], loud


def cut(*parts: np.ndarray, seg: Segmenter | None = None, at: float = 0.0) -> list[tuple[float, Segment]]:
    """(when it was cut, the segment) for each, the parts streamed at real-time pace from `at` seconds."""
    seg = seg or Segmenter(Loud(), SegmenterConfig.from_settings(Settings()))
    out = []
    for i, frame in enumerate(frames(pcm16(np.concatenate(parts)))):
        end = at + (i + 1) * 0.02
        out += [(end, s) for s in seg.feed(frame, now=end)]
    return out


def silence_windows() -> int:
    return round(Settings().vad_silence_ms * 16 / 512)


def test_a_muted_phone_does_not_forget_the_crowd():
    """Digital silence (a phone muted a while) is no quiet second of the room: the gate stays on through it."""
    g = gate()
    cafe(g)
    feed(g, 1.5, -30, 3, 0.9)
    assert g.crowd
    for _ in range(round(6.0 / WINDOW_S)):
        g.add(-120.0, 0.0)
    feed(g, 1.0, -30, 3, 0.9)
    assert g.crowd


def test_a_first_turn_the_crowd_opened_is_judged_again_when_the_gate_knows_the_room():
    """A phone that comes on in a café: the crowd opens a segment at once, and the speaker's first words (at 0.6 s)
    come before the gate has 3 s of history. When it turns on, the segment is judged again: it holds the words and not
    the crowd around them, and it is cut then, not at the next pause in the crowd."""
    crowd = -30.0
    (at, first), *rest = cut(tone(0.6, crowd), tone(0.8, crowd + 16), tone(4.6, crowd), tone(0.8, crowd + 16),
                             tone(3.0, crowd))  # fmt: skip
    assert 3.0 <= at <= 3.3, at  # the gate's first judgement
    assert abs(first.speech_end - 1.4) < 0.1, first.speech_end
    assert len(first.audio) / 16000 < 0.8 + 0.6, len(first.audio) / 16000  # preroll and the silence that ends it
    assert first.crowd
    # The crowd's windows count as no voice in what places the turn in time (echoes, turns), Silero's own are kept.
    assert first.heard_probs is not None and first.heard_probs[-5:].max() == 0 and first.speech_probs.min() > 0.9
    assert [round(s.speech_end, 1) for _, s in rest] == [6.8], rest  # the second turn as any other in a crowd


def test_a_first_segment_the_crowd_opened_keeps_only_the_speaker_who_came_in_later():
    crowd = -30.0
    # The speaker comes in only after the crowd has filled 2.6 s: what the crowd opened before them is not theirs.
    got = cut(tone(2.6, crowd), tone(0.8, crowd + 16), tone(3.0, crowd))
    assert len(got) == 1, got
    _, seg = got[0]
    assert abs(seg.speech_end - 3.4) < 0.1 and len(seg.audio) / 16000 < 1.4, (seg.speech_end, len(seg.audio))


def test_the_crowd_that_kept_a_turn_open_is_not_sent_with_it():
    """Once a turn has begun, windows 5 dB over the floor keep it going; after a short reply the crowd's own peaks
    reach that often enough to keep it open for seconds. The segment ends where the reply's voice did."""
    crowd = -30.0
    peaks = np.concatenate([np.concatenate([tone(0.07, crowd + 6.5), tone(0.16, crowd)]) for _ in range(8)])
    start = [tone(4.0, crowd), tone(0.8, crowd + 16), tone(3.0, crowd)]  # the gate learns the room
    got = cut(*start, tone(0.4, crowd + 16), peaks, tone(2.0, crowd))
    at, reply = got[-1]
    assert at > 9.8, at  # the peaks kept it open until they stopped (at 10 s)
    assert abs(reply.speech_end - 8.2) < 0.1, reply.speech_end
    assert len(reply.audio) / 16000 < 0.4 + 0.8, len(reply.audio) / 16000
    # The peaks left in the silence kept after it are not its voice: what places it in time ends with the reply.
    assert np.flatnonzero(reply.timing_probs >= 0.35)[-1] == len(reply.timing_probs) - 1 - silence_windows()


def test_the_crowd_after_a_turn_cut_late_does_not_pass_as_its_speaker_going_on():
    """A segment beginning within a second of the speaker's words needs less to be kept (a quieter clause of theirs);
    the second counts from where their words were cut, not from when the gate got to cut them."""
    crowd = -30.0
    first = [tone(0.6, crowd), tone(0.8, crowd + 16), tone(2.1, crowd)]  # cut at 3.0 s by the replay
    got = cut(*first, tone(0.4, crowd + 10.5), tone(2.0, crowd))  # a crowd peak 2 s after the words
    assert [round(s.speech_end, 1) for _, s in got] == [1.4], got


def test_a_segment_judged_again_goes_on_under_its_serial():
    """The speaker still talks when the gate turns on: partials and echoes follow the segment by its serial."""
    crowd = -30.0
    seg = Segmenter(Loud(), SegmenterConfig.from_settings(Settings()))
    assert cut(tone(2.5, crowd), tone(0.4, crowd + 16), seg=seg) == []  # 2.9 s: the crowd opened it at once
    before = seg.open_serial
    assert cut(tone(0.3, crowd + 16), seg=seg, at=2.9) == [] and seg.in_crowd  # judged again, the speaker talks on
    assert before is not None and seg.open_serial == before
    (_, turn), *_ = cut(tone(0.8, crowd + 16), tone(1.0, crowd), seg=seg, at=3.2)
    assert turn.serial == before and abs(turn.speech_end - 4.0) < 0.1
    assert len(turn.audio) / 16000 < 1.5 + 0.6  # from the speaker's first words, not from 0 s


def test_with_no_speaker_in_it_a_segment_judged_again_is_dropped_whole():
    """The speaker's words were cut before (a pause of digital silence); the crowd opened the next segment, and a
    peak of it passes the lower bar just before the gate turns on: nothing of it opens a segment."""
    crowd = -30.0
    seg = Segmenter(Loud(), SegmenterConfig.from_settings(Settings()))
    parts = [tone(0.3, crowd), tone(0.6, crowd + 16), np.zeros(8000, np.float32), tone(1.45, crowd)]
    got = cut(*parts, tone(0.1, crowd + 6.5), tone(0.15, crowd), seg=seg)  # 3.1 s
    assert seg.in_crowd and not seg.speaking
    assert [round(s.speech_end, 1) for _, s in got] == [0.9], got  # the speaker's, cut before the gate knew the room


def test_a_turn_cut_at_the_length_cap_in_a_crowd_keeps_all_its_audio():
    """At the cap the turn goes on in the next segment: nothing is trimmed from it, quieter words included."""
    crowd = -30.0
    config = replace(SegmenterConfig.from_settings(Settings()), max_seconds=4.0)
    start = [tone(4.0, crowd), tone(0.8, crowd + 16), tone(3.0, crowd)]
    clause = [tone(2.0, crowd + 16), tone(0.15, crowd), tone(3.0, crowd + 6.5)]  # a breath, then quieter words
    got = cut(*start, *clause, tone(2.0, crowd), seg=Segmenter(Loud(), config))
    capped = [s for at, s in got if s.cut == "max_length" and at > 8]  # (the first 4 s: before the gate was on)
    assert len(capped) == 1 and len(capped[0].audio) / 16000 >= 3.9, [(s.cut, len(s.audio) / 16000) for _, s in got]


def test_a_phones_floor_for_its_copies_needs_a_second_of_sound_and_no_zeros_count():
    """`known_floor`, gate on or off: digital silence (the page's zeros while it plays a translation) is no sound."""
    for margin in (8.0, 0.0):
        g = gate(margin)
        for _ in range(200):  # 6.4 s of zeros
            g.add(-120.0, 0.0)
        assert g.known_floor is None
        for _ in range(40):  # 1.28 s of room noise around -50 dBFS
            g.add(-50.0 + float(RNG.normal(0, 1)), 0.05)
        assert g.known_floor is not None and -53 < g.known_floor < -49
        for _ in range(100):  # more zeros: the floor stays the room's
            g.add(-120.0, 0.0)
        assert g.known_floor is not None and -53 < g.known_floor < -49


def test_a_phone_that_talks_as_soon_as_it_joins_knows_its_floor_from_its_few_quiet_windows():
    """A phone that joins a third of a second before its person talks: its floor is the room's, from the windows
    Silero calls unvoiced, not a quantile of its own speech (which let a farther phone's copy win its first turn,
    bench_echoes part 4 (e)). A phone that has heard almost nothing but speech takes its floor from all it heard."""
    for margin in (8.0, 0.0):
        g = gate(margin)
        for _ in range(10):  # 0.32 s of room noise around -50 dBFS
            g.add(-50.0 + float(RNG.normal(0, 1)), 0.05)
        for _ in range(60):  # 1.9 s of its speaker talking on
            g.add(-22.0 + float(RNG.normal(0, 3)), 0.9)
        assert g.known_floor is not None and -53 < g.known_floor < -47, g.known_floor
        talker = gate(margin)
        for _ in range(4):  # less than 0.25 s that is not speech
            talker.add(-50.0, 0.05)
        for _ in range(60):
            talker.add(-22.0 + float(RNG.normal(0, 3)), 0.9)
        assert talker.known_floor is not None and -30 < talker.known_floor < -20, talker.known_floor
