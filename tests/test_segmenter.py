"""The segmenter on real speech, silence and noise, with the real Silero VAD."""

from dataclasses import replace

import numpy as np
import pytest
import soxr

from babelfish.config import Settings
from babelfish.echoes import make_copy
from babelfish.segmenter import Segmenter, SegmenterConfig, silero_detector
from tests.audio import frames, librivox_clips, pcm16, silence, white_noise
from tests.engines.conversation_audio import at_snr, babble, pico, pink

CONFIG = SegmenterConfig.from_settings(Settings())


def run(pcm: bytes, rate: int = 16000, config: SegmenterConfig | None = None, end: bool = True):
    seg = Segmenter(silero_detector(), config or CONFIG, rate)
    out = []
    for i, frame in enumerate(frames(pcm, rate=rate)):
        out += seg.feed(frame, now=i * 0.02)
    if end:
        last = seg.end_utterance(now=999.0)
        if last is not None:
            out.append(last)
    return out


def test_speech_becomes_one_utterance(speech_pcm):
    segments = run(silence(1) + speech_pcm + silence(1))
    assert len(segments) == 1
    spoken = len(speech_pcm) / 2 / 16000
    assert segments[0].cut == "silence"
    assert spoken - 0.6 < len(segments[0].audio) / 16000 < spoken + 0.8
    # The speech end is the arrival time of the last voiced frame, well before the trailing second of silence ends.
    assert 1.0 + spoken - 0.8 < segments[0].speech_end < 1.0 + spoken + 0.1


def test_two_utterances_split_on_a_pause(speech_pcm):
    segments = run(speech_pcm + silence(1) + speech_pcm + silence(1))
    assert [s.cut for s in segments] == ["silence", "silence"]


@pytest.mark.parametrize("pcm", [silence(5), white_noise(5, 0.05), white_noise(5, 0.3, seed=1)])
def test_silence_and_noise_give_nothing(pcm):
    assert run(pcm) == []


def test_max_length_cuts(speech_pcm):
    segments = run(speech_pcm, config=replace(CONFIG, max_seconds=1.0), end=False)
    assert len(segments) >= 2
    assert all(s.cut == "max_length" and len(s.audio) <= 16000 for s in segments)


