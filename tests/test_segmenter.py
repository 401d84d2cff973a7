"""The segmenter on real speech, silence and noise, with the real Silero VAD."""

from dataclasses import replace

import numpy as np
import pytest
import soxr

from babelfish.config import Settings
from babelfish.segmenter import Segmenter, SegmenterConfig, silero_detector
from tests.audio import frames, silence, white_noise
from tests.engines.conversation_audio import pico

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
