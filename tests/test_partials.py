"""Streaming partials (babelfish/partials.py): local agreement, their place in the engine queue, and the messages
through the real app (test engine, real VAD, audio at real-time pace)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest

from babelfish.app import create_app
from babelfish.cluster import LocalOnly
from babelfish.config import Settings
from babelfish.engines.base import Transcript, Utterance
from babelfish.engines.fake import FakeEngine
from babelfish.inference import InferenceQueue, Shed
from babelfish.metrics import Metrics
from babelfish.partials import Agreement, Partials, PartialsConfig
from babelfish.segmenter import OpenSegment, Segmenter, SegmenterConfig
from babelfish.tasks import TaskSet
from tests.audio import LIBRIVOX, frames, pcm16, read_wav, silence
from tests.pipeline_harness import PipelineHarness
from tests.test_inference import blocker, pool  # noqa: F401 - fixture
from tests.wsclient import BoundedClient

LONG_CLIP = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0870.wav"  # about 7 s of one reader
WORDS = [
    "the",
    "family",
    "of",
    "dashwood",
    "had",
    "long",
    "been",
    "settled",
    "in",
    "sussex",
    "their",
    "estate",
    "was",
    "large",
    "and",
    "their",
    "residence",
]


# --- local agreement --------------------------------------------------------------------------------------------


def test_agreement_commits_what_two_decodes_agree_on_and_never_takes_it_back():
    a = Agreement()
    assert a.update("The family") == ("", "The family", False)  # one decode: all tentative
    assert a.update("The family of Dash") == ("The family", "of Dash", True)
    # The recogniser changes its mind about committed words: they stay, and only what follows them is compared.
    stable, tail, grew = a.update("A family of Dashwood had")
    assert stable == "The family of" and grew and tail == "Dashwood had"
    stable, tail, grew = a.update("The family, of Dashwood had long")  # punctuation and case do not block agreement
    assert stable == "The family of Dashwood had" and tail == "long" and grew


def test_agreement_never_commits_the_newest_last_word():
    a = Agreement()
    a.update("good morn")
    assert a.update("good morn") == ("good", "morn", True)  # "morn" may be a word cut short


def test_a_hypothesis_with_a_word_more_or_fewer_before_the_tail_does_not_repeat_a_committed_word():
    # Translations of a growing prefix say the committed words differently; cut by position, the tail repeated one
    # ("Thanks a thousand for for yours") and agreement compared words that did not line up.
    a = Agreement()
    a.update("Thanks a thousand for")
    assert a.update("Thanks a thousand for you") == ("Thanks a thousand for", "you", True)
    assert a.update("Thank you a thousand for yours") == ("Thanks a thousand for", "yours", False)
    b = Agreement()
    b.update("Demain dois")
    assert b.update("Demain dois travailler") == ("Demain dois", "travailler", True)
    assert b.update("je demain dois travailler tout") == ("Demain dois travailler", "tout", True)
    c = Agreement()  # a word fewer: "Hoje é o" committed, then "Hoje o tempo está"
    c.update("Hoje é o")
    c.update("Hoje é o tempo")
    assert c.update("Hoje o tempo está") == ("Hoje é o tempo", "está", True)  # by position: "Hoje é o está"
    d = Agreement()  # a committed word said differently, and found again further on: the cut stays in its place
    d.update("Il a parlé de")
    d.update("Il a parlé de la")
    assert d.update("Il a parlé du projet de loi") == ("Il a parlé de", "projet de loi", False)


def test_stable_prefix_only_grows_over_noisy_hypotheses():
    rng = np.random.default_rng(7)
    a = Agreement()
    shown: list[str] = []
    for n in range(1, len(WORDS) + 1):
        words = list(WORDS[:n])
        for i in rng.choice(n, size=min(n, 2), replace=False):  # the recogniser's mistakes, different each time
            if rng.random() < 0.3:
                words[i] = words[i].upper() + "x"
        stable, _, _ = a.update(" ".join(words))
        shown.append(stable)
    for before, after in itertools.pairwise(shown):
        assert after.startswith(before)
    assert len(shown[-1].split()) >= len(WORDS) // 2  # and it does grow


# --- the engine queue -------------------------------------------------------------------------------------------


async def test_partial_is_dropped_at_once_when_a_final_waits(pool):  # noqa: F811
    metrics = Metrics()
    q = InferenceQueue(pool, 1, 8, 60, metrics)
    gate, work = blocker()
    running = asyncio.create_task(q.render(work, owner="a"))
    await asyncio.sleep(0.05)
    final = asyncio.create_task(q.transcribe(str, "final", owner="b"))
    await asyncio.sleep(0.01)
    ran: list[str] = []
    with pytest.raises(Shed) as info:
        await asyncio.wait_for(q.partial(ran.append, "partial", owner="c", max_wait=5), 1)
    assert info.value.reason == "busy"
    gate.set()
    async with asyncio.timeout(5):
        assert await asyncio.gather(running, final) == ["blocked", "final"]
    assert ran == [] and metrics.snapshot()["partials"]["shed"]["busy"] == 1
    assert metrics.shed == 0  # not an utterance lost


async def test_partial_waits_for_an_idle_engine_not_only_a_free_worker():
    # Two workers, one busy with a final's render: a partial would share the CPU with it (or hold the second worker
    # from the next final), so it is dropped until no final runs; it never waits in the queue.
    metrics = Metrics()
    with ThreadPoolExecutor(2) as two:
        await _idle_engine_only(InferenceQueue(two, 2, 8, 60, metrics, partial_hold=0.0), metrics)


async def _idle_engine_only(q: InferenceQueue, metrics: Metrics) -> None:
    gate, work = blocker()
    running = asyncio.create_task(q.render(work, owner="a"))
    await asyncio.sleep(0.05)
    assert q.busy == 1 and q.waiting == 0
    ran: list[str] = []
    with pytest.raises(Shed) as info:
        await asyncio.wait_for(q.partial(ran.append, "partial", owner="c", max_wait=5), 1)
    assert info.value.reason == "busy"
    async with asyncio.timeout(5):  # a final still takes the free worker at once
        assert await q.transcribe(str, "final", owner="b") == "final"
    gate.set()
    async with asyncio.timeout(5):
        assert await running == "blocked"
        assert await q.partial(str, "partial", owner="c", max_wait=5) == "partial"  # idle: it runs
    assert ran == [] and metrics.snapshot()["partials"]["shed"]["busy"] == 1
    # Two people talking: their partials may run beside each other, one per worker (only finals are kept clear of).
    gate2, work2 = blocker()
    first = asyncio.create_task(q.partial(work2, owner="c", max_wait=5))
    await asyncio.sleep(0.05)
    async with asyncio.timeout(5):
        assert await q.partial(str, "second", owner="d", max_wait=5) == "second"
    gate2.set()
    async with asyncio.timeout(5):
        assert await first == "blocked"


async def test_no_partial_between_a_transcription_and_its_render(pool):  # noqa: F811
    metrics = Metrics()
    q = InferenceQueue(pool, 1, 8, 60, metrics, partial_hold=0.3)
    assert await q.transcribe(str, "final", owner="a") == "final"
    with pytest.raises(Shed):  # the render is about to be asked for
        await q.partial(str, "partial", owner="b", max_wait=5)
    await asyncio.sleep(0.35)
    assert await q.partial(str, "partial", owner="b", max_wait=5) == "partial"
    assert metrics.snapshot()["partials"]["shed"]["busy"] == 1


# --- one speaker's stream, no socket -----------------------------------------------------------------------------


class LoudIsSpeech:
    """Speech probability from loudness: deterministic, no model."""

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        return np.where(np.abs(windows).max(axis=1) > 0.1, 0.95, 0.01).astype(np.float32)

    def reset(self) -> None:
        pass


def _tone(seconds: float) -> bytes:
    return pcm16(0.3 * np.sin(2 * np.pi * 220 * np.arange(int(16000 * seconds)) / 16000))


async def test_a_segment_dropped_in_the_step_that_cut_it_still_closes_its_partials():
    """The intake queues what a VAD step cut before `after_batch` sees the cut: when a full queue drops that very
    segment, its partials must still be closed (`partial_end`) and nothing kept for it."""
    h = PipelineHarness(engine=GrowingWords())
    tasks = TaskSet()
    try:
        ann, bob = h.join("Ann", "en"), h.join("Bob", "de")
        ids = iter(["u1", "u2"])
        service = Partials(h.engine, h.queue, h.rooms, h.metrics, LocalOnly(), lambda: next(ids), PartialsConfig())
        stream = service.stream(ann, tasks.spawn)
        segmenter = Segmenter(LoudIsSpeech(), SegmenterConfig.from_settings(Settings()))
        assert segmenter.feed(_tone(1.0), time.monotonic()) == []  # still speaking
        assert stream.decode_due(time.monotonic())
        opened = stream.snapshot(segmenter)
        assert opened is not None and opened.speech_seconds > 0.5
        stream.after_batch(segmenter, [], opened)
        assert await tasks.wait(10) == 0
        shown = [m for m in await h.received(bob) if m["type"] == "partial"]
        assert shown and {m["utterance_id"] for m in shown} == {"u1"}
        cut = segmenter.feed(silence(1.0), time.monotonic())
        assert len(cut) == 1
        # The intake's drop path (Intake._queue), before after_batch: the id is found and its partials closed.
        dropped = stream.utterance_id(cut[0])
        assert dropped == "u1"
        stream.finished(dropped)
        stream.after_batch(segmenter, cut, stream.snapshot(segmenter))
        assert stream.utterance_id(cut[0]) is None  # nothing left behind for a segment that is gone
        assert await h.received(bob) == [{"type": "partial_end", "utterance_id": "u1"}]
    finally:
        await tasks.cancel_all()
        h.close()


async def test_no_decode_without_a_snapshot_from_the_vad_step():
    """The open segment's audio is copied in the VAD thread (`snapshot`); after_batch never copies it on the loop."""
    h = PipelineHarness(engine=GrowingWords())
    tasks = TaskSet()
    try:
        ann = h.join("Ann", "en")
        service = Partials(h.engine, h.queue, h.rooms, h.metrics, LocalOnly(), lambda: "u1", PartialsConfig())
        stream = service.stream(ann, tasks.spawn)
        segmenter = Segmenter(LoudIsSpeech(), SegmenterConfig.from_settings(Settings()))
        segmenter.feed(_tone(1.0), time.monotonic())

        def on_the_loop() -> None:
            raise AssertionError("open segment copied on the event loop")

        segmenter.open_segment = on_the_loop  # type: ignore[method-assign]
        stream.after_batch(segmenter, [])
        assert len(tasks) == 0 and stream.decode_due(time.monotonic())  # no decode started, one still due
    finally:
        await tasks.cancel_all()
        h.close()


