"""The first pass decodes carefully (the cascade: a beam search) only when the engine is not behind as it starts (no
other transcription waits, and it did not wait for a worker itself); the queue tells the job, the pipeline tells the
engine, /metrics counts how each first pass decoded."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from babelfish.engines.base import Transcript, Utterance
from babelfish.engines.fake import FakeEngine
from babelfish.inference import InferenceQueue
from babelfish.metrics import Metrics
from tests.pipeline_harness import PipelineHarness


async def until(check: Callable[[], object]) -> None:
    """Poll `check` until it is true (the caller's timeout bounds the wait)."""
    while True:
        if check():
            return
        await asyncio.sleep(0.01)


def tagged(tag: str, behind: bool) -> tuple[str, bool]:
    return tag, behind


def held_until(gate: threading.Event) -> Callable[[bool], bool]:
    """A transcription that holds its worker until `gate` is set, then says whether it was told it was behind."""

    def held(behind: bool) -> bool:
        assert gate.wait(10)
        return behind

    return held


async def test_the_queue_tells_a_transcription_whether_another_waits_as_it_starts():
    with ThreadPoolExecutor(1) as pool:
        q = InferenceQueue(pool, 1, 8, 60, Metrics())
        gate = threading.Event()
        async with asyncio.timeout(10):
            running = asyncio.create_task(q.transcribe(held_until(gate), owner="a", tell_behind=True))
            await until(lambda: q.busy)
            second = asyncio.create_task(q.transcribe(tagged, "b", owner="b", tell_behind=True))
            third = asyncio.create_task(q.transcribe(tagged, "c", owner="c", tell_behind=True))
            plain = asyncio.create_task(q.transcribe(str, "d", owner="d"))  # not asked: called as before
            await until(lambda: q.waiting == 3)
            gate.set()
            assert await running is False  # nothing waited when it started
            assert await second == ("b", True)  # the third and the plain one waited behind it
            assert await third == ("c", True)  # it waited for the worker itself
            assert await plain == "d"
            last = await q.transcribe(lambda behind: behind, owner="e", tell_behind=True)
        assert last is False  # a free worker, nothing waiting


async def test_with_two_workers_a_transcription_that_waited_for_a_worker_is_behind():
    # Six people on two workers: a transcription seldom waits behind another one, but it waits for a worker.
    with ThreadPoolExecutor(2) as pool:
        q = InferenceQueue(pool, 2, 8, 60, Metrics())
        gate = threading.Event()
        async with asyncio.timeout(10):
            a = asyncio.create_task(q.transcribe(held_until(gate), owner="a", tell_behind=True))
            b = asyncio.create_task(q.transcribe(held_until(gate), owner="b", tell_behind=True))  # the second worker
            await until(lambda: q.busy == 2)
            c = asyncio.create_task(q.transcribe(tagged, "c", owner="c", tell_behind=True))
            await until(lambda: q.waiting == 1)
            gate.set()
            assert await a is False and await b is False  # each found a free worker and nothing waiting
            assert await c == ("c", True)  # alone in the queue, but it had to wait


class Held(FakeEngine):
    """The test engine; the first transcription holds the only worker until `gate` is set. Keeps what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.started = threading.Event()
        self.transcribed: list[Utterance] = []
        self.rendered: list[Utterance] = []

    def transcribe(self, utterance: Utterance) -> Transcript | None:
        self.transcribed.append(utterance)
        if len(self.transcribed) == 1:
            self.started.set()
            assert self.gate.wait(10)
        return super().transcribe(utterance)

    def render(self, utterance, transcript, targets, speech=True):  # type: ignore[no-untyped-def]
        self.rendered.append(utterance)
        return super().render(utterance, transcript, targets, speech)


async def test_careful_only_when_nothing_waits_and_metrics_count_each_decode():
    engine = Held()
    h = PipelineHarness(engine)
    try:
        ann, bob, _ = h.join("Ann", "en"), h.join("Bob", "de"), h.join("Cy", "fr")
        async with asyncio.timeout(20):
            first = asyncio.create_task(h.pipeline.process(ann, h.segment(1.0)))
            await until(engine.started.is_set)
            backlog = [asyncio.create_task(h.pipeline.process(p, h.segment(s))) for p, s in ((bob, 1.5), (ann, 2.0))]
            await until(lambda: h.queue.waiting == 2)
            engine.gate.set()
            await asyncio.gather(first, *backlog)
            assert await h.pipeline.spoken(10) == 0
        careful = {round(u.seconds, 1): u.careful for u in engine.transcribed}
        assert careful == {1.0: True, 1.5: False, 2.0: False}  # both waited for the worker; 1.5 s also behind 2 s
        # What was rendered is the very utterance transcribed (an engine may cache its encoding per utterance).
        assert all(any(r is t for t in engine.transcribed) for r in engine.rendered) and engine.rendered
        assert h.metrics.snapshot()["first_passes"] == {"beam": 1, "greedy_busy": 2, "greedy": 0}
        text = h.metrics.prometheus().decode()
        assert 'babelfish_first_passes_total{decode="beam"} 1.0' in text
        assert 'babelfish_first_passes_total{decode="greedy_busy"} 2.0' in text
    finally:
        h.close()


class Greedy(FakeEngine):
    """An engine that never searches with a beam (the cascade with `asr_beam_size` 1, or one without the option)."""

    def transcribe(self, utterance: Utterance) -> Transcript | None:
        got = super().transcribe(utterance)
        return None if got is None else Transcript(got.text, got.language)


@pytest.mark.parametrize(("engine", "decode"), [(FakeEngine(), "beam"), (Greedy(), "greedy")])
async def test_an_idle_first_pass_is_counted_as_the_engine_decoded_it(engine: FakeEngine, decode: str):
    h = PipelineHarness(engine)
    try:
        ann, _ = h.join("Ann", "en"), h.join("Bob", "de")
        async with asyncio.timeout(10):
            await h.say(ann)
        passes = h.metrics.snapshot()["first_passes"]
        assert passes == {"beam": 0, "greedy_busy": 0, "greedy": 0} | {decode: 1}
    finally:
        h.close()
