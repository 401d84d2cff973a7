"""Early reads: an utterance's words read in the pause that ends it, taken by its cut (babelfish/early.py).

What must hold: the early read reads exactly what the cut will (the same samples, to the last one), the cut takes its
words instead of decoding again, a pause the speaker talks on after is never taken for the utterance, and nothing
changes when early reads are off."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.early import EarlyReads
from babelfish.engines.base import Utterance
from babelfish.engines.cascade.asr import Recognized
from babelfish.engines.cascade.engine import CascadeEngine, Voices
from babelfish.engines.cascade.reads_ahead import ReadsAhead
from babelfish.engines.cascade.router import Router
from babelfish.inference import InferenceQueue, Shed
from babelfish.metrics import Metrics
from babelfish.segmenter import ReadAhead, Segment, Segmenter, SegmenterConfig, silero_detector
from tests.audio import frames, pcm16, read_wav, silence
from tests.pipeline_harness import PipelineHarness
from tests.test_first_pass import until
from tests.test_partials import LONG_CLIP
from tests.wsclient import BoundedClient

CONFIG = SegmenterConfig.from_settings(Settings())  # early reads 100 ms into a 300 ms pause (the defaults)


def feed(pcm: bytes, config: SegmenterConfig = CONFIG) -> tuple[list[Segment], list[ReadAhead]]:
    """Cut `pcm` with the real VAD; every read ahead the segmenter offered (each distinct one, in order)."""
    seg = Segmenter(silero_detector(), config)
    cuts: list[Segment] = []
    offered: list[ReadAhead] = []
    for i, frame in enumerate(frames(pcm)):
        cuts += seg.feed(frame, now=i * 0.02)
        ahead = seg.read_ahead()
        assert (ahead is None) == (seg.read_ahead_point() is None)
        if ahead is not None and (not offered or (offered[-1].serial, offered[-1].read_until)
                                  != (ahead.serial, ahead.read_until)):  # fmt: skip
            assert seg.read_ahead_point() == (ahead.serial, ahead.read_until)
            offered.append(ahead)
    return cuts, offered


def read_as_cut(segment: Segment) -> np.ndarray:
    """The samples the cut's words are read from: its audio, zero from `read_until` on."""
    audio = segment.audio.copy()
    if segment.read_until is not None:
        audio[segment.read_until :] = 0
    return audio


def test_the_last_read_ahead_of_a_segment_is_exactly_what_its_cut_reads(speech_pcm):
    cuts, offered = feed(silence(0.5) + speech_pcm + silence(1.0))
    assert [c.cut for c in cuts] == ["silence"]
    cut = cuts[0]
    last = [a for a in offered if a.serial == cut.serial][-1]
    assert cut.read_until == last.read_until
    assert len(last.audio) == len(cut.audio) and len(last.speech_probs) == len(cut.speech_probs)
    assert np.array_equal(last.audio, read_as_cut(cut))  # to the sample: the same words
    kept = last.read_until // 512
    assert np.array_equal(last.speech_probs[:kept], cut.speech_probs[:kept])
    assert not last.speech_probs[kept:].any()
    # Read from 3 windows into the 9-window pause: 6 windows are read as zero, and the cut's audio keeps them as heard.
    assert len(cut.audio) - cut.read_until == 6 * 512
    assert cut.audio[cut.read_until :].any()


@pytest.fixture(scope="module")
def sentence(speech_pcm: bytes) -> bytes:
    """The clip's voiced windows as the VAD cuts it: no pre-roll, no pause after."""
    (once,), _ = feed(silence(0.5) + speech_pcm + silence(1.0))
    assert once.read_until is not None
    return pcm16(once.audio[6 * 512 : once.read_until - 3 * 512])


def test_a_pause_the_speaker_talks_on_after_is_not_what_the_cut_reads(sentence):
    # Said twice with 0.2 s between: longer than the early read's 0.1 s, shorter than the 0.3 s that cuts.
    cuts, offered = feed(silence(0.5) + sentence + silence(0.2) + sentence + silence(1.0))
    assert len(cuts) == 1
    mine = [a for a in offered if a.serial == cuts[0].serial]
    assert len(mine) >= 2  # the short pause was offered too
    assert [a.read_until == cuts[0].read_until for a in mine].count(True) == 1  # only the last
    assert all(len(a.audio) < len(cuts[0].audio) for a in mine[:-1])