def test_end_utterance_cuts_at_once(speech_pcm):
    seg = Segmenter(silero_detector(), CONFIG, 16000)
    for frame in frames(speech_pcm[: len(speech_pcm) // 2]):
        assert seg.feed(frame, now=0.0) == []
    out = seg.end_utterance(now=1.0)
    assert out is not None and out.cut == "end_utterance"
    assert seg.end_utterance(now=2.0) is None  # nothing left after the cut


def test_resamples_other_rates(speech_pcm):
    x = np.frombuffer(speech_pcm, "<i2").astype(np.float32) / 32768
    pcm48 = (soxr.resample(x, 16000, 48000) * 32767).astype("<i2").tobytes()
    segments = run(silence(0.5, 48000) + pcm48 + silence(1, 48000), rate=48000)
    assert len(segments) == 1
    assert abs(len(segments[0].audio) / 16000 - len(x) / 16000) < 1.0


@pytest.mark.parametrize(("text", "voice"), [("Oui.", "fr-FR"), ("No.", "es-ES")])
def test_a_one_syllable_reply_is_an_utterance_wherever_the_windows_fall(text: str, voice: str):
    """Pico's "Oui." and Spanish "No." have 7-8 windows of voice: at a 250 ms minimum about half of the 16 ways the
    32 ms windows can fall on them dropped the reply as a noise burst."""
    reply = (pico(text, voice) * 32767).astype("<i2").tobytes()
    for offset in range(16):  # 2 ms steps: every way a 32 ms window can fall on the reply
        segments = run(silence(0.5) + bytes(2 * 32 * offset) + reply + silence(1))
        assert len(segments) == 1, (text, offset)
    # The bar still drops what has less voice than it asks for.
    assert run(silence(0.5) + reply + silence(1), config=replace(CONFIG, min_speech_ms=400)) == []


TURNS = [
    ("Good morning.", "en-US"),
    ("Wo ist der Bahnhof?", "de-DE"),
    ("No lo sé.", "es-ES"),
    ("Yes.", "en-US"),
    ("I think the train leaves at eight, but we should check.", "en-GB"),
    ("Try again.", "en-US"),
]


def turns_track(gap: float = 2.5) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Short turns with `gap` seconds between them, and where each lies (seconds; to its last audible sample)."""
    parts, spans, at = [np.zeros(32000, np.float32)], [], 2.0
    for text, voice in TURNS:
        turn = pico(text, voice)
        parts += [turn, np.zeros(int(gap * 16000), np.float32)]
        spans.append((at, at + (np.flatnonzero(np.abs(turn) > 0.01)[-1] + 1) / 16000))
        at += len(turn) / 16000 + gap
    return np.concatenate(parts), spans


def cuts(audio: np.ndarray, margin_db: float) -> list[tuple[float, float, str, float]]:
    """(start, end, cut, when it was cut) of each segment's audio, in seconds of the track, as an open microphone
    streams it; placed as babelfish/echoes.py places it (its last voiced window arrived at speech_end: a segment the
    crowd gate judged again is cut after its audio ends)."""
    seg = Segmenter(silero_detector(), replace(CONFIG, crowd_margin_db=margin_db))
    out = []
    for i, frame in enumerate(frames(pcm16(audio))):
        now = (i + 1) * 0.02
        for s in seg.feed(frame, now=now):
            start = make_copy("", s, CONFIG.threshold).t0
            out.append((start, start + len(s.audio) / 16000, s.cut, now))
    return out


def test_turns_end_in_a_crowd_that_never_stops():
    """Six voices 10 dB under the speaker, all along: Silero takes them for speech, so without the crowd gate the
    silence that ends a turn never comes and turns run together to the length cap."""
    audio, spans = turns_track()
    speech = np.concatenate([audio[int(a * 16000) : int(b * 16000)] for a, b in spans])
    crowd = babble(len(audio) / 16000 + 0.1, 0.5, np.random.default_rng(5), talkers=6)[: len(audio)]
    noisy = audio + at_snr(crowd, float(np.mean(speech**2)), 10)

    def turns_of(start: float, end: float) -> int:
        return sum(start < b and end > a for a, b in spans)

    gated = cuts(noisy, 8.0)
    assert not [c for c in gated if c[2] == "max_length"]
    assert all(turns_of(s, e) <= 1 for s, e, *_ in gated), gated  # no segment holds two turns
    assert all(any(s < b and e > a for s, e, *_ in gated) for a, b in spans), gated  # every turn is in one
    assert sum(turns_of(s, e) == 0 for s, e, *_ in gated) <= 1, gated  # the crowd alone makes next to no segments
    # Each turn's audio begins just before it (the preroll) and ends soon after it (a clean room: ~0.3 s), the first
    # too: the crowd opened a segment at once, and the gate judged it again when it knew the room (3 s on).
    first = [min(s for s, e, *_ in gated if s < b and e > a) - a for a, b in spans]
    late = [max(e for s, e, *_ in gated if s < b and e > a) - b for a, b in spans]
    assert min(first) > -0.5 and max(late) < 0.6, (first, late)
    # And is cut soon after: the first when the gate knows the room (3 s on), the others as in a clean room (~0.3 s).
    cut_after = [max(at for s, e, _, at in gated if s < b and e > a) - b for a, b in spans]
    assert cut_after[0] < 1.5 and max(cut_after[1:]) < 1.0, cut_after

    ungated = cuts(noisy, 0.0)  # what it was: turns merged, and cut at the cap
    assert [c for c in ungated if c[2] == "max_length"] and any(turns_of(s, e) > 1 for s, e, *_ in ungated)


def test_the_crowd_gate_changes_nothing_in_a_quiet_room_or_for_a_reader():
    """Turns in a room with a faint hum, in steady noise 5 dB under them, and LibriVox read with only 0.3 s between
    clips (someone reading on: every second has their voice in it)."""
    audio, _ = turns_track()
    reader = np.concatenate([np.concatenate([a, np.zeros(4800, np.float32)]) for _, a, _ in librivox_clips() * 2])
    for track, snr in ((audio, 50), (audio, 5), (reader, 50)):
        noise = pink(len(track) / 16000, 0.5, np.random.default_rng(1))
        noisy = track + at_snr(noise, float(np.mean(track[np.abs(track) > 0.01] ** 2)), snr)
        assert cuts(noisy, 8.0) == cuts(noisy, 0.0)


def test_a_segment_carries_its_phones_floor_and_the_pages_zeros_are_none(speech_pcm):
    """The phone's floor (mostly what it hears while nobody near it speaks) goes with each segment: one phone's copy
    of a voice is weighed against another's over it (babelfish/echoes.py, `quality`). The page sends zeros while it
    plays a translation; they never make the floor (-120 dBFS would make every voice this phone hears its own)."""
    noise = 10 ** (-50 / 20)  # room noise, -50 dBFS
    after_noise = run(white_noise(4.0, noise) + speech_pcm + white_noise(1.0, noise, seed=1))
    after_playback = run(white_noise(2.0, noise) + silence(4.0) + speech_pcm + white_noise(1.0, noise, seed=1))
    for segments in (after_noise, after_playback):
        assert segments and all(s.floor_db is not None and -56 < s.floor_db < -46 for s in segments)
