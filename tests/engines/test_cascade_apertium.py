"""The long-running apertium pipelines: same output as a one-shot `apertium -u`, restart when they die or hang."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import psutil
import pytest

from babelfish.engines.cascade.mt import Apertium, _deformat, _reformat

# apertium-eng-spa is installed by scripts/setup.sh: a machine without it fails here rather than skipping.

TEXTS = [
    "Hello world, how are you?",
    "First sentence. Second one! I like cats",
    "It costs 50% more [really] <b> a/b c\\d ^x$ @me {x} ~y #1 +2 *3 |4.",  # the stream format's reserved characters
]


@pytest.fixture
def apertium() -> Iterator[Apertium]:
    a = Apertium.detect()
    assert a is not None
    yield a
    a.close()


def _stages() -> list[psutil.Process]:
    found = []
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # it may exit between listing and naming: the reaper at work
            if "lt-proc" in p.name():
                found.append(p)
    return found


def test_deformat_round_trip():
    raw = _deformat("a [b] \\ ~c\nd")
    assert raw == b"a \\[b\\] \\\\ [~]c d.[]\0"
    assert _reformat(raw) == "a [b] \\ ~c d"


def test_pipeline_matches_one_shot(apertium: Apertium):
    for text in TEXTS:
        assert apertium.translate(text, "en", "es") == apertium.translate_once(text, "en", "es"), text
    assert apertium.translate("", "en", "es") == ""


def test_pipeline_restarts_after_death_and_stops_on_close(apertium: Apertium):
    first = apertium.translate(TEXTS[0], "en", "es")
    proc = apertium._pipes[("en", "es")]._proc
    assert proc is not None and _stages()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert apertium.translate(TEXTS[0], "en", "es") == first  # a fresh pipeline
    apertium.close()
    assert not _stages()


def test_timeout_falls_back_to_one_shot(apertium: Apertium):
    pipe = apertium._pipes[("en", "es")]
    pipe._timeout = 0.0  # every reply is "late" but a fresh pipeline's first: it may take ONE_SHOT_TIMEOUT to load
    assert apertium.translate(TEXTS[1], "en", "es") and pipe.running
    # A started one that is late is dropped and a one-shot process answers.
    assert apertium.translate(TEXTS[0], "en", "es") == "Hola Mundo, cómo eres?"
    assert pipe._proc is None


def test_idle_pipelines_are_stopped(apertium: Apertium):
    apertium._idle_seconds = 0.0
    apertium.translate(TEXTS[0], "en", "es")
    assert apertium._pipes[("en", "es")]._proc is not None
    apertium.translate("Hola", "es", "en")  # another pair's request reaps the idle one
    assert apertium._pipes[("en", "es")]._proc is None
    assert apertium.translate(TEXTS[0], "en", "es")  # and it starts again when needed
    # /metrics sees the churn: three starts, and the idle stops (en→es by es→en's request, es→en by en→es's)
    assert apertium.counters() == {"start": 3, "eviction": 0, "idle_stop": 2}


def test_reaper_stops_idle_pipelines_without_a_request():
    pairs = Apertium.detect()
    assert pairs is not None
    a = Apertium(dict(pairs._modes), idle_seconds=0.2, reap_every=0.05)
    try:
        assert a._reaper is None  # no thread until apertium is used
        a.translate(TEXTS[0], "en", "es")
        pipe, reaper = a._pipes[("en", "es")], a._reaper
        assert reaper is not None and reaper.is_alive()
        deadline = time.monotonic() + 10
        while (pipe._proc is not None or _stages()) and time.monotonic() < deadline:
            time.sleep(0.05)  # _proc is cleared before the stages have exited: wait for both
        assert pipe._proc is None and not _stages()  # reaped with no further request
        assert a.translate(TEXTS[0], "en", "es")  # and it starts again when needed
    finally:
        a.close()
    assert not reaper.is_alive()  # close() wakes and ends the reaper


def _pipelines() -> int:
    """Pipelines running under this process: each is its own process group (start_new_session)."""
    groups = set()
    for p in _stages():
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(p.pid))
    return len(groups)


def test_cap_stops_the_least_recently_used_pipeline():
    found = Apertium.detect()
    assert found is not None
    a = Apertium(dict(found._modes), max_pipelines=2, memory_mib=float("inf"))
    try:
        en_es = a.translate(TEXTS[0], "en", "es")
        a.translate("Hola amigo", "es", "en")
        a.translate(TEXTS[1], "en", "es")  # en→es is now the most recently used of the two
        assert _pipelines() == 2
        live = []
        for src, tgt in (("es", "fr"), ("fr", "es"), ("es", "pt")):
            assert a.translate("Hola amigo", src, tgt)
            # Counted after the request returns: the stopped pipeline's stages have exited by then (_kill waits).
            assert _pipelines() <= 2, (src, tgt)
            live.append({pair for pair, pipe in a._pipes.items() if pipe.running})
        # Each start stopped the least recently used one.
        assert live == [{("en", "es"), ("es", "fr")}, {("es", "fr"), ("fr", "es")}, {("fr", "es"), ("es", "pt")}]
        assert a.translate(TEXTS[0], "en", "es") == en_es  # a stopped pair restarts and translates the same
        assert _pipelines() == 2
        # Counted for /metrics: 6 starts (2 to fill the cap, 4 past it), each start past the cap one eviction.
        assert a.counters() == {"start": 6, "eviction": 4, "idle_stop": 0}
    finally:
        a.close()
    assert not _stages()


def test_memory_cap_stops_pipelines_over_it():
    found = Apertium.detect()
    assert found is not None
    a = Apertium(dict(found._modes), max_pipelines=10, memory_mib=50)  # every pair takes more than 30 MiB
    try:
        es_en = a.translate("Hola amigo", "es", "en")
        assert a._pipes[("es", "en")].mib > 30  # measured after its first reply
        assert _pipelines() == 1  # alone it may exceed the cap: a pair in use is never refused
        a.translate("Hola amigo", "es", "pt")
        assert _pipelines() == 1 and a._pipes[("es", "pt")].running
        assert a.translate("Hola amigo", "es", "en") == es_en
        assert _pipelines() == 1 and a._pipes[("es", "en")].running
    finally:
        a.close()
