"""Babble against speech: how often a crowd passes as speech, and whether real turns are kept.

    python -m bench.bench_nonspeech [--data-dir data] [--seeds 8] [--first-seed 0] [--talkers 6 8 10 16]
                                    [--peaks 0.1 0.3 0.6 0.9] [--no-speech-set] [--beam 5] [--loops]
                                    [--noisy-speech 10 5 3 0] [--noise-talkers 6] [--noise-pad 0.5]
                                    [--noise-seed 7] [--short-turns] [--bursts] [--vocal]
                                    [--vocal-crowd VOICES SNR_DB] [--records segments.jsonl]

Babble: `talkers` Pico voices at once, played backwards (tests/engines/conversation_audio.py), 4 s at each peak level,
one mix per seed. Speech: every turn of bench_fidelity's set (LibriVox whole and cut at its pauses, short Pico turns,
espeak-ng), language given. Each is streamed through the real segmenter (20 ms frames, then a second of silence) and
the cascade engine's recogniser and non-speech decision, as the server does. Prints, per group: segments the VAD cut,
segments Whisper wrote words for, and those that pass as speech ("judged whole": those that would pass without the
near-voice rule's look at the segment's loud part), with the rule that rejected the others; then the
decoder's statistics (avg_logprob, no_speech_prob), the segmenter's voiced confidence and the loudness spread
(nonspeech.level_spread) of the segments with words, speech against babble, which the rules' thresholds
(babelfish/engines/cascade/nonspeech.py) were set on.

`--beam N`: every segment is decoded as a careful first pass with a beam of N (`asr_beam_size`; the server does so
when no other transcription waits); 1 (default): greedily, as a first pass while the engine is behind.
`--noisy-speech SNR...`: also speech in noise, at each SNR in dB (against the mean power of the clip with half a second
of silence either side, whatever `--noise-pad`; about 1.5-2 dB under the clip's own for 1.5-3 s clips): the human
recordings of pocketsphinx-testdata (AN4 `cards`, goforward, numbers, something, TIDIGITS, the five LibriVox sentences)
and the Pico sentences of bench_fidelity's `pico-langs` set, each padded with `--noise-pad` seconds (0.5) of silence, in
pink noise and over babble of `--noise-talkers` voices (6, peak 0.5) covering the whole clip; per condition, the
segments, those passing, the rules that rejected the others, turns with no passing segment (a turn whose speech was
dropped still counts as kept when a cut of the noise around it passed), and the lowest loudness spread of a passing
segment.
`--short-turns`: `--noisy-speech` also for the short Pico turns ("Good morning.", "Sure.", "Ja."; their noise drawn
apart, so the sentences' mixes stay the same). `--bursts`: also noises that are not words (a door slam, keyboard
clicks, a tone sweep, white noise; peaks 0.3 and 0.9) over babble of three and six voices (peak 0.3), one mix per
seed: what passes, and what would pass judged whole.
`--vocal`: also coughs, sneezes, laughs and screams (tests/audio.py's HUMAN_SOUNDS): alone, beside seven short replies,
and over the middle of the `--noisy-speech` clips (`vocal`). `--vocal-crowd VOICES SNR_DB`: the replies beside a
sound again, with babble of VOICES voices talking all through, SNR_DB under the reply; the babble and speech sets are
then left out. Prints which replies are lost beside a sound that were heard without one, and which texts match no
reply.
`--records FILE`: also every segment with words as one JSON line (group, text, the decoder's statistics, the segmenter's
voiced seconds and confidence, the loudness spread and loud part, syllables, the rule that rejected it), for trying
other thresholds without decoding again.
`--loops`: also the loop rule (loops.py) with that beam: short Pico turns and phrases said three times, decoded
without the 10 s minimum window (Whisper base loops then), at three length caps (where does a looping decode stop?),
and what `repair_loop` made of each; and, on the short turns with the shipped window, how often each decode says a
phrase twice in a row (cut by the segmenter, and padded with silence as in tests/engines/test_cascade_revision.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import zlib
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from babelfish.config import Settings
from babelfish.engines.base import SAMPLE_RATE, Utterance
from babelfish.engines.cascade import CascadeEngine
from babelfish.engines.cascade import asr as asr_module
from babelfish.engines.cascade.asr import Recognized, WhisperAsr
from babelfish.engines.cascade.loops import counts_script, syllables
from babelfish.engines.cascade.nonspeech import (
    SEGMENTER_WINDOW,
    SOUNDED,
    VOICED,
    Voicing,
    rejection,
    sure_part,
    sure_runs,
    sure_stretches,
    surest_stretch,
    window_db,
    without_laughter,
)
from babelfish.repeats import doubled, words
from babelfish.segmenter import Segment
from tests.audio import HUMAN_SOUNDS, TESTDATA, at_peak, read_raw, read_sound, read_wav, segments
from tests.engines.conversation_audio import NOISES, SHORT_TURNS, at_snr, babble, pico, pink
from tests.kernels import PATHS, kernels_line, select

SR = SAMPLE_RATE

# Said three times: a repetition that must be kept (docs/benchmarks.md, "Repetitions said vs decoder loops").
SAID_THRICE = [("No, no, no!", "en-US"), ("Yes yes yes.", "en-US"), ("Go, go, go!", "en-US"), ("Sí, sí, sí.", "es-ES"),
               ("Thank you, thank you, thank you.", "en-GB")]  # fmt: skip
# bench_fidelity's `short` set, and a few more short turns.
SHORT_SET = [("Good morning to you too.", "en-GB"), ("Right.", "en-GB"), ("Fail again.", "en-GB"),
             ("Not at all.", "en-GB"), ("Sure.", "en-GB"), ("You are welcome.", "en-GB"), ("Okay.", "en-US"),
             ("Try again.", "en-US"), ("Ever tried.", "en-US"), ("No matter.", "en-GB"), ("Good morning.", "en-GB"),
             ("Guten Morgen.", "de-DE"), ("Sí.", "es-ES"), ("Ja.", "de-DE"), ("Danke schön.", "de-DE")]  # fmt: skip


class Tally:
    def __init__(self, group: str = "", records: list[dict[str, object]] | None = None) -> None:
        self.group = group
        self.records = records  # every segment with words goes here, for `--records`
        self.segments = self.worded = self.passed = 0
        # Judged as a whole (the segment's loud part not looked at: the rules before the near-voice rule)
        self.passed_whole = 0
        self.clips_passed_whole: set[str] = set()
        self.reasons: Counter[str] = Counter()
        self.reread = self.kept_part = 0  # segments rejected whole whose sure part was read alone; kept so
        self.read_span: tuple[int, int] | None = None  # the samples the last text passing was read from, in its segment
        self.examples: list[str] = []
        self.rejected: list[str] = []  # what each rejected segment said, and why
        self.lowest_passing_spread = float("inf")  # dB, over the segments that pass
        # (avg_logprob, no_speech_prob, voiced confidence, loudness spread in dB)
        self.stats: list[tuple[float, float, float, float]] = []

    def add(self, engine: CascadeEngine, seg: Segment, language: str, clip: str = "") -> str | None:
        """The decision for one segment (a careful first pass); returns the text when it passes."""
        self.segments += 1
        # Read as the server reads it (with early reads on, the pause after `read_until` as zero: babelfish/early.py).
        utterance = Utterance(seg.audio, language, speech_probs=seg.speech_probs, careful=True,
                              read_until=seg.read_until)  # fmt: skip
        heard = engine.hear(utterance)
        if heard is None:
            self.reasons["no words"] += 1
            return None
        rec, voicing, why = heard.rec, heard.voicing, heard.rejected
        self.worded += 1
        # A second read (`CascadeEngine.hear`): kept, or tried and rejected (then `heard` is the whole, as judged).
        kept = heard.span is not None
        self.kept_part += kept
        self.reread += kept or (why in SOUNDED and sure_part(seg.speech_probs, voicing, why) is not None)
        nan = float("nan")
        spread = voicing.level_spread_db if voicing is not None else None
        said_spread = "" if spread is None else f", loudness spread {spread:.1f} dB"
        self.stats.append((rec.avg_logprob, rec.no_speech_prob, voicing.confidence if voicing is not None else nan,
                           nan if spread is None else spread))  # fmt: skip
        # Judged whole: the segment itself (not its sure part read alone) would pass without its loud part looked at.
        if heard.span is None and rejection(rec, replace(voicing, loud=None) if voicing is not None else None) is None:
            self.passed_whole += 1
            self.clips_passed_whole.add(clip)
        if self.records is not None:
            extra = {"part": heard.span is not None, "whole_rule": heard.whole_rejected, "language": rec.language}
            self.records.append(record(self.group, clip, seg, rec, voicing, why) | extra)
        if why is not None:
            self.reasons[why] += 1
            loud = voicing.loud if voicing is not None else None
            said_loud = "" if loud is None else f", loud part {loud.share:.2f} of voiced, {loud.confidence:.2f} sure"
            self.rejected.append(f"{why}: {rec.text!r} (no-speech {rec.no_speech_prob:.2f}{said_spread}{said_loud})")
            return None
        self.passed += 1
        self.read_span = heard.span or (0, len(seg.audio))
        if spread is not None:
            self.lowest_passing_spread = min(self.lowest_passing_spread, spread)
        conf = f"{voicing.confidence:.2f}, {voicing.voiced_seconds:.1f} s voiced" if voicing else "no voicing"
        conf += said_spread + (f", its sure part alone (whole: {heard.whole_rejected})" if heard.span else "")
        stats = f"logprob {rec.avg_logprob:.2f}, no-speech {rec.no_speech_prob:.2f}, {conf}"
        self.examples.append(f"{rec.text!r} ({stats})")
        return without_laughter(rec.text, rec.language)  # what the engine sends

    def line(self, name: str) -> str:
        why = ", ".join(f"{k} {v}" for k, v in self.reasons.most_common())
        passed = f"pass {self.passed:3} (judged whole {self.passed_whole:3})"
        again = f"  sure part read alone {self.reread} (kept {self.kept_part})" if self.reread else ""
        return f"  {name:28} segments {self.segments:3}  with words {self.worded:3}  {passed}  ({why}){again}"


def record(
    group: str, clip: str, seg: Segment, rec: Recognized, voicing: Voicing | None, why: str | None
) -> dict[str, object]:
    """One segment with words, for `--records`: what every rule reads, and the decision."""
    loud = voicing.loud if voicing is not None else None
    return {"group": group, "clip": clip, "text": rec.text, "avg_logprob": rec.avg_logprob,
            "no_speech": rec.no_speech_prob, "seconds": len(seg.audio) / SR,
            "confidence": voicing.confidence if voicing is not None else None,
            "voiced_seconds": voicing.voiced_seconds if voicing is not None else None,
            "spread_db": voicing.level_spread_db if voicing is not None else None,
            "loud_share": loud.share if loud is not None else None,
            "loud_confidence": loud.confidence if loud is not None else None,
            "syllables": syllables(rec.text) if counts_script(rec.text) else None, "rule": why}  # fmt: skip


def spread(name: str, stats: list[tuple[float, float, float, float]]) -> str:
    """min / p5 / median / p95 / max of each statistic."""
    if not stats:
        return f"  {name}: none"
    cols = np.array(stats)
    out = [f"  {name} (n={len(stats)}):"]
    for i, label in enumerate(("avg_logprob", "no_speech_prob", "voiced confidence", "loudness spread dB")):
        q = np.nanpercentile(cols[:, i], [0, 5, 50, 95, 100])
        out.append(f"    {label:18} " + " / ".join(f"{v:6.2f}" for v in q) + "   (min / p5 / median / p95 / max)")
    return "\n".join(out)


def loops(engine: CascadeEngine) -> None:
    """Without the minimum window Whisper base loops on short clips: where does a looping decode stop, with this
    beam, and what does repair_loop make of it? Then: phrases said twice in a row, with the shipped window."""
    asr = engine.asr
    assert isinstance(asr, WhisperAsr)
    print(f"loops (no minimum window), first pass beam {asr.beam_size}:")
    print("  clip                              voiced  cap: tokens at cap / 42 / 200  greedy-at-cap  -> sent (looped)")
    shipped = asr_module.MIN_WINDOW_SECONDS
    asr_module.MIN_WINDOW_SECONDS = 0.0
    try:
        for text, voice in [*SHORT_TURNS, *SAID_THRICE]:
            for seg in segments(pico(text, voice)):
                voicing = Voicing.of(seg.speech_probs)
                voiced = voicing.voiced_seconds if voicing is not None else None
                seconds = len(seg.audio) / 16000
                encoded = asr._encode(seg.audio)
                lang = asr._tok.token_to_id(f"<|{voice[:2]}|>")
                prompt = [asr._sot, lang, asr._task["transcribe"], asr._no_ts]
                cap = int(20 + 12 * seconds)
                lengths = []
                for max_length in (cap, 42, 200):
                    (res,) = asr._model.generate(
                        encoded, [prompt], beam_size=asr.beam_size, max_length=max_length, suppress_blank=True
                    )
                    lengths.append(len(res.sequences_ids[0]))
                (greedy,) = asr._model.generate(encoded, [prompt], beam_size=1, max_length=cap, suppress_blank=True)
                rec = asr.recognize(seg.audio, voice[:2], (), voiced, careful=True)
                sent = f"{rec.text!r} ({rec.looped})" if rec else "None"
                print(f"  {text[:32]:32} {voiced or 0:5.2f} s  {cap:3}: {lengths[0]:3} / {lengths[1]:3} / "
                      f"{lengths[2]:3}  {len(greedy.sequences_ids[0]):3}  -> {sent}")  # fmt: skip
    finally:
        asr_module.MIN_WINDOW_SECONDS = shipped
    print(f"phrases said twice in a row (shipped window), beam {asr.beam_size} against greedy:")
    counts: Counter[str] = Counter()
    for text, voice in [*SHORT_TURNS, *SHORT_SET, *SAID_THRICE]:
        audio = pico(text, voice)
        padded = np.concatenate([np.zeros(3200, np.float32), audio, np.zeros(4800, np.float32)])
        said = doubled(words(text))
        cut = [(s.audio, Voicing.of(s.speech_probs)) for s in segments(audio)]
        for how, audio_, voicing in [*(("cut", a, v) for a, v in cut), ("padded", padded, None)]:
            voiced = voicing.voiced_seconds if voicing is not None else None
            seconds = len(audio_) / 16000
            encoded = asr._encode(audio_)
            decodes = {
                "greedy": asr._decode(encoded, voice[:2], "transcribe", seconds, voiced or seconds).text,
                "beam": asr._decode(encoded, voice[:2], "transcribe", seconds, voiced or seconds, asr.beam_size).text,
            }
            rec = asr.recognize(audio_, voice[:2], (), voiced, careful=True)
            decodes["sent"] = rec.text if rec else ""
            more = {k: doubled(words(t)) > said for k, t in decodes.items()}
            counts.update(f"{how} {k}" for k, v in more.items() if v)
            counts[f"{how} turns"] += 1
            counts[f"{how} guard ran greedy"] += doubled(words(decodes["beam"])) > 0
            if any(more.values()):
                print(f"  {how:6} {text!r}: " + ", ".join(f"{k} {t!r}" for k, t in decodes.items()))
    for how in ("cut", "padded"):
        print(f"  {how}: {counts[f'{how} turns']} turns; a phrase twice that was said once: greedy "
              f"{counts[f'{how} greedy']}, beam {counts[f'{how} beam']}, sent (beam, guarded) {counts[f'{how} sent']};"
              f" guard decoded greedy too for {counts[f'{how} guard ran greedy']}")  # fmt: skip


def testdata_speech() -> list[tuple[str, np.ndarray, str]]:
    """(name, audio, language) of the human recordings, and of the Pico sentences of bench_fidelity's `pico-langs`."""
    from bench.bench_fidelity import PICO_TURNS

    out = []
    raws = [TESTDATA / n for n in ("goforward.raw", "numbers.raw", "something.raw")]
    for path in [*sorted((TESTDATA / "cards").glob("*.wav")), *raws, *sorted((TESTDATA / "tidigits").glob("*.raw")),
                 *sorted((TESTDATA / "librivox").glob("*.wav"))]:  # fmt: skip
        out.append((path.name, read_wav(path) if path.suffix == ".wav" else read_raw(path), "en"))
    for language, (voice, texts) in PICO_TURNS.items():
        out += [(text, pico(text, voice), language) for text in texts[3:]]
    return out


