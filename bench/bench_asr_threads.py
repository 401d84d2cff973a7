"""Whisper base on CPU: threads per call against calls at once (why the defaults are 2 inference workers × 1 thread).

    python -m bench.bench_asr_threads [--data-dir data] [--repeat 3]

Loads the cascade engine's ASR (`WhisperAsr`, CTranslate2 int8) twice: 1 worker × 2 threads (the old defaults) and
2 workers × 1 thread (one model replica per worker, the new ones). Prints, median of `--repeat`:

- one call alone, on 1 and on 2 threads: a short utterance (a LibriVox clip, greedy: the fresh path), 20 s of speech
  greedy, the same 20 s as a revision (beam 5), and the language id on the standard 30 s window (the fallback when
  the short window is unsure);
- throughput: four LibriVox clips transcribed by two threads at once, per utterance, for both layouts.

Run it on an idle machine: the thread comparisons mean nothing while other processes compete for the cores.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from babelfish.config import Settings
from babelfish.engines.cascade.asr import WhisperAsr
from babelfish.engines.cascade.models import resolve_whisper
from tests.audio import librivox_clips


def _median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return 1000 * float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    folder, _ = resolve_whisper(Settings().asr_model, Path(args.data_dir))
    clips = [audio for _, audio, _ in librivox_clips()]
    short, long = clips[0], np.concatenate(clips)[: 20 * 16000]
    print(f"load {os.getloadavg()[0]:.2f}; short clip {len(short) / 16000:.1f} s")
    layouts = {
        "1 worker x 2 threads": WhisperAsr(folder, threads=2),
        "2 workers x 1 thread": WhisperAsr(folder, threads=1, workers=2),
    }
    one_thread, two_threads = layouts["2 workers x 1 thread"], layouts["1 worker x 2 threads"]
    cases: dict[str, Callable[[WhisperAsr], object]] = {
        "short, greedy": lambda asr: asr.recognize(short, "en"),
        "20 s, greedy": lambda asr: asr.recognize(long, "en"),
        "20 s, revision (beam 5)": lambda asr: asr.recognize(long, "en", revision=True),
        # the fallback recognize takes when the short window's language id is unsure (not reachable from outside)
        "language id, 30 s window": lambda asr: asr._detect(asr._encode(short, full_window=True)),
    }
    for asr in layouts.values():
        asr.recognize(short, "en")  # warm-up
    print("one call alone (ms): 1 thread / 2 threads")
    for name, case in cases.items():
        a = _median_ms(lambda case=case: case(one_thread), args.repeat)
        b = _median_ms(lambda case=case: case(two_threads), args.repeat)
        print(f"  {name}: {a:.0f} / {b:.0f} (x{a / b:.2f})")
    print("four clips, two calls at once (ms per utterance):")
    for name, asr in layouts.items():
        with ThreadPoolExecutor(2) as pool:

            def four(asr: WhisperAsr = asr, pool: ThreadPoolExecutor = pool) -> object:
                return list(pool.map(lambda clip: asr.recognize(clip, "en"), clips[:4]))

            print(f"  {name}: {_median_ms(four, args.repeat) / 4:.0f}")


if __name__ == "__main__":
    main()
