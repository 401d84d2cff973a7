"""What revisions buy and cost, decoded offline: bench_fidelity's conversational set, each speaker's track cut by the
server's segmenter, each utterance transcribed alone (what listeners get first), then every turn re-decoded whole
(what they hold after the `revision`), both scored against the whole-clip reference and against what was said.

    python -m bench.bench_revisions [--data-dir data] [--only librivox-cut ...] [--gap 1.2]
                                    [--modes standard-beam5 short-greedy ...] [--first-beam 5]

No server and no clock: the segmenter runs on the tracks' own timeline and turns are grouped by the server's rule
(babelfish/turns.py: pauses up to `--gap`, at most 28 s, nobody else speaking in between), so the word error rates do
not depend on the machine's load. Each mode is a way to decode the revision (window × beam: `short` is the fresh
path's clip + 2 s tail, at least 10 s; `standard` is faster-whisper's transcribe, 30 s window); each is applied to the
turns of two or more pieces, and to every turn (one-piece turns too: `revision_single_pieces`). `--first-beam N`
also decodes every utterance as a careful first pass (beam N on the fresh path's window, as the server does when no
other transcription waits), to weigh a beam there; `first` is the first pass decoded greedily (the engine behind).
The engine's CPU time (process time, all threads) and wall time per decode are measured in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from babelfish.turns import Piece, Turn
from bench.bench_fidelity import SR, Clip, build_set, errors, references, speaker_language, track

# name: (window, beam) of a revision's re-decode
MODES = {
    "short-greedy": ("short", 1),  # before: the fresh path's own decode, on the joined audio
    "short-beam5": ("short", 5),
    "standard-greedy": ("standard", 1),
    "standard-beam5": ("standard", 5),  # the reference's way
}


@dataclass
class Cut:
    piece: Piece
    speaker: str
    clip: Clip
    text: str = ""
    beam_text: str = ""  # the first pass with --first-beam
    # mode -> scope ("multi", "all") -> the turn's text on its first piece, "" on the others (revision sent)
    final: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Cost:
    cpu: float = 0.0
    speech: float = 0.0  # seconds of audio decoded
    wall: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, cpu: float, wall: float, seconds: float, outcome: str = "") -> None:
        self.cpu += cpu
        self.speech += seconds
        self.wall.append(wall)
        if outcome:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def line(self) -> str:
        w = self.wall
        p50 = np.median(w) * 1000 if w else 0
        p95 = np.percentile(w, 95) * 1000 if w else 0
        return (f"CPU {self.cpu:6.1f} s ({self.cpu / max(self.speech, 1e-9) * 1000:4.0f} ms per speech s), wall p50 "
                f"{p50:5.0f} ms p95 {p95:5.0f} ms (n={len(w)}) {self.outcomes or ''}")  # fmt: skip


def cut(conv, speaker: str) -> list[Piece]:
    # Pieces read whole (early reads off: no `read_until`), as the figures in docs/benchmarks.md were measured.
    config = dataclasses.replace(SegmenterConfig.from_settings(Settings()), early_read_ms=0)
    seg = Segmenter(silero_detector(), config)
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


def timed(fn):  # type: ignore[no-untyped-def]
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


class Tally:
    """Word errors per (set, column) against the reference and against what was said."""

    def __init__(self) -> None:
        self.errors: dict[tuple[str, str, str], list[int]] = {}
        self.clip_wers: dict[tuple[str, str], list[float]] = {}

    def add(self, conv: str, column: str, hyp: str, clip: Clip) -> tuple[int, int]:
        e, n = errors(hyp, clip.reference, clip.language)
        s, m = errors(hyp, clip.said, clip.language) if clip.said else (0, 0)
        for key in ((conv, column, "ref"), ("all", column, "ref")):
            self.errors.setdefault(key, [0, 0])
            self.errors[key] = [self.errors[key][0] + e, self.errors[key][1] + n]
        for key in ((conv, column, "said"), ("all", column, "said")):
            self.errors.setdefault(key, [0, 0])
            self.errors[key] = [self.errors[key][0] + s, self.errors[key][1] + m]
        for key2 in ((conv, column), ("all", column)):
            self.clip_wers.setdefault(key2, []).append(e / max(1, n))
        return e, n

    def row(self, conv: str, column: str) -> str:
        e, n = self.errors.get((conv, column, "ref"), [0, 0])
        s, m = self.errors.get((conv, column, "said"), [0, 0])
        wers = self.clip_wers.get((conv, column), [0.0])
        return (f"{e / max(1, n):6.1%} ({e:3}/{n:3})  mean per clip {np.mean(wers):6.1%}  worst {max(wers):4.0%}  "
                f"vs said {s / max(1, m):6.1%} ({s}/{m})")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="data")
    p.add_argument("--only", nargs="*")
    p.add_argument("--gap", type=float, default=Settings().turn_gap_seconds)
    p.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    p.add_argument("--first-beam", type=int, default=0, help="also decode every utterance with this beam")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    from babelfish.engines.cascade import CascadeEngine
    from babelfish.engines.cascade.asr import WhisperAsr

    data_dir = Path(args.data_dir)
    settings = Settings(data_dir=data_dir, threads=2, natural_voices=False, asr_beam_size=max(1, args.first_beam))
    engine = CascadeEngine.load(settings)
    asr = engine.asr
    assert isinstance(asr, WhisperAsr)
    first, first_beam = Cost(), Cost()
    costs = {(mode, scope): Cost() for mode in args.modes for scope in ("multi", "single")}
    tally = Tally()
    columns = ["first"] + (["first-beam"] if args.first_beam else [])
    columns += [f"{mode}/{scope}" for mode in args.modes for scope in ("multi", "all")]
    with tempfile.TemporaryDirectory() as tmp:
        convs = [c for c in build_set(Path(tmp)) if not args.only or c.name in args.only]
        references([c for conv in convs for c in conv.clips], data_dir, sampled=False)
        for conv in convs:
            cuts: list[Cut] = []
            for speaker in sorted({c.speaker for c in conv.clips}):
                lang = speaker_language(conv, speaker)
                mine = [t for t in conv.turns if t.clip.speaker == speaker]
                for piece in cut(conv, speaker):
                    clip = min(mine, key=lambda t, p=piece: abs(t.end - p.speech_end)).clip  # type: ignore[misc]
                    u = Utterance(piece.audio, None if lang == "auto" else lang, (), piece.speech_probs)
                    got, cpu, wall = timed(lambda u=u: engine.transcribe(u))
                    first.add(cpu, wall, piece.seconds)
                    if got is None:
                        continue
                    c = Cut(Piece(piece.utterance_id, piece.audio, piece.speech_probs, got.text, got.language,
                                  piece.speech_end, piece.speaker), speaker, clip, got.text)  # fmt: skip
                    if args.first_beam:
                        careful = dataclasses.replace(u, careful=True)  # as the server when nothing else waits
                        beamed, cpu, wall = timed(lambda u=careful: engine.transcribe(u))
                        first_beam.add(cpu, wall, piece.seconds)
                        c.beam_text = beamed.text if beamed is not None else ""
                    cuts.append(c)
            for turn in turns(cuts, args.gap, Settings().turn_max_seconds):
                audio = np.concatenate([c.piece.audio for c in turn])
                lang = speaker_language(conv, turn[0].speaker)
                if lang == "auto" and len({c.piece.language for c in turn}) == 1:
                    lang = turn[0].piece.language  # as the server's Reviser: the pieces' language
                probs = np.concatenate([c.piece.speech_probs for c in turn])
                pieces = " ".join(c.text for c in turn)
                held = pieces if len(turn) == 1 else None  # as the server's Reviser
                u = Utterance(audio, None if lang == "auto" else lang, (), probs, revision=True, held=held)
                voiced = Turn("bench", pieces=[c.piece for c in turn]).voiced_seconds() if len(turn) == 1 else None
                for mode in args.modes:
                    asr.revision_window, asr.revision_beam = MODES[mode]
                    whole, cpu, wall = timed(lambda u=u: engine.transcribe(u))
                    outcome = verdict(pieces, whole, voiced)
                    scope = "multi" if len(turn) > 1 else "single"
                    costs[(mode, scope)].add(cpu, wall, len(audio) / SR, outcome)
                    for i, c in enumerate(turn):
                        text = (whole.text if i == 0 else "") if outcome == "sent" and whole is not None else c.text
                        c.final[mode] = {"all": text, "multi": text if len(turn) > 1 else c.text}
            print(f"\n{conv.name}:")
            for clip in conv.clips:
                said = [c for c in cuts if c.clip is clip]
                got = {"first": " ".join(c.text for c in said)}
                if args.first_beam:
                    got["first-beam"] = " ".join(c.beam_text for c in said)
                for mode in args.modes:
                    for scope in ("multi", "all"):
                        got[f"{mode}/{scope}"] = " ".join(c.final[mode][scope] for c in said if c.final[mode][scope])
                errs = {col: tally.add(conv.name, col, got[col], clip) for col in columns}
                if args.verbose or len({e for e, _ in errs.values()}) > 1:
                    print(f"  {clip.name[:40]}\n      ref: {clip.reference}\n     said: {clip.said}")
                    for col in columns:
                        e, n = errs[col]
                        print(f"    {col:26} {e / max(1, n):4.0%} {got[col]}")
            for col in columns:
                print(f"  {conv.name:12} {col:26} {tally.row(conv.name, col)}", flush=True)
    engine.close()
    print("\noverall, WER pooled against the reference (and against what was said):")
    for col in columns:
        print(f"  {col:26} {tally.row('all', col)}")
    print("\ncost:")
    print(f"  first pass (greedy)        {first.line()}")
    if args.first_beam:
        print(f"  first pass (beam {args.first_beam})        {first_beam.line()}")
    for (mode, scope), cost in costs.items():
        print(f"  {mode + ' ' + scope:26} {cost.line()}")


if __name__ == "__main__":
    main()