def noisy_speech(engine: CascadeEngine, args: argparse.Namespace, records: list[dict[str, object]] | None) -> None:
    """Speech in pink noise and over babble: what passes, and which turns lose every segment."""
    clips = testdata_speech()
    rng = np.random.default_rng(args.noise_seed)
    pad = np.zeros(int(args.noise_pad * 16000), np.float32)
    print(f"speech in noise ({len(clips)} clips: pocketsphinx-testdata and Pico, {args.noise_pad:g} s of noise"
          f" around each, seed {args.noise_seed}), first pass careful:")  # fmt: skip
    # The short turns draw their own noise, so the sentences' mixes stay those of runs without them.
    short = [(text, pico(text, voice), voice[:2]) for text, voice in SHORT_SET] if args.short_turns else []
    short_rng = np.random.default_rng(args.noise_seed + 1000)
    for noise in ("pink", "babble"):
        said = "pink" if noise == "pink" else f"{args.noise_talkers}-voice babble"
        for snr in args.noisy_speech:
            for label, group, gen in [("", clips, rng), ("short turns, ", short, short_rng)]:
                if group:
                    _noisy_group(engine, args, records, f"{label}{said} at {snr:g} dB", group, noise, gen, pad, snr)


def _noisy_group(
    engine: CascadeEngine, args: argparse.Namespace, records: list[dict[str, object]] | None, name: str,
    clips: list[tuple[str, np.ndarray, str]], noise: str, rng: np.random.Generator, pad: np.ndarray, snr: float,
) -> None:  # fmt: skip
    tally, dropped = Tally(name, records), []
    for clip, clean, language in clips:
        padded = np.concatenate([pad, clean, pad])
        seconds = len(padded) / 16000 + 0.1
        cover = (pink(seconds, 1.0, rng) if noise == "pink"
                 else babble(seconds, 0.5, rng, talkers=args.noise_talkers))[: len(padded)]  # fmt: skip
        # Against the clip with half a second either side, whatever the pad: the SNR of every run means the same.
        reference = np.sum(clean**2) / (len(clean) + SR)
        mix = np.clip(padded + at_snr(cover, reference, snr), -1, 1).astype(np.float32)
        if not [s for s in segments(mix) if tally.add(engine, s, language, clip)]:
            dropped.append(clip[:24])
    rejected = "".join(f"\n      {r}" for r in tally.rejected)
    whole = len([clip for clip, _, _ in clips if clip not in tally.clips_passed_whole])
    print(tally.line(name) + f"  turns dropped {len(dropped)} {dropped or ''} (judged whole {whole})"
          f"  lowest spread passing {tally.lowest_passing_spread:.1f} dB" + rejected)  # fmt: skip


