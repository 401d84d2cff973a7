"""Where a turn should end: the pauses the real segmenter leaves between one speaker's utterances, inside a clip
(a breath: the same turn, worth re-decoding whole) and between clips (the other speaker talked: a new turn).

    python -m bench.bench_turns

Plays every speaker track of bench_fidelity's conversational set through the server's segmenter (Silero, default
settings) on a simulated clock, then measures each pause as the turn tracker does (babelfish/turns.py: from the
previous utterance's last voiced audio to the next one's first) and prints how each `turn_gap_seconds` would group
them. No server, no ASR.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np

from babelfish.config import Settings
from babelfish.protocol import Speaker
from babelfish.segmenter import Segmenter, SegmenterConfig, silero_detector
from babelfish.turns import Piece
from bench.bench_fidelity import SR, build_set, track


def pieces(audio: np.ndarray) -> list[Piece]:
    seg = Segmenter(silero_detector(), SegmenterConfig.from_settings(Settings()))
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    step = SR // 50 * 2  # 20 ms frames, each stamped with its own time on the track
    out = []
    for i in range(0, len(pcm), step):
        for s in seg.feed(pcm[i : i + step], (i + step) / 2 / SR):
            out.append(Piece("", s.audio, s.speech_probs, "", "", s.speech_end, Speaker(id="", name="")))
    return out


def main() -> None:
    inside, between = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for conv in build_set(Path(tmp)):
            for speaker in sorted({c.speaker for c in conv.clips}):
                found = pieces(track(conv, speaker))
                mine = [t for t in conv.turns if t.clip.speaker == speaker]

                def clip_of(p: Piece, mine: list = mine) -> object:
                    return min(mine, key=lambda turn: abs(turn.end - p.speech_end)).clip

                for a, b in itertools.pairwise(found):
                    pause = b.speech_start - a.speech_end
                    (inside if clip_of(a) is clip_of(b) else between).append(pause)
    print(f"pauses inside a clip (same turn): n={len(inside)}, "
          f"p50 {np.median(inside):.2f} s, p95 {np.percentile(inside, 95):.2f} s, max {max(inside):.2f} s")  # fmt: skip
    low, mid = np.percentile(between, 5), np.median(between)
    print(f"pauses between clips (new turn):  n={len(between)}, "
          f"min {min(between):.2f} s, p5 {low:.2f} s, p50 {mid:.2f} s")  # fmt: skip
    for gap in (0.6, 0.8, 1.0, 1.2, 1.5, 2.0, 2.5):
        split = sum(p > gap for p in inside)
        merged = sum(p <= gap for p in between)
        print(f"  turn_gap_seconds {gap:.1f}: breaths that split a turn {split}/{len(inside)}, "
              f"separate turns merged {merged}/{len(between)}")  # fmt: skip


if __name__ == "__main__":
    main()