async def test_a_segment_the_crowd_gate_judged_again_starts_its_partials_afresh():
    """In a café, the crowd opens a phone's first segment and its partials show the crowd's words; when the crowd gate
    turns on, the segment is judged again and begins with the speaker (babelfish/segmenter.py, `_rejudge`). The same
    line goes on, without the words committed from the crowd."""
    h = PipelineHarness(engine=GrowingWords())
    tasks = TaskSet()
    try:
        ann, bob = h.join("Ann", "en"), h.join("Bob", "de")
        config = PartialsConfig(interval=0.0, cost_factor=0.0)
        service = Partials(h.engine, h.queue, h.rooms, h.metrics, LocalOnly(), lambda: "u1", config)
        stream = service.stream(ann, tasks.spawn)
        t0 = time.monotonic() - 3.0  # the crowd opened the segment 3 s ago
        segmenter = SimpleNamespace(open_serial=1, trailing_silence=0.0, open_started=t0)

        def heard(seconds: float, started: float) -> OpenSegment:
            n = int(seconds * 16000) // 512
            return OpenSegment(1, np.full(n * 512, 0.1, np.float32), np.full(n, 0.95, np.float32), started, seconds)

        for seconds in (2.0, 2.4):  # two decodes of what the crowd opened: their common words are committed
            stream.after_batch(segmenter, [], heard(seconds, t0))  # type: ignore[arg-type]
            assert await tasks.wait(10) == 0
        shown = [m for m in await h.received(bob) if m["type"] == "partial" and m["kind"] == "transcript"]
        assert shown and shown[-1]["stable"]
        segmenter.open_started = t0 + 1.5  # judged again: the speaker's words begin 1.5 s in
        stream.after_batch(segmenter, [], heard(0.8, t0 + 1.5))  # type: ignore[arg-type]
        assert await tasks.wait(10) == 0
        again = [m for m in await h.received(bob) if m["type"] == "partial" and m["kind"] == "transcript"]
        assert again and again[-1]["utterance_id"] == "u1" and again[-1]["seq"] > shown[-1]["seq"]
        assert again[-1]["stable"] == "" and again[-1]["tail"]
    finally:
        await tasks.cancel_all()
        h.close()


