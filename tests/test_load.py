"""A 60-second load run in CI: 50 clients streaming an open microphone at real time, test engine, real sockets.

bench/bench_load.py does the work and prints the numbers; this asserts the robust part of its goals (nobody dropped,
nothing lost without a word, no traceback, tasks and file descriptors back where they were); delay and shedding depend
on the machine (docs/benchmarks.md has the measured numbers).
"""

from __future__ import annotations

import pytest

from bench import bench_load


@pytest.mark.timeout(300)
def test_fifty_streamers_for_a_minute():
    r = bench_load.run(bench_load.arguments(["--streamers", "50", "--seconds", "60"]))
    assert r["disconnects"] == []
    # Nothing lost without a word: each utterance transcribed, or (machine overloaded) shed with a notice.
    assert r["spoken"] > 50 * 6 and r["lost"] <= 0 and r["heard"] > 0
    assert r["tracebacks"] == 0
    assert r["after"]["tasks"] <= r["before"]["tasks"] and r["after"]["fds"] <= r["before"]["fds"] + 2
    # The goals (all transcribed, p95 ≤ 0.5 s) are the benchmark's to measure (docs/benchmarks.md), not asserted here:
    # a busy CI box sheds by policy instead, and says so.
