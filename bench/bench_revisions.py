"""What revisions buy and cost, decoded offline: bench_fidelity's conversational set, each speaker's track cut by the
server's segmenter, each utterance transcribed alone (what listeners get first), then every turn of two or more
utterances re-decoded whole (what they hold after the `revision`), both scored against the whole-clip reference.

    python -m bench.bench_revisions [--data-dir data] [--only librivox-cut ...] [--gap 1.2]

No server and no clock: the segmenter runs on the tracks' own timeline and turns are grouped by the server's rule
(babelfish/turns.py: pauses up to `--gap`, at most 28 s, nobody else speaking in between), so the word error rates do
not depend on the machine's load. The engine's CPU time (process time, all threads) of the first decodes and of the
revisions is measured in the same run, as is each revision's wall time: what it adds after the turn's gap.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from babelfish.config import Settings
from babelfish.engines.base import Utterance
from babelfish.protocol import Speaker
from babelfish.revisions import verdict
from babelfish.segmenter import Segmenter, SegmenterConfig, silero_detector
from babelfish.turns import Piece
from bench.bench_fidelity import SR, Clip, build_set, references, speaker_language, track
from tests.engines.cascade_audio import word_errors


@dataclass
class Cut:
    piece: Piece
    speaker: str
    clip: Clip
    text: str = ""
    final: str | None = None  # after revisions: the turn's text on its first piece, "" on the others


@dataclass
class Cost:
    cpu_first: float = 0.0
    cpu_revise: float = 0.0
    revise_wall: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)


def cut(conv, speaker: str) -> list[Piece]:
    seg = Segmenter(silero_detector(), SegmenterConfig.from_settings(Settings()))
    pcm = (np.clip(track(conv, speaker), -1, 1) * 32767).astype("<i2").tobytes()
    step = SR // 50 * 2
    out: list[Piece] = []
    for i in range(0, len(pcm), step):
        for s in seg.feed(pcm[i : i + step], (i + step) / 2 / SR):
            out.append(
                Piece(f"{speaker}{len(out)}", s.audio, s.speech_probs, "", "", s.speech_end, Speaker(id="", name=""))
            )
    return out


def turns(cuts: list[Cut], gap: float, longest: float) -> list[list[Cut]]:
    """The server's rule on one timeline: pauses up to `gap`, at most `longest` s, nobody else in between."""
    out: list[list[Cut]] = []
    open_: dict[str, list[Cut]] = {}
    for c in sorted(cuts, key=lambda c: c.piece.speech_end):
        for other in [s for s in open_ if s != c.speaker]:
            if c.piece.speech_start > open_[other][-1].piece.speech_end:
                out.append(open_.pop(other))
        mine = open_.get(c.speaker)
        if mine is not None:
            pause = c.piece.speech_start - mine[-1].piece.speech_end
            if pause > gap or sum(x.piece.seconds for x in mine) + c.piece.seconds > longest:
                out.append(open_.pop(c.speaker))
                mine = None
        open_.setdefault(c.speaker, []).append(c)
    return out + list(open_.values())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="data")
    p.add_argument("--only", nargs="*")
    p.add_argument("--gap", type=float, default=Settings().turn_gap_seconds)
    args = p.parse_args()
    from babelfish.engines.cascade import CascadeEngine

    data_dir = Path(args.data_dir)
    engine = CascadeEngine.load(Settings(data_dir=data_dir, threads=2, natural_voices=False))
    cost = Cost()
    pooled = [0, 0, 0]
    with tempfile.TemporaryDirectory() as tmp:
        convs = [c for c in build_set(Path(tmp)) if not args.only or c.name in args.only]
        references([c for conv in convs for c in conv.clips], data_dir)
        for conv in convs:
            cuts: list[Cut] = []
            for speaker in sorted({c.speaker for c in conv.clips}):
                lang = speaker_language(conv, speaker)
                mine = [t for t in conv.turns if t.clip.speaker == speaker]
                for piece in cut(conv, speaker):
                    clip = min(mine, key=lambda t, p=piece: abs(t.end - p.speech_end)).clip  # type: ignore[misc]
                    c0 = time.process_time()
                    got = engine.transcribe(
                        Utterance(piece.audio, None if lang == "auto" else lang, (), piece.speech_probs)
                    )
                    cost.cpu_first += time.process_time() - c0
                    if got is not None:
                        cuts.append(Cut(Piece(piece.utterance_id, piece.audio, piece.speech_probs, got.text,
                                              got.language, piece.speech_end, piece.speaker), speaker, clip,
                                        got.text))  # fmt: skip
            for turn in turns(cuts, args.gap, Settings().turn_max_seconds):
                if len(turn) < 2:
                    continue
                audio = np.concatenate([c.piece.audio for c in turn])
                lang = speaker_language(conv, turn[0].speaker)
                c0, w0 = time.process_time(), time.perf_counter()
                probs = np.concatenate([c.piece.speech_probs for c in turn])
                whole = engine.transcribe(Utterance(audio, None if lang == "auto" else lang, (), probs))
                cost.cpu_revise += time.process_time() - c0
                cost.revise_wall.append(time.perf_counter() - w0)
                outcome = verdict(" ".join(c.text for c in turn), whole)
                cost.outcomes[outcome] = cost.outcomes.get(outcome, 0) + 1
                if outcome == "sent" and whole is not None:
                    for i, c in enumerate(turn):
                        c.final = whole.text if i == 0 else ""
            errs = [0, 0, 0]
            print(f"\n{conv.name}:")
            for clip in conv.clips:
                said = [c for c in cuts if c.clip is clip]
                first = " ".join(c.text for c in said)
                held = " ".join(c.text if c.final is None else c.final for c in said if c.final != "")
                e, n = word_errors(first, clip.reference)
                f, _ = word_errors(held, clip.reference)
                errs = [errs[0] + e, errs[1] + f, errs[2] + n]
                if e != f:
                    print(f"  {clip.name[:34]:34} WER {e / max(1, n):4.0%} → {f / max(1, n):4.0%}\n"
                          f"      ref: {clip.reference}\n    first: {first}\n     held: {held}")  # fmt: skip
            print(f"  {conv.name}: WER as first received {errs[0] / max(1, errs[2]):.1%} ({errs[0]}/{errs[2]}), "
                  f"after revisions {errs[1] / max(1, errs[2]):.1%} ({errs[1]}/{errs[2]})", flush=True)  # fmt: skip
            pooled = [a + b for a, b in zip(pooled, errs, strict=True)]
    engine.close()
    print(f"\noverall: WER as first received {pooled[0] / max(1, pooled[2]):.1%}, after revisions "
          f"{pooled[1] / max(1, pooled[2]):.1%} ({pooled[2]} reference words); revisions {cost.outcomes}")  # fmt: skip
    wall = cost.revise_wall
    print(f"engine CPU: first decodes {cost.cpu_first:.1f} s, revisions {cost.cpu_revise:.1f} s "
          f"(+{cost.cpu_revise / max(cost.cpu_first, 1e-9):.0%}); a revision's re-decode wall time p50 "
          f"{np.median(wall) * 1000 if wall else 0:.0f} ms, p95 {np.percentile(wall, 95) * 1000 if wall else 0:.0f} ms "
          f"(n={len(wall)})")  # fmt: skip


if __name__ == "__main__":
    main()