# --- through the real app ---------------------------------------------------------------------------------------


class GrowingWords(FakeEngine):
    """A test engine whose transcript grows with the audio like a recogniser's: 2.5 words a second."""

    def transcribe(self, utterance: Utterance) -> Transcript | None:
        n = max(1, min(len(WORDS), int(utterance.seconds * 2.5)))
        return Transcript(" ".join(WORDS[:n]), utterance.language or "en")


@pytest.fixture
def growing(tmp_path) -> Iterator[BoundedClient]:
    settings = Settings(data_dir=tmp_path, engine="test", partials=True)
    with BoundedClient(create_app(settings, engine=GrowingWords())) as c:
        yield c


def _join(ws, name: str, language: str) -> None:
    ws.send_text(json.dumps({"type": "join", "name": name, "language": language}))
    assert ws.receive_json()["type"] == "welcome"


def _speak_in_real_time(ws, pcm: bytes) -> None:
    started = time.monotonic()
    for i, frame in enumerate(frames(silence(0.3) + pcm + silence(0.8))):
        ws.send_bytes(frame)
        time.sleep(max(0.0, started + (i + 1) * 0.02 - time.monotonic()))


def _until(ws, kind: str, seconds: float = 30.0) -> list[dict]:
    got, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = ws.receive_json()  # bounded itself (tests/wsclient.py)
        if msg["type"] == "audio":
            ws.receive_bytes()
        got.append(msg)
        if msg["type"] == kind:
            return got
    raise AssertionError(f"no {kind!r} within {seconds:.0f} s; got {[m['type'] for m in got]}")


