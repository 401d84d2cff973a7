"""SeamlessM4T v1 (medium shapes, random weights) on CPU: the engine's encoder-once batched path against transformers'
own `SeamlessM4TModel.generate` run once per target, for k target languages with speech.

Run: python -m bench.bench_seamless_v1 [--size medium|tiny] [--targets 1,3] [--repeat 3] [--text-tokens 20]
     [--units 100]

No real v1 weights can be downloaded here, so the model has hf-seamless-m4t-medium's shapes and random weights (built
in memory by tests/engines/tiny_seamless.py). Random weights never end a sentence by themselves, so both paths get the
same caps (`--text-tokens`, `--units`: by default about 4 s of speech) and do the same amount of work; the outputs are
compared, not just timed. Prints one table: median ms per utterance, both paths, and the engine's unit-decoder share.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from babelfish.engines.base import SpeechResult, Utterance
from babelfish.engines.seamless import SeamlessEngine, pick_dtype
from tests.engines.tiny_seamless import make_tiny_seamless_v1

TARGETS = (("de", "deu"), ("pt", "por"), ("es", "spa"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="medium", choices=["medium", "tiny"])
    parser.add_argument("--targets", default="1,3")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--text-tokens", type=int, default=20)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        model, processor = make_tiny_seamless_v1(Path(work), size=args.size)
    dtype = pick_dtype("cpu")
    model = model.to(dtype).eval()
    model.set_modality("text")
    model.generation_config.max_new_tokens = args.text_tokens
    model.config.t2u_max_new_tokens = args.units
    engine = SeamlessEngine(model, processor, "cpu", dtype)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"SeamlessM4T v1 {args.size}, random weights, {params:.0f}M parameters, {dtype}, {args.threads} threads, "
        f"built in {time.perf_counter() - t0:.0f} s; caps: {args.text_tokens} text tokens, {args.units} units"
    )
    print(f"load: {os.getloadavg()[0]:.1f} (1-min average) on {os.cpu_count()} cores")

    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(16000 * 3) * 0.1).astype(np.float32)  # 3 s; random weights do not care what is said
    unit_seconds: list[float] = []
    speak = engine._speak

    def timed_speak(*a: object) -> object:
        started = time.perf_counter()
        try:
            return speak(*a)  # type: ignore[arg-type]
        finally:
            unit_seconds.append(time.perf_counter() - started)

    engine._speak = timed_speak  # type: ignore[method-assign]
    inputs = processor(audio=audio, sampling_rate=16000, return_tensors="pt")
    inputs["input_features"] = inputs["input_features"].to(dtype)

    print("\n| targets k | engine ms (transcript + texts + speech) | of which unit decoder + vocoder ms | "
          "transformers generate per target ms | ratio |")  # fmt: skip
    print("|---|---|---|---|---|")
    for k in (int(x) for x in args.targets.split(",")):
        targets = TARGETS[:k]
        ours, theirs, units = [], [], []
        for _ in range(args.repeat):
            unit_seconds.clear()
            started = time.perf_counter()
            utt = Utterance(audio, "en", candidates=tuple(t for t, _ in targets))
            transcript = engine.transcribe(utt)
            assert transcript is not None
            speech = [r for r in engine.render(utt, transcript, [t for t, _ in targets]) if isinstance(r, SpeechResult)]
            ours.append(time.perf_counter() - started)
            units.append(sum(unit_seconds))
            assert len(speech) == k and all(len(s.pcm) > 0 for s in speech)

            started = time.perf_counter()
            with torch.inference_mode():
                model.generate(**inputs, tgt_lang="eng", generate_speech=False, num_beams=1, do_sample=False)
                for _, code in targets:  # what an app would do with transformers alone: one S2ST call per target
                    model.generate(
                        **inputs,
                        tgt_lang=code,
                        num_beams=1,
                        do_sample=False,
                        speech_do_sample=False,
                        speech_max_new_tokens=args.units,
                    )
            theirs.append(time.perf_counter() - started)
            model.set_modality("text")  # transformers' generate switched it to speech
        a, b, u = (statistics.median(x) * 1000 for x in (ours, theirs, units))
        print(f"| {k} | {a:.0f} | {u:.0f} | {b:.0f} | {b / a:.2f}x |")
    print(f"\nload after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
