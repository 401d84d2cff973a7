"""Where turns end on an open microphone in a crowd that never stops, with and without the crowd gate.

    python -m bench.bench_crowd_gate [--margins 0 8] [--crowds 6:15 6:10 6:5 3:10 10:10] [--only SET ...]

Segmenter only (the real Silero VAD, 20 ms frames as a phone streams them; no recogniser), so it runs in minutes.
Tracks: each phone of bench_fidelity's conversations (its turns, silent while the others speak), `reader` (the five
LibriVox clips twice over, 0.3 s apart: someone reading on, human speech) and `latecomer` (a phone whose speaker says
nothing for 30 s, then answers and reads: what a silent phone sends, and whether its first words are kept). Each is
heard clean (a room hum 55 dB under the speech), in pink noise at 5 and 0 dB SNR, and with each crowd VOICES:SNR_DB,
mixed as `bench_fidelity --crowd` mixes it (babble of Pico voices played backwards, talking all along; SNR against the
mean power of the phone's turns).
Per set, background and margin (`vad_crowd_margin_db`; 0 is no gate), summed over the set's phones:

- segments, and those cut at the 15 s cap (what is still open when the track ends is cut as the phone goes off);
- turns with less than 95% of their speech (the windows Silero calls voice on the clean track) inside a segment, and
  the mean share kept: what a gate that cuts inside a turn loses;
- turns split into several segments (the server's revisions rejoin those), segments holding several turns (merged:
  what a turn that does not end does), segments outside every turn (stray: crowd alone, left to the non-speech rules),
  and their seconds of audio (what the engine decodes only to reject);
- late: when a turn's last segment was cut after its last voiced window, median and max (a clean room: ~0.3 s, the
  silence that ends an utterance); a phone's first turn is cut when the gate knows the room (3 s on) at the soonest;
- the share of the time the gate saw a crowd;
- told: the phones that heard a voiced background (the server's `loud_room` notice, which offers push-to-talk), and
  when they first did (median).
`--backgrounds others:DB` adds a room of phones on one table: each phone also hears the others' turns DB under its own.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from babelfish.config import Settings
from babelfish.echoes import make_copy
from babelfish.segmenter import Segment, Segmenter, SegmenterConfig, silero_detector
from bench.bench_fidelity import PICO_TURNS, Conversation, build_set, track, with_crowd
from tests.audio import frames, librivox_clips, pcm16
from tests.engines.conversation_audio import at_snr, babble, pico, pink

SR = 16_000
Span = tuple[float, float]


@dataclass
class Phone:
    set: str
    speaker: str
    audio: np.ndarray  # its turns, silence between
    spans: list[Span]  # where its turns are
    conv: Conversation | None  # bench_fidelity's, whose crowd it hears


def reader() -> Phone:
    """Someone reading on: the LibriVox clips twice over, 0.3 s apart, after half a second."""
    parts, spans, at = [np.zeros(SR // 2, np.float32)], [], 0.5
    for _, audio, _ in librivox_clips() * 2:
        parts += [audio, np.zeros(int(0.3 * SR), np.float32)]
        spans.append((at, at + len(audio) / SR))
        at += len(audio) / SR + 0.3
    return Phone("reader", "A", np.concatenate(parts), spans, None)


def latecomer() -> Phone:
    """A phone on a café table whose speaker says nothing for its first 30 s (the crowd alone), then answers in short
    Pico turns (German, `pico-langs`' speaker) and reads two LibriVox clips, 1.5 s apart: what a silent phone sends,
    and whether its speaker's first words, after a long silence, are kept."""
    parts, spans, at = [np.zeros(30 * SR, np.float32)], [], 30.0
    turns = [pico(text, "de-DE") for text in PICO_TURNS["de"][1]]
    for audio in [*turns, *(clip for _, clip, _ in librivox_clips()[:2])]:
        audio = audio * (10 ** (-18 / 20) / np.sqrt(np.mean(audio**2)))  # one speaker: Pico is ~13 dB louder
        parts += [audio.astype(np.float32), np.zeros(int(1.5 * SR), np.float32)]
        spans.append((at, at + len(audio) / SR))
        at += len(audio) / SR + 1.5
    return Phone("latecomer", "A", np.concatenate(parts), spans, None)


def phones(only: list[str]) -> list[Phone]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for conv in build_set(Path(tmp)):
            if only and conv.name not in only:
                continue
            for speaker in sorted({c.speaker for c in conv.clips}):
                spans = [(t.start, t.end) for t in conv.turns if t.clip.speaker == speaker]
                out.append(Phone(conv.name, speaker, track(conv, speaker), spans, conv))
    if not only or "reader" in only:
        out.append(reader())
    if not only or "latecomer" in only:
        out.append(latecomer())
    return out


@dataclass
class Result:
    turns: int
    segments: int
    capped: int
    short_kept: int  # turns with under 95% of their speech in a segment
    kept: list[float]
    split: int
    merged: int
    stray: int
    stray_s: float  # their audio, seconds: what the engine decodes only to reject
    late: list[float]
    crowd: float
    told: list[float]  # per phone, when its segmenter first heard a voiced background (inf: never)


def placed(s: Segment, threshold: float) -> tuple[float, float]:
    """Where a segment's audio lies, as one phone per voice places it (its last voiced window, as the crowd gate let it
    count, arrived at speech_end): not always when it was cut, since the gate judges a segment again as it turns on
    and leaves the crowd's tail out of a turn."""
    start = make_copy("", s, threshold).t0
    return start, start + len(s.audio) / SR


def segment(audio: np.ndarray, config: SegmenterConfig) -> tuple[list[tuple[float, float, str, float]], float, float]:
    """The segments (where their audio lies, why and when each was cut), the share of the time the gate was on, and
    when the phone first heard a voiced background (the server's `loud_room` notice; inf: never)."""
    seg = Segmenter(silero_detector(), config)
    out: list[tuple[float, float, str, float]] = []
    crowd = n = 0
    told = float("inf")
    for i, frame in enumerate(frames(pcm16(audio))):
        now = (i + 1) * 0.02
        out += [(*placed(s, config.threshold), s.cut, now) for s in seg.feed(frame, now=now)]
        crowd += seg.in_crowd
        if seg.hears_crowd and told == float("inf"):
            told = now
        n += 1
    last = seg.end_utterance(now=n * 0.02)  # the phone goes off: what is still open is cut
    if last is not None:
        out.append((*placed(last, config.threshold), last.cut, n * 0.02))
    return out, crowd / max(1, n), told


def voiced_times(clean: np.ndarray, spans: list[Span]) -> list[np.ndarray]:
    """Per turn, the middle of each window Silero calls voice on the clean track."""
    n = len(clean) // 512
    probs = silero_detector().probabilities(clean[: n * 512].reshape(n, 512))
    t = (np.arange(n) + 0.5) * 512 / SR
    return [t[(t >= a) & (t < b) & (probs >= 0.5)] for a, b in spans]


def measure(audio: np.ndarray, spans: list[Span], voiced: list[np.ndarray], config: SegmenterConfig) -> Result:
    cuts, crowd, told = segment(audio, config)

    def overlaps(s: float, e: float, a: float, b: float) -> bool:
        return s < b and e > a

    kept = [float(np.mean([any(s <= x < e for s, e, *_ in cuts) for x in v])) if len(v) else 1.0 for v in voiced]
    # Late: when the turn's last segment was cut (the listener waits for that), after its last voiced window.
    late = [
        max(at for s, e, _, at in cuts if overlaps(s, e, a, b)) - v[-1]
        for (a, b), v in zip(spans, voiced, strict=True)
        if len(v) and any(overlaps(s, e, a, b) for s, e, *_ in cuts)
    ]
    return Result(
        turns=len(spans),
        segments=len(cuts),
        capped=sum(c == "max_length" for _, _, c, _ in cuts),
        short_kept=sum(k < 0.95 for k in kept),
        kept=kept,
        split=sum(sum(overlaps(s, e, a, b) for s, e, *_ in cuts) > 1 for a, b in spans),
        merged=sum(sum(overlaps(s, e, a, b) for a, b in spans) > 1 for s, e, *_ in cuts),
        stray=sum(not any(overlaps(s, e, a, b) for a, b in spans) for s, e, *_ in cuts),
        stray_s=sum(e - s for s, e, *_ in cuts if not any(overlaps(s, e, a, b) for a, b in spans)),
        late=late,
        crowd=crowd,
        told=[told],
    )


def told_text(told: list[float]) -> str:
    """How many phones heard a voiced background, of how many, and the median time they first did."""
    heard = [t for t in told if t < float("inf")]
    return f"{len(heard)}/{len(told)}" + (f" {np.median(heard):.1f} s" if heard else "")


def add(total: Result | None, r: Result) -> Result:
    if total is None:
        return r
    return Result(
        total.turns + r.turns, total.segments + r.segments, total.capped + r.capped, total.short_kept + r.short_kept,
        total.kept + r.kept, total.split + r.split, total.merged + r.merged, total.stray + r.stray,
        total.stray_s + r.stray_s, total.late + r.late, total.crowd + r.crowd, total.told + r.told,
    )  # fmt: skip


def mix(phone: Phone, hum: np.ndarray, background: str) -> np.ndarray:
    audio = phone.audio + hum
    speech = np.concatenate([phone.audio[int(a * SR) : int(b * SR)] for a, b in phone.spans])
    kind, *rest = background.split(":")
    if kind == "clean":
        return audio.astype(np.float32)
    if kind == "others":  # phones on one table: each hears the others' turns, this many dB under their own phones
        if phone.conv is None:
            return audio.astype(np.float32)
        others = [track(phone.conv, s) for s in {c.speaker for c in phone.conv.clips} if s != phone.speaker]
        near = np.sum([o[: len(audio)] for o in others], axis=0) * 10 ** (-float(rest[0]) / 20)
        return (audio + np.pad(near, (0, len(audio) - len(near)))).astype(np.float32)
    if kind == "pink":
        noise = pink(len(audio) / SR, 0.5, np.random.default_rng(7))
        return (audio + at_snr(noise, float(np.mean(speech**2)), float(rest[0]))).astype(np.float32)
    voices, snr = int(rest[0]), float(rest[1])
    if phone.conv is not None:  # the very crowd bench_fidelity --crowd plays to this phone
        return with_crowd(phone.conv, phone.speaker, audio, voices, snr)
    crowd = babble(len(audio) / SR + 0.1, 0.5, np.random.default_rng(5), talkers=voices)[: len(audio)]
    return (audio + at_snr(crowd, float(np.mean(speech**2)), snr)).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--margins", type=float, nargs="+", default=[0.0, Settings().vad_crowd_margin_db])
    p.add_argument("--crowds", nargs="+", default=["6:15", "6:10", "6:5", "3:10", "10:10"], metavar="VOICES:SNR_DB")
    p.add_argument("--backgrounds", nargs="+", default=["clean", "pink:5", "pink:0"], help="besides the crowds")
    p.add_argument("--only", nargs="+", default=[], help="bench_fidelity sets, reader and/or latecomer")
    args = p.parse_args()
    base = SegmenterConfig.from_settings(Settings())
    backgrounds = [*args.backgrounds, *(f"crowd:{c}" for c in args.crowds)]
    print(
        "set          background     margin  turns segs capped  <95%kept  kept   split merged stray (s)  late p50/max"
        "  crowd  told (first, median)"
    )
    by_set: dict[str, list[Phone]] = {}
    for phone in phones(args.only):
        by_set.setdefault(phone.set, []).append(phone)
    for name, group in by_set.items():
        prepared = []
        for phone in group:
            speech = np.concatenate([phone.audio[int(a * SR) : int(b * SR)] for a, b in phone.spans])
            hum = at_snr(pink(len(phone.audio) / SR, 0.5, np.random.default_rng(99)), float(np.mean(speech**2)), 55)
            prepared.append((phone, hum, voiced_times(phone.audio + hum, phone.spans)))
        for background in backgrounds:
            # Mixed once for every margin: a crowd is dozens of Pico syntheses.
            mixes = [(mix(phone, hum, background), phone, voiced) for phone, hum, voiced in prepared]
            for margin in args.margins:
                total: Result | None = None
                for audio, phone, voiced in mixes:
                    r = measure(audio, phone.spans, voiced, replace(base, crowd_margin_db=margin))
                    total = add(total, replace(r, crowd=r.crowd * r.turns))
                assert total is not None
                late = f"{np.median(total.late):.2f}/{max(total.late):.2f}" if total.late else "-"
                print(
                    f"{name:12} {background:14} {margin:5.1f}  {total.turns:5} {total.segments:4} {total.capped:5}"
                    f"  {total.short_kept:4}      {np.mean(total.kept):.3f} {total.split:5} {total.merged:6}"
                    f" {total.stray:5} {total.stray_s:5.0f}  {late:>11}  {total.crowd / total.turns:.2f}"
                    f"  {told_text(total.told)}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
