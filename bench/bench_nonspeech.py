"""Babble against speech: how often a crowd passes as speech, and whether real turns are kept.

    python -m bench.bench_nonspeech [--data-dir data] [--seeds 8] [--talkers 6 8 10 16] [--peaks 0.1 0.3 0.6 0.9]

Babble: `talkers` Pico voices at once, played backwards (tests/engines/conversation_audio.py), 4 s at each peak level,
one mix per seed. Speech: every turn of bench_fidelity's set (LibriVox whole and cut at its pauses, short Pico turns,
espeak-ng), language given. Each is streamed through the real segmenter (20 ms frames, then a second of silence) and
the cascade engine's recogniser and non-speech decision, as the server does. Prints, per group: segments the VAD cut,
segments Whisper wrote words for, and those that pass as speech, with the rule that rejected the others.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from babelfish.config import Settings
from babelfish.engines.cascade import CascadeEngine
from babelfish.engines.cascade.nonspeech import Voicing, rejection
from babelfish.segmenter import Segment, Segmenter, SegmenterConfig, silero_detector
from tests.engines.conversation_audio import babble


def segments(audio: np.ndarray) -> list[Segment]:
    seg = Segmenter(silero_detector(), SegmenterConfig.from_settings(Settings()))
    pcm = (np.clip(np.concatenate([audio, np.zeros(16000, np.float32)]), -1, 1) * 32767).astype("<i2").tobytes()
    return [s for i, off in enumerate(range(0, len(pcm), 640)) for s in seg.feed(pcm[off : off + 640], i * 0.02)]


class Tally:
    def __init__(self) -> None:
        self.segments = self.worded = self.passed = 0
        self.reasons: Counter[str] = Counter()
        self.examples: list[str] = []

    def add(self, engine: CascadeEngine, seg: Segment, language: str) -> str | None:
        """The decision for one segment; returns the text when it passes."""
        self.segments += 1
        voicing = Voicing.of(seg.speech_probs)
        rec = engine.asr.recognize(seg.audio, language, (), voicing.voiced_seconds if voicing else None)
        if rec is None:
            self.reasons["no words"] += 1
            return None
        self.worded += 1
        why = rejection(rec, voicing)
        if why is not None:
            self.reasons[why] += 1
            return None
        self.passed += 1
        self.examples.append(rec.text)
        return rec.text

    def line(self, name: str) -> str:
        why = ", ".join(f"{k} {v}" for k, v in self.reasons.most_common())
        return f"  {name:28} segments {self.segments:3}  with words {self.worded:3}  pass {self.passed:3}  ({why})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="data")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--talkers", type=int, nargs="*", default=[6, 8, 10, 16])
    p.add_argument("--peaks", type=float, nargs="*", default=[0.1, 0.3, 0.6, 0.9])
    p.add_argument("--no-speech-set", action="store_true", help="babble only")
    args = p.parse_args()
    engine = CascadeEngine.load(Settings(data_dir=Path(args.data_dir), natural_voices=False))
    try:
        print("babble (language en):")
        for talkers in args.talkers:
            for peak in args.peaks:
                tally = Tally()
                for seed in range(args.seeds):
                    for seg in segments(babble(4.0, peak, np.random.default_rng(seed), talkers=talkers)):
                        tally.add(engine, seg, "en")
                print(tally.line(f"{talkers} voices, peak {peak}") + "".join(f"\n      {t!r}" for t in tally.examples))
        if args.no_speech_set:
            return
        from bench.bench_fidelity import build_set

        print("speech (bench_fidelity's turns, language given):")
        with tempfile.TemporaryDirectory() as tmp:
            convs = build_set(Path(tmp))
        for conv in convs:
            tally, dropped = Tally(), []
            for turn in conv.turns:
                texts = [tally.add(engine, seg, turn.clip.language) for seg in segments(turn.audio)]
                if not any(texts):
                    dropped.append(turn.clip.name)
            print(tally.line(conv.name) + f"  turns {len(conv.turns)}, dropped {len(dropped)} {dropped or ''}")
    finally:
        engine.close()


if __name__ == "__main__":
    main()
