"""Apertium pipelines: their memory with and without the caps on live pipelines, and what a restart costs.

    python -m bench.bench_apertium [--rounds 2] [--pairs en-es,es-en] [--pipelines 8] [--memory-mib 2048]

Translates one sentence through every installed pair (or the --pairs given), round after round, twice per visit:
once uncapped (every pair stays running) and once capped (by default the server's `apertium_pipelines` and
`apertium_memory_mib`). Visiting every pair in turn is the worst case for the caps: each start past them stops the
least recently used pipeline. Prints the child processes left running and their private memory (USS: what stopping
them gives back), and the latency of a call to a running pipeline and of one that first starts it (the restart cost).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

import psutil

from babelfish.config import Settings
from babelfish.engines.cascade.mt import Apertium, Pair

TEXT = "The meeting starts at nine tomorrow morning, in the small room."


def _children() -> tuple[int, float]:
    """Child processes of this one and their private memory in MiB."""
    count, uss = 0, 0
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            uss += p.memory_full_info().uss
            count += 1
    return count, uss / 2**20


def run(label: str, pairs: list[Pair], rounds: int, pipelines: int, memory_mib: float) -> None:
    a = Apertium.detect(max_pipelines=pipelines, memory_mib=memory_mib)
    assert a is not None
    cold, warm, peak_n, peak_mib = [], [], 0, 0.0
    try:
        for _ in range(rounds):
            for src, tgt in pairs:
                running = a._pipes[(src, tgt)].running
                t0 = time.perf_counter()
                a.translate(TEXT, src, tgt)
                (warm if running else cold).append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                a.translate(TEXT, src, tgt)  # the same pair again: running now
                warm.append((time.perf_counter() - t0) * 1000)
                n, mib = _children()
                peak_n, peak_mib = max(peak_n, n), max(peak_mib, mib)
        count, uss = _children()
        print(f"{label} (pipelines {pipelines}, memory {memory_mib:g} MiB): {len(pairs)} pairs x {rounds} rounds")
        print(f"  child processes at most {peak_n}, {peak_mib:.0f} MiB USS; at the end {count}, {uss:.0f} MiB")
        print(f"  call to a running pipeline: p50 {statistics.median(warm):.1f} ms (n={len(warm)})")
        if cold:
            print(f"  call that starts its pipeline: p50 {statistics.median(cold):.0f} ms, "
                  f"max {max(cold):.0f} ms (n={len(cold)})")  # fmt: skip
    finally:
        a.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pairs", default="", help="comma-separated src-tgt pairs (default: every installed pair)")
    s = Settings()
    ap.add_argument("--pipelines", type=int, default=s.apertium_pipelines, help="the capped run's pipeline cap")
    ap.add_argument("--memory-mib", type=float, default=s.apertium_memory_mib, help="the capped run's memory cap")
    args = ap.parse_args()
    found = Apertium.detect()
    assert found is not None, "apertium is not installed (scripts/setup.sh)"
    every = sorted(found.pairs())
    found.close()
    pairs = [(p.split("-")[0], p.split("-")[1]) for p in args.pairs.split(",")] if args.pairs else every
    print(f"load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    run("uncapped", pairs, args.rounds, len(every), float("inf"))
    run("capped", pairs, args.rounds, args.pipelines, args.memory_mib)


if __name__ == "__main__":
    main()