def bursts(engine: CascadeEngine, args: argparse.Namespace, records: list[dict[str, object]] | None) -> None:
    """Loud sounds that are not words (tests/engines/conversation_audio.py's NOISES) over babble: a brief loud part
    the segmenter may take for voice, which the near-voice rule must not pass."""
    print(f"noises over babble, first pass beam {args.beam}:")
    for talkers in (3, 6):
        for kind in ("door_slam", "keyboard", "sweep", "white"):
            tally = Tally(f"{kind} over {talkers} voices", records)
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                rng = np.random.default_rng(seed)
                crowd = babble(4.0, 0.3, rng, talkers=talkers)
                for peak in (0.3, 0.9):
                    mix = np.clip(crowd + NOISES[kind](4.0, peak, rng)[: len(crowd)], -1, 1).astype(np.float32)
                    for seg in segments(mix):
                        tally.add(engine, seg, "en", f"seed {seed} peak {peak}")
            print(tally.line(f"{kind} over {talkers} voices") + "".join(f"\n      {t}" for t in tally.examples))


# Short turns a vocal sound is put beside (`--vocal`), and where: before the turn with a 0.2 s gap (one segment with it)
# or 0.6 s (two), after it with 0.3 s.
VOCAL_TURNS = [("Yes.", "en-US"), ("Okay.", "en-US"), ("Good morning.", "en-GB"), ("Thank you very much.", "en-GB"),
               ("Ja.", "de-DE"), ("Sí.", "es-ES"), ("Oui.", "fr-FR")]  # fmt: skip