@pytest.mark.parametrize("early_read_ms", [0, 300, 400])
def test_nothing_is_read_ahead_when_off_or_not_within_the_pause(speech_pcm, early_read_ms):
    config = replace(CONFIG, early_read_ms=early_read_ms)
    cuts, offered = feed(silence(0.5) + speech_pcm + silence(1.0), config)
    assert offered == []
    assert cuts and all(c.read_until is None for c in cuts)


def test_a_burst_the_cut_drops_as_noise_is_not_read_ahead(sentence):
    burst = sentence[: 2 * 16000 * 120 // 1000]  # 120 ms of speech: under the 160 ms a segment needs
    cuts, offered = feed(silence(0.5) + burst + silence(1.0))
    assert cuts == [] and offered == []


def test_a_cut_at_the_cap_or_by_the_client_reads_everything(speech_pcm, sentence):
    seg = Segmenter(silero_detector(), replace(CONFIG, max_seconds=1.0))
    capped = [s for i, f in enumerate(frames(speech_pcm)) for s in seg.feed(f, now=i * 0.02)]
    assert capped and all(s.cut == "max_length" and s.read_until is None for s in capped)
    seg = Segmenter(silero_detector(), CONFIG)
    for i, f in enumerate(frames(sentence + silence(0.15))):
        assert seg.feed(f, now=i * 0.02) == []
    assert seg.read_ahead() is not None  # in the pause...
    ended = seg.end_utterance(now=9.0)
    assert ended is not None and ended.cut == "end_utterance" and ended.read_until is None  # ...but ended by hand


# --- the cascade keeps the read for its cut ---------------------------------------------------------------------


class CountingAsr:
    """A recogniser that says the same words for any speech and records what it was asked to read."""

    def __init__(self, seconds: float = 0.0, fail: bool = False) -> None:
        self.calls: list[tuple[np.ndarray, bool, bool]] = []  # (audio, careful, revision)
        self.seconds, self.fail = seconds, fail
        self.lock = threading.Lock()
        self.reading = threading.Event()  # set as a read starts

    def languages(self) -> set[str]:
        return {"en", "de"}

    def recognize(self, audio, language, candidates=(), voiced_seconds=None, revision=False, careful=False,
                  halt=None, context=None, held=None) -> Recognized | None:  # fmt: skip
        with self.lock:
            self.calls.append((np.array(audio), careful, revision))
        self.reading.set()
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("decoder failed")
        return Recognized("Good morning, everyone.", language or "en", -0.2, 0.01, beam=careful)

    def reads_of(self, audio: np.ndarray) -> list[tuple[bool, bool]]:
        return [(careful, revision) for a, careful, revision in self.calls if np.array_equal(a, audio)]


def test_a_read_ahead_is_taken_once_by_the_same_read_and_by_nothing_else():
    asr = CountingAsr()
    reads = ReadsAhead(asr)
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    reads.read(audio, "en", ("de", "en"), 0.5)
    assert asr.reads_of(audio) == [(True, False)]  # careful: a beam where the engine has one
    assert reads.take(audio, "en", ("en", "de"), 0.5) is not None  # hints in any order
    assert reads.take(audio, "en", ("en", "de"), 0.5) is None  # taken once
    reads.read(audio, "en", (), 0.5)
    for other in [(audio * 0.5, "en", (), 0.5), (audio, "de", (), 0.5), (audio, None, (), 0.5), (audio, "en", (), 0.4),
                  (audio[:-1], "en", (), 0.5), (audio, "en", ("fr",), 0.5)]:  # fmt: skip
        assert reads.take(*other) is None
    found = reads.take(audio.copy(), "en", (), 0.5)  # the same samples in another array
    assert found is not None and found[0] is not None and found[0].text == "Good morning, everyone."
    assert len(asr.calls) == 2


def test_a_cut_waits_for_its_read_still_running_and_reads_itself_after_a_failed_one():
    asr = CountingAsr(seconds=0.3)
    reads = ReadsAhead(asr)
    audio = np.full(8000, 0.1, np.float32)
    running = threading.Thread(target=reads.read, args=(audio, "en", (), None))
    running.start()
    assert asr.reading.wait(5)
    began = time.monotonic()
    found = reads.take(audio, "en", (), None)
    assert found is not None and 0.05 < time.monotonic() - began < 5
    running.join(5)
    assert len(asr.calls) == 1
    failing = ReadsAhead(CountingAsr(fail=True))
    with pytest.raises(RuntimeError):
        failing.read(audio, "en", (), None)
    assert failing.take(audio, "en", (), None) is None  # read it yourself


def test_reads_ahead_are_bounded_oldest_first():
    reads = ReadsAhead(CountingAsr(), keep=3)
    clips = [np.full(1600, 0.01 * (k + 1), np.float32) for k in range(5)]
    for clip in clips:
        reads.read(clip, "en", (), None)
    assert len(reads) == 3
    assert reads.take(clips[0], "en", (), None) is None and reads.take(clips[1], "en", (), None) is None
    assert all(reads.take(c, "en", (), None) is not None for c in clips[2:])


@pytest.fixture
def engine() -> Iterator[tuple[CascadeEngine, CountingAsr]]:
    asr = CountingAsr()
    cascade = CascadeEngine(asr, Router([]), Voices([]))
    try:
        yield cascade, asr
    finally:
        cascade.close()


def utterance(read_until: int | None = 16000, **changes: Any) -> Utterance:
    speech = 0.3 * np.sin(2 * np.pi * 200 * np.arange(24000) / 16000).astype(np.float32)
    probs = np.r_[np.full(31, 0.9), np.zeros(15)].astype(np.float32)
    return replace(Utterance(speech, "en", ("en",), probs, read_until=read_until), **changes)


def test_the_engine_reads_a_cut_once_when_it_was_read_ahead(engine):
    cascade, asr = engine
    cut = utterance()
    cascade.read_early(replace(cut, audio=np.r_[cut.audio[:16000], np.zeros(8000, np.float32)]))
    transcript = cascade.transcribe(cut)
    assert transcript is not None and transcript.early and transcript.beam
    assert len(asr.calls) == 1
    read, careful, _ = asr.calls[0]
    assert careful and not read[16000:].any() and np.array_equal(read[:16000], cut.audio[:16000])
    again = cascade.transcribe(cut)  # taken once: a second first pass of it reads for itself
    assert again is not None and not again.early and len(asr.calls) == 2
    assert np.array_equal(asr.calls[1][0], read)  # from the same samples: the silence past read_until as zero


@pytest.mark.parametrize(
    "changes",
    [{"read_until": 16512}, {"read_until": None}, {"revision": True}, {"language": "de"}, {"candidates": ("en", "fr")}],
)
def test_the_engine_reads_again_whatever_differs_from_the_read_ahead(engine, changes):
    cascade, asr = engine
    cascade.read_early(utterance())
    transcript = cascade.transcribe(utterance(**changes))
    assert transcript is not None and not transcript.early
    assert len(asr.calls) == 2


# --- the engine queue and one speaker's stream -----------------------------------------------------------------


async def test_early_reads_go_as_partials_do_and_are_not_counted_as_partials():
    metrics = Metrics()
    with ThreadPoolExecutor(1) as pool:
        q = InferenceQueue(pool, 1, 8, 60, metrics)
        gate = threading.Event()
        async with asyncio.timeout(10):
            running = asyncio.create_task(q.render(gate.wait, 10, owner="a"))
            await until(lambda: q.busy)
            with pytest.raises(Shed, match="busy"):
                await q.partial(str, "early", owner="b", max_wait=1, early=True)
            gate.set()
            await running
            assert await q.partial(str, "early", owner="b", max_wait=1, early=True) == "early"
    assert metrics.snapshot()["partials"] == {"decodes": 0, "shed": {"busy": 0, "stale": 0, "elsewhere": 0},
                                              "decode_ms": {"count": 0, "p50": None, "p95": None}}  # fmt: skip


class Reader:
    """An engine that reads ahead by recording what it was asked."""

    def __init__(self) -> None:
        self.read: list[Utterance] = []

    def read_early(self, utterance: Utterance) -> None:
        self.read.append(utterance)


async def test_a_pause_is_read_once_and_tried_again_while_the_engine_is_busy():
    h = PipelineHarness()
    reader = Reader()
    try:
        ann = h.join("Ann", "en")
        h.join("Bob", "fr")
        spawned: list[asyncio.Task[Any]] = []

        def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
            spawned.append(asyncio.create_task(coro))
            return spawned[-1]

        stream = EarlyReads(reader, h.queue, h.pipeline, h.metrics).stream(ann, spawn)
        ahead = ReadAhead(1, np.ones(16000, np.float32), np.ones(31, np.float32), 12800, 1.0)
        gate = threading.Event()
        async with asyncio.timeout(10):
            final = asyncio.create_task(h.queue.render(gate.wait, 10, owner="bob-id"))  # a final of Bob's
            await until(lambda: h.queue.busy)
            for _ in range(3):  # three VAD steps of the same pause while the engine is busy
                stream.after_batch(ahead)
                await asyncio.gather(*spawned)
            assert reader.read == [] and h.metrics.early_reads["busy"] == 1  # tried each step, counted once
            gate.set()
            await final
            stream.after_batch(ahead)
            await asyncio.gather(*spawned)
            stream.after_batch(ahead)  # read already: not again
            await asyncio.gather(*spawned)
        assert len(reader.read) == 1 and h.metrics.early_reads["run"] == 1
        (asked,) = reader.read
        assert asked.read_until == 12800 and asked.language == "en" and asked.candidates == ("en", "fr")
    finally:
        h.close()


# --- through the real app -----------------------------------------------------------------------------------------


def _speak(ws, pcm: bytes) -> None:
    """At real-time pace, hands-free: no end_utterance."""
    started = time.monotonic()
    for i, frame in enumerate(frames(pcm)):
        ws.send_bytes(frame)
        time.sleep(max(0.0, started + (i + 1) * 0.02 - time.monotonic()))


@dataclass
class Run:
    transcripts: list[dict]
    early: dict[str, Any]
    reads: list[list[tuple[bool, bool]]]  # per transcript: how its cut's samples were read (careful, revision)


def _conversation(tmp_path, early_read_ms: int) -> Run:
    asr = CountingAsr(seconds=0.15)
    cascade = CascadeEngine(asr, Router([]), Voices([]))
    settings = Settings(data_dir=tmp_path, engine="cascade", early_read_ms=early_read_ms, revisions=False,
                        partials=False)  # fmt: skip
    cuts: list[Segment] = []
    feed_many = Segmenter.feed_many

    def recorded(self: Segmenter, chunks: Any) -> list[Segment]:
        out = feed_many(self, chunks)
        cuts.extend(out)
        return out

    pcm = pcm16(read_wav(LONG_CLIP))
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Segmenter, "feed_many", recorded)
            app = create_app(settings, engine=cascade, embedder=None)
            with BoundedClient(app) as c, c.websocket_connect("/ws/client") as ws:
                ws.send_text(json.dumps({"type": "join", "name": "Ann", "language": "en"}))
                assert ws.receive_json()["type"] == "welcome"
                _speak(ws, silence(0.3) + pcm + silence(0.6) + pcm[: len(pcm) // 3] + silence(1.0))
                transcripts: list[dict] = []
                deadline = time.monotonic() + 20
                while len(transcripts) < len(cuts) and time.monotonic() < deadline:
                    msg = ws.receive_json()  # bounded (tests/wsclient.py)
                    if msg["type"] == "transcript":
                        transcripts.append(msg)
                early = c.get("/metrics").json()["early_reads"]
    finally:
        cascade.close()
    assert cuts and len(transcripts) == len(cuts), (len(transcripts), len(cuts))
    return Run(transcripts, early, [asr.reads_of(read_as_cut(cut)) for cut in cuts])


def test_hands_free_each_cut_is_read_once_from_its_early_read(tmp_path):
    run = _conversation(tmp_path, 100)
    assert all(t["text"] == "Good morning, everyone." for t in run.transcripts)
    # Each cut at a pause: read once, carefully; ahead of the cut unless the engine was busy in its pause (it is idle
    # here but for this speaker's own earlier turn, which a VAD that cuts the clip at another pause may bring near).
    assert run.reads == [[(True, False)]] * len(run.transcripts)
    assert run.early["used"] >= max(1, len(run.transcripts) - run.early["busy"] - run.early["stale"])
    assert run.early["run"] >= run.early["used"]
    assert run.early["read_ms"]["count"] == run.early["run"] and run.early["read_ms"]["p50"] >= 150  # the ASR's 0.15 s


def test_hands_free_with_early_reads_off_each_cut_reads_for_itself(tmp_path):
    run = _conversation(tmp_path, 0)
    assert run.reads == [[(True, False)]] * len(run.transcripts)
    assert run.early == {"run": 0, "used": 0, "busy": 0, "stale": 0, "elsewhere": 0,
                         "read_ms": {"count": 0, "p50": None, "p95": None}}  # fmt: skip
