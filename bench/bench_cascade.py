"""Benchmark the cascade engine on 2 CPU cores: per-stage latency, k-target cost, memory, load time, WER, language id.

Run: python -m bench.bench_cascade [--data-dir data] [--threads 2] [--repeat 3]
Needs Debian pocketsphinx-testdata and espeak-ng (the CLI) for its audio. Timings are medians; the machine is noisy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import psutil

from babelfish.config import Settings
from babelfish.engines.base import SpeechResult, TextResult, Utterance
from babelfish.engines.cascade import CascadeEngine
from babelfish.engines.cascade.models import resolve_whisper
from tests.audio import librivox_clips
from tests.engines.cascade_audio import ESPEAK_SENTENCES, espeak_clip, word_errors

ROOT = Path(__file__).resolve().parents[1]


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) * 1000 if xs else float("nan")


def row(name: str, xs: list[float]) -> str:
    return f"| {name} | {len(xs)} | {pct(xs, 50):.0f} | {pct(xs, 95):.0f} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    settings = Settings(data_dir=args.data_dir, threads=args.threads)
    resolve_whisper(settings.asr_model, settings.data_dir)  # assemble first: load time is measured on later starts

    rss0 = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    engine = CascadeEngine.load(settings)
    load_s = time.perf_counter() - t0
    rss = psutil.Process().memory_info().rss

    tmp = Path(tempfile.mkdtemp())
    libri = librivox_clips()
    espeak = [(lang, text, espeak_clip(text, lang, tmp)) for lang, texts in ESPEAK_SENTENCES.items() for text in texts]

    stage: dict[str, list[float]] = defaultdict(list)
    # Quality: WER with the declared language; language id with language=None.
    errors = words = 0
    for _, audio, ref in libri:
        tr = engine.transcribe(Utterance(audio, "en"))
        e, n = word_errors(tr.text if tr else "", ref)
        errors, words = errors + e, words + n
    # Language id without a hint, then with the room's languages as candidates: a room of three (English, the
    # speaker's, one more) and a room of all six; "visitor": LibriVox English in a French/German room.
    rooms = {
        "no hint": lambda lang: (),
        "room of 3": lambda lang: ("en", lang, "es" if lang == "de" else "de"),
        "room of 6": lambda lang: ("en", "de", "es", "fr", "pt", "it"),
    }
    lid: dict[str, tuple[int, list[str]]] = {}
    for room, hint in rooms.items():
        hits, rows = 0, []
        for lang, _text, audio in espeak:
            t = time.perf_counter()
            tr = engine.transcribe(Utterance(audio, None, hint(lang)))
            stage[f"ASR, language detected, {room}"].append(time.perf_counter() - t)
            got = tr.language if tr else "-"
            hits += got == lang
            rows.append(f"{lang}→{got}")
        lid[room] = (hits, rows)
    visitor = [tr.language if (tr := engine.transcribe(Utterance(a, None, ("fr", "de")))) else "-" for _, a, _ in libri]

    # Latency per stage. ASR with language declared (the usual case) and detected.
    utts = [Utterance(a, "en") for _, a, _ in libri] + [Utterance(a, lang) for lang, _, a in espeak]
    for _ in range(args.repeat):
        for u in utts:
            t = time.perf_counter()
            engine.transcribe(u)
            stage["ASR, language declared"].append(time.perf_counter() - t)
    # MT per backend and TTS per voice: time each route's text and speech separately.
    transcripts = [(u, engine.transcribe(u)) for u in utts]
    k_cost: dict[int, list[float]] = defaultdict(list)
    k_text: dict[int, list[float]] = defaultdict(list)  # until the last text, before any speech
    for _ in range(args.repeat):
        for u, tr in transcripts:
            if tr is None:
                continue
            targets = [t for t in ("pt", "es", "en", "fr") if t != tr.language]
            for tgt in targets:
                t = time.perf_counter()
                out = engine.router.translate(tr.text, tr.language, tgt, u.audio)
                if out:
                    stage[f"MT {out[1]}"].append(time.perf_counter() - t)
                    voice = engine.voices.for_language(tgt)
                    if voice:
                        t = time.perf_counter()
                        voice.synthesize(out[0], tgt)
                        stage[f"TTS {voice.name}"].append(time.perf_counter() - t)
            # k targets: transcribe + render everything, relative to one target.
            for k in range(1, 5):
                ks = [*targets, "it"][:k]
                t = t_text = time.perf_counter()
                tr2 = engine.transcribe(u)
                for r in engine.render(u, tr2, ks) if tr2 else ():
                    if isinstance(r, TextResult):
                        t_text = time.perf_counter()
                    assert isinstance(r, (TextResult, SpeechResult))
                k_cost[k].append(time.perf_counter() - t)
                k_text[k].append(t_text - t)

    print(f"\nCascade engine benchmark ({args.threads} threads, {os.cpu_count()} CPUs, repeat {args.repeat})\n")
    print("| stage | n | p50 ms | p95 ms |\n|---|---|---|---|")
    for name in sorted(stage):
        print(row(name, stage[name]))
    base = float(np.median(k_cost[1]))
    print("\n| targets k | p50 ms, all texts | p50 ms, texts + speech | cost vs k=1 | target |\n|---|---|---|---|---|")
    for k in sorted(k_cost):
        rel = float(np.median(k_cost[k])) / base
        print(f"| {k} | {pct(k_text[k], 50):.0f} | {pct(k_cost[k], 50):.0f} | {rel:.2f} | ≤ {1 + 0.25 * (k - 1):.2f} |")
    print(f"\nload time: {load_s:.2f} s (target ≤ 10 s, model already assembled)")
    print(
        f"resident memory: {rss / 2**20:.0f} MiB with the engine loaded ({(rss - rss0) / 2**20:.0f} MiB for it; ≤ 1 GB)"
    )
    kids = psutil.Process().children(recursive=True)
    print(
        f"after the run: {psutil.Process().memory_info().rss / 2**20:.0f} MiB, plus "
        f"{sum(p.memory_full_info().uss for p in kids) / 2**20:.0f} MiB private (USS) in {len(kids)} apertium processes"
    )
    print(f"WER on LibriVox ({len(libri)} clips, language declared): {errors}/{words} = {errors / words:.1%}")
    for room, (hits, rows) in lid.items():
        print(f"language id on espeak-ng clips, {room}: {hits}/{len(espeak)} ({' '.join(rows)})")
    print(f"language id, visitor (LibriVox English, candidates fr, de): {visitor.count('en')}/{len(visitor)}")
    engine.close()


if __name__ == "__main__":
    main()
