"""What the cluster's speaker store costs an utterance: `Registry.identify` with SQLite alone vs Redis (+ local copy).

    python -m bench.bench_speaker_store [--voices 50] [--utterances 300]

Starts a real redis-server on a loopback port (tests/redisproc.py, no persistence) and times `identify` on the
registry's worker-thread path: mostly known voices (a refinement each: one write), some new ones (an enrolment).
Three stores: the single server's SQLite file; the cluster's SharedStore while Redis answers (every read and write
to Redis, writes copied to the local SQLite); SharedStore with Redis killed (local copy + journal). A second
"server" (another SharedStore on the same Redis) identifies too, so every call also sees the other's changes
(`changed()` true, a reload from Redis), as in a busy cluster. Prints p50/p95 ms per call.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from babelfish.speakers.registry import Registry
from babelfish.store.redis_store import RedisStore
from babelfish.store.shared import SharedStore
from babelfish.store.sqlite import SqliteStore
from tests.redisproc import RedisProcess

DIM = 256


def voices(n: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def run(registry: Registry, known: np.ndarray, n: int, rng: np.random.Generator, other: Registry | None) -> list[float]:
    times = []
    for i in range(n):
        if i % 10 == 9:
            vector = voices(1, rng)[0]  # a new voice: enrolled
        else:
            vector = known[i % len(known)] + rng.standard_normal(DIM).astype(np.float32) * 0.02
        if other is not None:
            other.identify("other", "Other", known[(i + 1) % len(known)])  # the other server refines a voice
        began = time.perf_counter()
        registry.identify(f"c{i % 5}", f"Client {i % 5}", vector)
        times.append((time.perf_counter() - began) * 1000)
    return times


def line(name: str, times: list[float]) -> None:
    q = statistics.quantiles(times, n=20)
    print(f"{name:44s} p50 {statistics.median(times):6.2f} ms   p95 {q[18]:6.2f} ms   (n={len(times)})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--voices", type=int, default=50)
    ap.add_argument("--utterances", type=int, default=300)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    known = voices(args.voices, rng)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        redis = RedisProcess(root / "redis").start()
        try:
            alone = Registry(SqliteStore(root / "alone.db"), "bench", 0.7)
            for i, v in enumerate(known):
                alone.identify(f"seed{i}", f"Seed {i}", v)
            line("SQLite alone (single server)", run(alone, known, args.utterances, rng, None))

            def shared(name: str) -> SharedStore:
                (root / name).mkdir()
                return SharedStore(RedisStore(redis.url), SqliteStore(root / name / "speakers.db"), root / name)

            a, b = Registry(shared("a"), "bench", 0.7), Registry(shared("b"), "bench", 0.7)
            for i, v in enumerate(known):
                a.identify(f"seed{i}", f"Seed {i}", v)
            line("SharedStore, Redis up, alone", run(a, known, args.utterances, rng, None))
            line("SharedStore, Redis up, another server busy", run(a, known, args.utterances, rng, b))
            redis.kill()
            line("SharedStore, Redis down (local copy+journal)", run(a, known, args.utterances, rng, None))
            print(f"changes journalled while down: {a.store.status()['pending']}")
        finally:
            redis.kill()


if __name__ == "__main__":
    main()