def test_partials_arrive_while_speaking_and_the_final_replaces_them(growing, monkeypatch):
    clip = pcm16(read_wav(LONG_CLIP))
    copied_in: set[str] = set()  # threads that copied an open segment's audio for a partial
    open_segment = Segmenter.open_segment

    def recorded(self: Segmenter):
        copied_in.add(threading.current_thread().name)
        return open_segment(self)

    monkeypatch.setattr(Segmenter, "open_segment", recorded)
    with growing.websocket_connect("/ws/client") as en, growing.websocket_connect("/ws/client") as de:
        _join(en, "Ann", "en")
        _join(de, "Bob", "de")
        began = time.monotonic()
        _speak_in_real_time(en, clip)
        spoken = time.monotonic() - began
        got = _until(de, "partial_end")
    final = next(m for m in got if m["type"] == "transcript")
    partials = [m for m in got if m["type"] == "partial"]
    transcript_partials = [m for m in partials if m["kind"] == "transcript"]
    assert len(transcript_partials) >= 4, [m["type"] for m in got]  # ~7 s of speech, one every 0.5-1 s
    assert all(m["utterance_id"] == final["utterance_id"] for m in partials)
    assert got.index(final) > got.index(transcript_partials[-1])  # no partial after the final text
    assert got[-1] == {"type": "partial_end", "utterance_id": final["utterance_id"]}
    # Before the turn ended: the first one came within about a second of speech, long before the final.
    assert transcript_partials[0]["elapsed_ms"] < 1500, transcript_partials[0]
    assert transcript_partials[0]["audio_seconds"] < spoken / 2
    for before, after in itertools.pairwise(transcript_partials):
        assert after["stable"].startswith(before["stable"]) and after["seq"] > before["seq"]
    assert transcript_partials[-1]["stable"] and final["text"].startswith(transcript_partials[-1]["stable"])
    translated = [m for m in partials if m["kind"] == "translation"]
    assert translated and all(m["language"] == "de" and m["source_language"] == "en" for m in translated)
    for before, after in itertools.pairwise(translated):
        assert after["stable"].startswith(before["stable"])
    assert translated[-1]["stable"].startswith("[de] the family")  # the stable prefix, translated
    assert copied_in and all(name.startswith("vad") for name in copied_in), copied_in  # never on the event loop


def test_partials_off(tmp_path):
    settings = Settings(data_dir=tmp_path, engine="test", partials=False)
    with BoundedClient(create_app(settings, engine=GrowingWords())) as c, c.websocket_connect("/ws/client") as ws:
        _join(ws, "Ann", "en")
        _speak_in_real_time(ws, pcm16(read_wav(LONG_CLIP))[: 16000 * 2 * 3])
        got = _until(ws, "transcript")
        assert not [m for m in got if m["type"].startswith("partial")]
        ws.send_text('{"type": "ping"}')
        assert ws.receive_json()["type"] == "pong"  # and no partial_end either
