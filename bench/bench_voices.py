"""How well each voice is understood: round-trip word error rate (synthesise a sentence, transcribe it back with the
shipped Whisper base, language given) and real-time factor, per voice and language.

Run: python -m bench.bench_voices [--languages en,de,es,fr,it,pt,ca] [--variants] [--write FILE]
Sentences: the first 20 (`--sentences`) of the 32 everyday ones in bench/data/conversation.json. A voice whose WER is
above 0.15 must not be the default for its language. `--variants` also scores the per-speaker variants (pitch/pace).
Real-time factor = synthesis time / audio duration (median per sentence); the box is shared: note `uptime`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
import unicodedata
from pathlib import Path

import numpy as np
from rapidfuzz.distance import Levenshtein

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from babelfish.engines.cascade.engine import Voices
from babelfish.engines.cascade.models import shipped_whisper_base
from babelfish.engines.cascade.tts import VARIANTS, Espeak, Pico, Piper, StreamingTts, Tts, load_voice_quality

ROOT = Path(__file__).resolve().parents[1]

DATA = ROOT / "bench" / "data" / "conversation.json"
MAX_WER = 0.15
# Whisper writes small numbers as digits; the sentences spell them out.
NUMBERS = {
    "4": {"four", "vier", "cuatro", "quatro", "quatre", "quattro"},
    "5": {"five", "fünf", "cinco", "cinq", "cinque", "cinc"},
    "10": {"ten", "zehn", "diez", "dez", "dix", "dieci", "deu"},
}
_DIGIT = {word: digit for digit, words in NUMBERS.items() for word in words}


def words(text: str) -> list[str]:
    """Lower case, punctuation and apostrophes as spaces, accents kept (they tell words apart), numbers as digits."""
    text = unicodedata.normalize("NFC", text.lower())
    return [_DIGIT.get(w, w) for w in re.sub(r"[^\w]+", " ", text).split()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data")
    ap.add_argument("--languages", default="en,de,es,fr,it,pt,ca")
    ap.add_argument("--variants", action="store_true", help="also score each speaker variant (first 8 sentences)")
    ap.add_argument("--sentences", type=int, default=20, help="per language (the data has 32)")
    ap.add_argument("--no-kokoro", action="store_true")
    ap.add_argument(
        "--write", type=Path, help="store the WER table (the package's: babelfish/engines/cascade/voice_quality.json)"
    )
    args = ap.parse_args()
    languages = args.languages.split(",")

    import soxr
    from faster_whisper import WhisperModel

    whisper = WhisperModel(str(shipped_whisper_base(args.data_dir)), device="cpu", compute_type="int8", cpu_threads=2)
    data = json.loads(DATA.read_text())
    espeak = Espeak()
    voices: list[Tts] = []
    piper = Piper.joe()
    if piper is not None:
        voices.append(piper)
    voices.append(Pico())
    if not args.no_kokoro:
        from babelfish.engines.cascade.kokoro import Kokoro

        voices.append(Kokoro(espeak, args.data_dir))
    voices.append(espeak)
    defaults = Voices(voices, load_voice_quality())

    def score(tts: Tts, lang: str, sentences: list[str], variant: int = 0) -> tuple[float, float, float]:
        """(WER, median real-time factor, median seconds until the first piece of audio exists)."""
        errors = total = 0
        rtfs, firsts = [], []
        for text in sentences:
            t0 = time.perf_counter()
            if isinstance(tts, StreamingTts):  # what a listener waits for: the first sentence, not the whole
                pieces, rate = [], 16000
                for piece, piece_rate in tts.stream(text, lang, variant):
                    pieces.append(piece)
                    rate = piece_rate
                    if len(pieces) == 1:
                        firsts.append(time.perf_counter() - t0)
                pcm = b"".join(pieces)
            else:
                pcm, rate = tts.synthesize(text, lang, variant)
                firsts.append(time.perf_counter() - t0)
            synth = time.perf_counter() - t0
            audio = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
            rtfs.append(synth / max(len(audio) / rate, 1e-3))
            if rate != 16000:
                audio = soxr.resample(audio, rate, 16000).astype(np.float32)
            segments, _ = whisper.transcribe(audio, language=lang, beam_size=1)
            heard = " ".join(s.text for s in segments)
            ref = words(text)
            errors += Levenshtein.distance(words(heard), ref)  # word edits
            total += len(ref)
        return errors / total, statistics.median(rtfs), statistics.median(firsts)

    print(f"load: {os.getloadavg()[0]:.1f} (1-min average) on {os.cpu_count()} cores")
    table: dict[str, dict[str, float]] = {}
    print("| language | voice | sentences | round-trip WER | real-time factor | first audio (ms, p50) | default |")
    print("|---|---|---|---|---|---|---|")
    for lang in languages:
        for tts in voices:
            if lang not in tts.languages():
                continue
            sentences = data[lang][: args.sentences]
            wer, rtf, first = score(tts, lang, sentences)
            table.setdefault(lang, {})[tts.name] = round(wer, 3)
            default = "yes" if defaults.for_language(lang) is tts else ""
            flag = "" if wer <= MAX_WER else " (> 0.15)"
            n = len(sentences)
            cells = [lang, tts.name, str(n), f"{wer:.3f}{flag}", f"{rtf:.3f}", f"{first * 1e3:.0f}", default]
            print("| " + " | ".join(cells) + " |", flush=True)
    if args.write:
        about = (
            "Round-trip WER per language and voice (synthesised, transcribed back by the shipped Whisper base with "
            f"the language given) on the first {args.sentences} sentences of bench/data/conversation.json, written "
            "by bench/bench_voices.py --write; a language's default voice is the first in preference order at or "
            "under 0.15, else the clearest."
        )
        args.write.write_text(json.dumps({"about": about, "sentences": args.sentences, "wer": table}, indent=1) + "\n")
    if args.variants:
        print("\n| language | voice | variant (pitch, pace) | round-trip WER (8 sentences) |")
        print("|---|---|---|---|")
        for lang in languages:
            tts = defaults.for_language(lang)
            if tts is None:
                continue
            for v in range(1, len(VARIANTS)):
                wer, _, _ = score(tts, lang, data[lang][:8], v)
                print(f"| {lang} | {tts.name} | {v} {VARIANTS[v]} | {wer:.3f} |", flush=True)
    for tts in voices:
        close = getattr(tts, "close", None)
        if close is not None:
            close()


if __name__ == "__main__":
    main()
