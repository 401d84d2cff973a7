"""Check and time the seamless engine on CUDA (fp16) and CPU: load time, k-target cost, finite non-empty outputs.

Run: python -m bench.seamless_gpu_check [FOLDER] [--size tiny|large] [--devices cuda,cpu] [--repeat 3]
FOLDER: real SeamlessM4T v2 weights (e.g. a local facebook/seamless-m4t-v2-large). Without it, a random model is built
(tests/engines/tiny_seamless.py): `tiny` checks the path in seconds, `large` has the real model's shapes (2.3B
parameters, ~5 GB in fp16, built on the GPU where there is one) so its timings mean something. Random weights decode
until the token cap, a worst case for text length. Prints a table; exits non-zero when a check fails.
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

from babelfish.config import Settings
from babelfish.engines.base import SpeechResult, TextResult, Utterance
from babelfish.engines.seamless import SeamlessEngine
from tests.engines.tiny_seamless import build_tiny_seamless

# Enough languages for 8 targets from English; the last two are text only, as many of Seamless's are.
TEXT_LANGS = ("eng", "deu", "por", "spa", "fra", "ita", "nld", "pol", "rus", "ces")
SPEECH_LANGS = ("eng", "deu", "por", "spa", "fra", "ita", "nld", "pol")
REAL_TARGETS = ("de", "pt", "es", "fr", "it", "nl", "pl", "ru")


def clip(seconds: float, seed: int) -> np.ndarray:
    """Speech-like test audio: a wobbling harmonic tone plus noise (random weights do not care what is said)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t)
    tone = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 6))
    return (0.2 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) + 0.01 * rng.standard_normal(len(t))).astype(
        np.float32
    )


class Checks:
    """Observes the real modules: logits and waveforms must be finite."""

    def __init__(self, engine: SeamlessEngine) -> None:
        import torch

        self.bad: list[str] = []

        def finite(name: str):
            def hook(_module, _inputs, output) -> None:
                tensor = output[0] if isinstance(output, tuple) else output
                if not bool(torch.isfinite(tensor).all()):
                    self.bad.append(name)

            return hook

        model = engine.model
        model.lm_head.register_forward_hook(finite("text logits"))
        model.speech_encoder.register_forward_hook(lambda m, i, o: finite("speech encoder")(m, i, o.last_hidden_state))
        model.vocoder.register_forward_hook(finite("vocoder waveform"))


def run_device(folder: Path, device: str, threads: int, repeat: int, seconds: float) -> list[str]:
    import torch

    failures: list[str] = []
    settings = Settings(seamless_model=str(folder), device=device, threads=threads)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    engine = SeamlessEngine.load(settings, reason="gpu check")
    load_s = time.perf_counter() - t0
    checks = Checks(engine)
    print(f"\n## {device} ({engine.info.details['dtype']}, {engine.info.details['parameters']} parameters)")
    print(f"load: {load_s:.1f} s  ({engine.info.details['languages']})")
    if device == "cuda":
        print(f"GPU memory after load: {torch.cuda.memory_allocated() / 2**30:.2f} GiB")
    supported = [r.code for r in engine.languages() if r.text_out and r.code != "en"]
    targets_all = [t for t in REAL_TARGETS if t in supported] or supported
    # Warm-up: first CUDA calls pay for kernels and allocator growth.
    for _ in range(2):
        utt = Utterance(clip(seconds, 99), "en")
        tr = engine.transcribe(utt)
        if tr is not None:
            list(engine.render(utt, tr, targets_all[:2]))
    print("| k | transcript ms | texts ready ms | all speech ms | total vs k=1 | speech outputs |")
    print("|---|---|---|---|---|---|")
    base = None
    for k in (1, 2, 4, 8):
        targets = targets_all[:k]
        if len(targets) < k:
            print(f"| {k} | (only {len(targets)} target languages) |")
            continue
        asr, texts_at, totals, n_speech = [], [], [], 0
        for r in range(repeat):
            utt = Utterance(clip(seconds, r), "en", candidates=("en", *targets))  # as the pipeline: the room's
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            tr = engine.transcribe(utt)
            t_asr = time.perf_counter() - t0
            if tr is None or not tr.text:
                failures.append(f"{device} k={k}: empty transcript")
                continue
            results, t_text = [], None
            for res in engine.render(utt, tr, targets):
                results.append(res)
                if isinstance(res, TextResult) and len([x for x in results if isinstance(x, TextResult)]) == k:
                    t_text = time.perf_counter() - t0
            if device == "cuda":
                torch.cuda.synchronize()
            total = time.perf_counter() - t0
            texts = [x for x in results if isinstance(x, TextResult)]
            speech = [x for x in results if isinstance(x, SpeechResult)]
            if len(texts) != k or not all(x.text for x in texts):
                failures.append(f"{device} k={k}: missing or empty text: {texts}")
            for s in speech:
                pcm = np.frombuffer(s.pcm, dtype="<i2")
                if s.sample_rate != 16000 or not len(pcm) or not np.any(pcm):
                    failures.append(f"{device} k={k}: bad speech for {s.language} ({len(pcm)} samples)")
            n_speech = len(speech)
            asr.append(t_asr)
            texts_at.append(t_text or total)
            totals.append(total)
        if not totals:
            continue
        med = statistics.median(totals)
        base = base or med
        print(f"| {k} | {statistics.median(asr) * 1000:.0f} | {statistics.median(texts_at) * 1000:.0f} | "
              f"{med * 1000:.0f} | {med / base:.2f} (target ≤ {1 + 0.25 * (k - 1):.2f}) | {n_speech} |")  # fmt: skip
    if checks.bad:
        failures.append(f"{device}: non-finite values in {sorted(set(checks.bad))}")
    engine.close()
    if device == "cuda":
        torch.cuda.empty_cache()
    return failures


def main() -> None:
    import torch
    import transformers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, help="SeamlessM4T v2 weights; default: build a random model")
    parser.add_argument("--size", choices=("tiny", "large"), default="tiny")
    parser.add_argument("--devices", default="cuda,cpu")
    parser.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 2))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="utterance length")
    parser.add_argument("--out", type=Path, help="where to build the random model (kept for reuse)")
    args = parser.parse_args()

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, {gpu}")
    folder = args.folder
    if folder is None:
        folder = args.out or Path(tempfile.mkdtemp()) / f"seamless-{args.size}"
        if not (folder / "config.json").is_file():
            t0 = time.perf_counter()
            build_device = "cuda" if args.size == "large" and torch.cuda.is_available() else "cpu"
            build_tiny_seamless(folder, text_langs=TEXT_LANGS, speech_langs=SPEECH_LANGS, size=args.size,
                                device=build_device)  # fmt: skip
            print(f"built a random {args.size} model in {folder} in {time.perf_counter() - t0:.1f} s")
            if build_device == "cuda":
                torch.cuda.empty_cache()
    failures: list[str] = []
    for device in args.devices.split(","):
        if device == "cuda" and not torch.cuda.is_available():
            print("\n## cuda: not available, skipped")
            continue
        failures += run_device(folder, device, args.threads, args.repeat, args.seconds)
    print("\nchecks:", "all passed" if not failures else "FAILED")
    for f in failures:
        print(" -", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
