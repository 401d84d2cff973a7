"""Revisions with the real model: LibriVox sentences cut at their own pauses, each piece cut by the real segmenter and
transcribed alone (as the pipeline does hands-free), against the turn's joined audio transcribed once the careful way
(as babelfish/revisions.py does: a beam search). CTranslate2's int8 kernels differ between
CPUs: only robust things are asserted, summed over the clips — the joined decode keeps at least as many of the
reference's words, and is never thrown away."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest

from babelfish.config import Settings
from babelfish.engines.base import Utterance
from babelfish.engines.cascade import CascadeEngine
from babelfish.protocol import Speaker
from babelfish.revisions import verdict
from babelfish.segmenter import Segmenter, SegmenterConfig, silero_detector
from babelfish.turns import Piece, Turn
from bench.bench_fidelity import cut_at_pauses
from tests.audio import librivox_clips
from tests.engines.cascade_audio import normalize

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CascadeEngine]:
    eng = CascadeEngine.load(Settings(data_dir=tmp_path_factory.mktemp("data"), threads=2, natural_voices=False))
    yield eng
    eng.close()


def hits(text: str, reference: str) -> int:
    """How many of the reference's words the text has (as a multiset)."""
    return sum((Counter(normalize(text)) & Counter(normalize(reference))).values())


def test_a_turn_decoded_whole_keeps_more_of_what_was_said(engine: CascadeEngine) -> None:
    seg = Segmenter(silero_detector(), SegmenterConfig.from_settings(Settings()))
    breath = np.zeros(int(0.8 * 16000), np.float32)
    pieces_hits = whole_hits = turns = 0
    for _, audio, reference in librivox_clips():
        track = np.concatenate([x for p in cut_at_pauses(audio) for x in (p, breath)] + [breath])
        pcm = (np.clip(track, -1, 1) * 32767).astype("<i2").tobytes()
        segments = [
            s for i, off in enumerate(range(0, len(pcm), 640)) for s in seg.feed(pcm[off : off + 640], i * 0.02)
        ]
        turn = Turn("ann")
        for k, s in enumerate(segments):
            t = engine.transcribe(Utterance(s.audio, "en", (), s.speech_probs, read_until=s.read_until))
            if t is not None:
                turn.pieces.append(
                    Piece(f"u{k}", s.audio, s.speech_probs, t.text, "en", s.speech_end, Speaker(id="a", name="A"))
                )
        if len(turn.pieces) < 2:
            continue
        turns += 1
        whole = engine.transcribe(Utterance(turn.audio(), "en", (), turn.speech_probs(), revision=True))
        assert whole is not None
        assert verdict(turn.text, whole) != "rejected", (turn.text, whole.text)
        pieces_hits += hits(turn.text, reference)
        whole_hits += hits(whole.text, reference)
    assert turns >= 3  # most clips were cut in several pieces
    assert whole_hits >= pieces_hits, (whole_hits, pieces_hits)


def test_a_short_turn_revised_is_never_doubled(engine: CascadeEngine) -> None:
    """A one-piece short turn decoded again the careful way (a beam search) keeps its words; a beam may say a short
    phrase twice ("Good morning. Good morning." on some clips), which the verdict never sends."""
    from tests.engines.conversation_audio import pico

    for text, key in (("Good morning.", "morning"), ("Thank you very much.", "thank")):
        audio = np.concatenate([np.zeros(3200, np.float32), pico(text, "en-US"), np.zeros(4800, np.float32)])
        first = engine.transcribe(Utterance(audio, "en", (), None))
        got = engine.transcribe(Utterance(audio, "en", (), None, revision=True))
        assert first is not None and got is not None and got.language == "en", text
        assert key in normalize(got.text), got.text
        held = got.text if verdict(first.text, got) == "sent" else first.text
        assert normalize(held).count(key) == 1, (first.text, got.text)