VOCAL_PLACES = [("before", 0.2), ("before", 0.6), ("after", 0.3)]
VOCAL_KINDS = ("Cough", "Sneeze", "Laugh", "Scream")


def vocal(engine: CascadeEngine, records: list[dict[str, object]] | None) -> None:
    """Sounds people make that are not words (real recordings, tests/audio.py's HUMAN_SOUNDS): alone, each at two
    levels and in three languages; then next to a short turn, as in a conversation; then over the middle of a sentence.
    A turn counts as lost when no word of what the segmenter and engine make of it alone, nor of the turn as written,
    is in the text that passes (a turn nothing of which passes alone is not counted); a text is extra when it shares
    no word with those."""
    _vocal_alone(engine, records)
    beside_turns(engine, records, None)
    _over_speech(engine, records)


def _vocal_alone(engine: CascadeEngine, records: list[dict[str, object]] | None) -> None:
    files = sorted(HUMAN_SOUNDS.iterdir())
    print(f"vocal sounds alone ({HUMAN_SOUNDS}), peaks 0.3 and 0.9, languages en de es, careful first pass:")
    for path in files:
        if path.suffix not in (".wav", ".mp3"):
            continue
        sound = np.concatenate([np.zeros(SR // 2, np.float32), at_peak(read_sound(path), 1.0)])
        tally = Tally(f"vocal {path.stem}", records)
        for peak in (0.3, 0.9):
            for language in ("en", "de", "es"):
                for seg in segments((sound * peak).astype(np.float32)):
                    tally.add(engine, seg, language, f"{path.stem} peak {peak} {language}")
        print(tally.line(path.stem) + "".join(f"\n      {t}" for t in tally.examples))


def beside_turns(
    engine: CascadeEngine, records: list[dict[str, object]] | None, crowd: tuple[int, float] | None
) -> None:
    """Each sound next to each short turn (VOCAL_TURNS, VOCAL_PLACES). With `crowd` (voices, SNR in dB), a crowd
    talks all through the mix, SNR under the turn's mean power, as bench_fidelity's `--crowd` puts it. Each turn has
    its own crowd (seeded by the turn), laid so that the turn hears the same stretch of it, at the same level, alone
    and beside every sound: what a turn loses beside a sound is the sound's doing."""
    over = "" if crowd is None else f", over {crowd[0]} voices at {crowd[1]:g} dB"
    print(f"vocal sounds beside a short turn (peak 0.5 each{over}):")
    gap = np.zeros(SR // 2, np.float32)
    crowds: dict[str, np.ndarray] = {}

    def heard(text: str, mix: np.ndarray, turn: np.ndarray, at: int) -> np.ndarray:
        """`mix` with the turn's crowd, the turn starting at sample `at`."""
        if crowd is None:
            return mix.astype(np.float32)
        if text not in crowds:
            rng = np.random.default_rng(zlib.crc32(f"vocal crowd/{text}".encode()))
            crowds[text] = at_snr(babble(CROWD_SECONDS, 0.5, rng, talkers=crowd[0]), float(np.mean(turn**2)), crowd[1])
        talk = np.take(crowds[text], np.arange(len(mix)) + CROWD_TURN_AT - at, mode="wrap")
        return np.clip(mix + talk, -1, 1).astype(np.float32)

    replies = {}  # each reply, the words of what the segmenter and engine make of it alone, and where its words lie
    unheard = []  # replies the crowd alone takes (nothing of them passes without a sound)
    for text, voice in VOCAL_TURNS:
        turn = at_peak(pico(text, voice), 0.5)
        said = [t for seg in segments(heard(text, np.concatenate([gap, turn, gap]), turn, len(gap)))
                if (t := Tally().add(engine, seg, voice[:2]))]  # fmt: skip
        # What it is heard as alone, and what was said (Whisper may hear "Oui." alone as "Ouais.")
        alone = {w for t in said for w in words(t)} | set(words(text))
        audible = np.flatnonzero(np.abs(turn) > 0.01)  # its words: Pico's own silence around them left out
        replies[text] = (turn, voice[:2], alone, (int(audible[0]), int(audible[-1]) + 1))
        if not said:
            unheard.append(text)
    if unheard:
        print(f"  lost without a sound (not counted as lost beside one): {unheard}")
    stretches = Stretches()
    for kind in VOCAL_KINDS:
        tally, lost, extra, turns, off_reply = Tally(f"{kind} beside a turn", records), [], [], 0, 0
        for path in sorted(HUMAN_SOUNDS.glob(f"{kind}-*")):
            sound = at_peak(read_sound(path), 0.5)
            for text, (turn, language, alone, (first, last)) in replies.items():
                for where, pause in VOCAL_PLACES:
                    quiet = np.zeros(int(pause * SR), np.float32)
                    parts = [sound, quiet, turn] if where == "before" else [turn, quiet, sound]
                    at = len(gap) + (len(sound) + len(quiet) if where == "before" else 0)
                    mix = heard(text, np.concatenate([gap, *parts, gap]), turn, at)
                    clip = f"{path.stem} {where} {pause:g} s {text}"
                    spoken = (at + first, at + last)
                    streamed = sent_windows(mix) if crowd is not None else None
                    texts = []
                    for seg in segments(mix):
                        start = offset(streamed, seg) if streamed is not None else 0
                        if crowd is not None:
                            stretches.add(seg, start, spoken)
                        if (t := tally.add(engine, seg, language, clip)) is None:
                            continue
                        texts.append(t)
                        if crowd is not None and tally.read_span is not None and not alone & set(words(t)):
                            read = (start + tally.read_span[0], start + tally.read_span[1])
                            off_reply += read[1] <= spoken[0] or read[0] >= spoken[1]
                    turns += 1
                    if text not in unheard and not alone & {w for t in texts for w in words(t)}:
                        lost.append(f"{clip}: {texts}")
                    extra += [f"{clip}: {t!r}" for t in texts if not alone & set(words(t))]
        # Over a crowd, a text read from none of the reply's samples is the sound's or the crowd's; the other extra
        # texts were read from audio holding the reply (most often the reply misheard).
        apart = "" if crowd is None else f" ({off_reply} read from none of the reply's audio)"
        print(
            tally.line(kind)
            + f"  turns {turns}, lost {len(lost)}, extra texts {len(extra)}{apart}"
            + "".join(f"\n      lost   {t}" for t in lost)
            + "".join(f"\n      extra  {t}" for t in extra)
        )
    if crowd is not None:
        print(stretches.line())


# Each turn's crowd (`beside_turns`), and the sample of it under the turn's start: 6 s either side, more than any mix
# reaches (4 s before the turn, 5.5 s after it).
CROWD_SECONDS = 12.0
CROWD_TURN_AT = 6 * SR


class Stretches:
    """Over a crowd: segments whose voiced windows run together (no run of them sure on average: `sure_part` then
    reads the stretch of sure windows it is surest of), for every segment cut, rejected or not. Of those with a sure
    stretch that is the reply's (half its windows or more within the reply's words), which choice would read the
    reply alone: the surest stretch (`surest_stretch`, shipped), the one with the loudest window, or all of them from
    the first to the last."""

    def __init__(self) -> None:
        self.together = self.with_reply = self.without_reply = 0
        self.surest = self.loudest = self.spanned = 0

    def add(self, seg: Segment, start: int, reply: tuple[int, int]) -> None:
        probs = seg.speech_probs
        if sure_runs(probs, np.flatnonzero(probs >= VOICED)):
            return  # a run of voice stands apart: the quiet room's way
        stretches = sure_stretches(probs)
        if not stretches:
            return
        self.together += 1
        w = SEGMENTER_WINDOW

        def is_reply(run: np.ndarray) -> bool:
            inside = (start + run * w >= reply[0]) & (start + (run + 1) * w <= reply[1])
            return bool(np.count_nonzero(inside) * 2 >= len(run))

        if not any(is_reply(r) for r in stretches):
            self.without_reply += 1
            return
        self.with_reply += 1
        self.surest += is_reply(surest_stretch(probs, stretches))
        n = len(seg.audio) // w
        db = window_db(seg.audio, n)
        self.loudest += is_reply(max(stretches, key=lambda r: float(db[r[r < n]].max(initial=-np.inf))))
        self.spanned += all(is_reply(r) for r in stretches)

    def line(self) -> str:
        return (f"  segments whose voice runs together, with a sure stretch: {self.together}; one of them the reply's:"
                f" {self.with_reply} (none: {self.without_reply}); the reply's alone read, by the surest stretch"
                f" {self.surest}, the loudest {self.loudest}, all of them {self.spanned}")  # fmt: skip


def sent_windows(mix: np.ndarray) -> np.ndarray:
    """`mix` as tests/audio.py's `segments` streams it (16-bit samples, a second of silence after), in segmenter
    windows: for `offset`."""
    w = SEGMENTER_WINDOW
    sent = (np.clip(np.concatenate([mix, np.zeros(SR, np.float32)]), -1, 1) * 32767).astype("<i2")
    return sent[: len(sent) // w * w].reshape(-1, w)


def offset(windows: np.ndarray, seg: Segment) -> int:
    """Where `seg` begins in the mix streamed as `windows` (`sent_windows`). A segment begins on a segmenter window;
    its first window's samples are looked for at each."""
    w = SEGMENTER_WINDOW
    head = np.round(seg.audio[:w] * 32768).astype("<i2")
    found = np.flatnonzero(np.all(windows == head, axis=1))
    if len(found) != 1:
        raise RuntimeError(f"a segment's start found {len(found)} times in its mix")
    return int(found[0]) * w


def _over_speech(engine: CascadeEngine, records: list[dict[str, object]] | None) -> None:
    """A sound over the middle of a sentence (a laugh, a cough or a door while someone speaks): the voice's own loud
    part is then partly the sound's, which the rule for sounds must not take for the whole."""
    print("sounds over the middle of each --noisy-speech clip (as loud as the speech at its peak):")
    gap = np.zeros(SR // 2, np.float32)
    clips = testdata_speech()
    overlays = {p.stem: read_sound(p) for kind in VOCAL_KINDS for p in sorted(HUMAN_SOUNDS.glob(f"{kind}-*"))[:1]}
    overlays["door_slam"] = NOISES["door_slam"](1.0, 1.0, np.random.default_rng(0))
    # What each clip alone gives, decoded once for every sound laid over it.
    alones = {clip: [t for seg in segments(np.concatenate([gap, clean])) if (t := Tally().add(engine, seg, language))]
              for clip, clean, language in clips}  # fmt: skip
    for label, over in overlays.items():
        tally, dropped, changed = Tally(f"{label} over speech", records), [], 0
        for clip, clean, language in clips:
            alone = alones[clip]
            mix = np.concatenate([gap, clean, gap])
            over_it = at_peak(over, float(np.abs(clean).max()))
            i = max(0, len(gap) + (len(clean) - len(over_it)) // 2)
            n = min(len(over_it), len(mix) - i)
            mix[i : i + n] += over_it[:n]
            texts = [t for seg in segments(np.clip(mix, -1, 1).astype(np.float32))
                     if (t := tally.add(engine, seg, language, clip))]  # fmt: skip
            if alone and not texts:
                dropped.append(clip[:24])
            changed += bool(alone) and texts != alone
        print(tally.line(label) + f"  clips {len(clips)}, dropped {len(dropped)} {dropped or ''}, text changed"
              f" {changed}" + "".join(f"\n      rejected {t}" for t in tally.rejected))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="data")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    p.add_argument("--talkers", type=int, nargs="*", default=[6, 8, 10, 16])
    p.add_argument("--peaks", type=float, nargs="*", default=[0.1, 0.3, 0.6, 0.9])
    p.add_argument("--no-speech-set", action="store_true", help="babble only")
    p.add_argument("--beam", type=int, default=1, help="the first pass's beam (1: greedy)")
    p.add_argument("--loops", action="store_true", help="also the loop rule and doubled phrases (module docstring)")
    p.add_argument("--noisy-speech", type=float, nargs="*", metavar="SNR", help="also speech in noise at these SNRs")
    p.add_argument("--noise-talkers", type=int, default=6, help="voices in --noisy-speech's babble")
    p.add_argument("--noise-pad", type=float, default=0.5, help="seconds of noise before and after each clip")
    p.add_argument("--noise-seed", type=int, default=7, help="--noisy-speech's noise")
    p.add_argument("--short-turns", action="store_true", help="--noisy-speech also for the short turns (SHORT_SET)")
    p.add_argument("--bursts", action="store_true", help="also noises that are not words over babble")
    p.add_argument("--vocal", action="store_true", help="also coughs, sneezes, laughs: alone and beside a turn")
    p.add_argument("--vocal-crowd", type=float, nargs=2, metavar=("VOICES", "SNR_DB"),
                   help="also the sounds beside a turn over a crowd (no babble or speech sets after)")  # fmt: skip
    p.add_argument("--records", type=Path, help="also every segment with words, one JSON line each")
    p.add_argument("--kernels", choices=list(PATHS), help="decode on another CPU's int8 kernels (tests/kernels.py)")
    args = p.parse_args()
    args.kernels = select(p, args.kernels)
    print(kernels_line(args.kernels))
    if args.vocal_crowd and (not float(args.vocal_crowd[0]).is_integer() or args.vocal_crowd[0] < 1):
        p.error("--vocal-crowd: VOICES is a whole number, 1 or more")
    settings = Settings(data_dir=Path(args.data_dir), natural_voices=False, asr_beam_size=args.beam)
    engine = CascadeEngine.load(settings)
    records: list[dict[str, object]] | None = [] if args.records else None
    try:
        if args.loops:
            loops(engine)
        if args.noisy_speech:
            noisy_speech(engine, args, records)
        if args.bursts:
            bursts(engine, args, records)
        if args.vocal:
            vocal(engine, records)
        if args.vocal_crowd:
            beside_turns(engine, records, (round(args.vocal_crowd[0]), args.vocal_crowd[1]))
            return
        print(f"babble (language en), first pass beam {args.beam}:")
        babble_stats: list[tuple[float, float, float, float]] = []
        for talkers in args.talkers:
            for peak in args.peaks:
                tally = Tally(f"babble {talkers} voices", records)
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    for seg in segments(babble(4.0, peak, np.random.default_rng(seed), talkers=talkers)):
                        tally.add(engine, seg, "en", f"seed {seed} peak {peak}")
                babble_stats += tally.stats
                print(tally.line(f"{talkers} voices, peak {peak}") + "".join(f"\n      {t}" for t in tally.examples))
        print(spread("babble segments with words", babble_stats))
        if args.no_speech_set:
            return
        from bench.bench_fidelity import build_set

        print(f"speech (bench_fidelity's turns, language given), first pass beam {args.beam}:")
        with tempfile.TemporaryDirectory() as tmp:
            convs = build_set(Path(tmp))
        speech_stats: list[tuple[float, float, float, float]] = []
        for conv in convs:
            tally, dropped = Tally(f"speech {conv.name}", records), []
            for turn in conv.turns:
                texts = [tally.add(engine, seg, turn.clip.language, turn.clip.name) for seg in segments(turn.audio)]
                if not any(texts):
                    dropped.append(turn.clip.name)
            speech_stats += tally.stats
            print(tally.line(conv.name) + f"  turns {len(conv.turns)}, dropped {len(dropped)} {dropped or ''}")
        print(spread("speech segments with words", speech_stats))
    finally:
        engine.close()
        if records is not None:
            args.records.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


if __name__ == "__main__":
    main()
