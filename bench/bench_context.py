"""A revision decoded alone or in the speaker's own context, offline: the cascade's ASR on bench_fidelity's turns.

    python -m bench.bench_context [--data-dir data] [--only short pico-langs ...]

Every turn of bench_fidelity's conversations is cut by the real segmenter, and each segment is decoded the way a
revision decodes it (`WhisperAsr.recognize(..., revision=True)`: beam, leads for a short one), once alone and once
after what the same speaker said before (babelfish/recent.py builds the context from that variant's own earlier
texts, as the server does from what listeners hold). Printed per clip and per set: WER against the bench's reference
and against what was said, and the engine time per segment. No server: this isolates the decode (bench_fidelity
measures the whole path, `-- --no-revision-context` for the other arm).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from babelfish.engines.cascade.asr import WhisperAsr
from babelfish.engines.cascade.models import resolve_whisper
from babelfish.recent import RecentSpeech
from bench import bench_fidelity as bf
from tests.audio import segments


def run(args: argparse.Namespace) -> None:
    data = Path(args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        convs = [c for c in bf.build_set(Path(tmp)) if not args.only or c.name in args.only]
        bf.references([c for conv in convs for c in conv.clips], data, sampled=False)
        asr = WhisperAsr(resolve_whisper("", data)[0], threads=1, workers=1)
        arms = ("alone", "context")
        cost: dict[str, list[float]] = {arm: [] for arm in arms}
        for conv in convs:
            held: dict[str, dict[str, str]] = {arm: {} for arm in arms}
            for arm in arms:
                recent, n, now = RecentSpeech(), 0, 0.0
                for clip in conv.clips:
                    texts = []
                    for piece in clip.pieces or [clip.audio]:
                        for seg in segments(piece):
                            n, now = n + 1, now + len(seg.audio) / 16000 + 0.5
                            whose = ("bench", clip.speaker)
                            context = recent.context(whose, clip.language, now) if arm == "context" else None
                            began = time.perf_counter()
                            got = asr.recognize(seg.audio, clip.language, revision=True, context=context)
                            cost[arm].append(time.perf_counter() - began)
                            text = got.text if got else ""
                            texts.append(text)
                            start = now - len(seg.audio) / 16000
                            recent.add(whose, f"u{n}", seg.audio, text, clip.language, now, start)
                    held[arm][clip.name] = " ".join(texts)
            print(f"{conv.name}:")
            for clip in conv.clips:
                cells = []
                for arm in arms:
                    e, n = bf.errors(held[arm][clip.name], clip.reference, clip.language)
                    es, ns = bf.errors(held[arm][clip.name], clip.said, clip.language)
                    cells.append(f"{arm} {e / max(1, n):4.0%} / {es / max(1, ns):4.0%}")
                print(f"  {clip.name[:30]:30} " + "   ".join(cells) + "   (against the reference / what was said)")
                if held["alone"][clip.name] != held["context"][clip.name]:
                    print(f"      said: {clip.said}\n      alone: {held['alone'][clip.name]}\n"
                          f"      context: {held['context'][clip.name]}")  # fmt: skip
            for arm in arms:
                ref = [bf.errors(held[arm][c.name], c.reference, c.language) for c in conv.clips]
                said = [bf.errors(held[arm][c.name], c.said, c.language) for c in conv.clips]
                by_ref, by_said = np.mean([e / max(1, n) for e, n in ref]), np.mean([e / max(1, n) for e, n in said])
                print(f"  {arm:8} mean WER per clip against the reference {by_ref:5.1%}, against what was said "
                      f"{by_said:5.1%}")  # fmt: skip
        for arm in arms:
            p50, p95 = np.percentile(cost[arm], [50, 95]) * 1000
            print(f"engine time per segment, {arm}: p50 {p50:.0f} ms, p95 {p95:.0f} ms (one thread)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--only", nargs="*", default=[], help="conversation names (bench_fidelity's sets)")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
