"""Benchmarks that print numbers (results in docs/benchmarks.md). Run from the repository root as modules,
`python -m bench.bench_fanout`, so `tests` helpers import without path tricks."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub lookup costs ~23 s offline; benchmarks use local models only
