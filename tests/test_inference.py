"""The shared engine queue: renders before new transcriptions, the bound, the late and full shedding policy."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from babelfish.inference import InferenceQueue, Shed
from babelfish.metrics import Metrics


@pytest.fixture
def pool():
    with ThreadPoolExecutor(1) as executor:
        yield executor


def blocker() -> tuple[threading.Event, object]:
    gate = threading.Event()

    def work() -> str:
        assert gate.wait(10)
        return "blocked"

    return gate, work


async def test_render_runs_before_a_waiting_transcription(pool):
    q = InferenceQueue(pool, 1, 8, 60, Metrics())
    gate, work = blocker()
    order: list[str] = []
    first = asyncio.create_task(q.render(work, owner="a"))
    await asyncio.sleep(0.05)
    later = asyncio.create_task(q.transcribe(order.append, "transcribe", owner="b"))
    sooner = asyncio.create_task(q.render(order.append, "render", owner="a"))
    await asyncio.sleep(0.05)
    assert q.waiting == 2 and q.busy == 1
    gate.set()
    async with asyncio.timeout(5):
        await asyncio.gather(first, later, sooner)
        await q.idle()
    assert order == ["render", "transcribe"]


async def test_full_queue_sheds_the_busiest_speakers_oldest(pool):
    metrics = Metrics()
    q = InferenceQueue(pool, 1, 3, 60, metrics)
    gate, work = blocker()
    running = asyncio.create_task(q.render(work, owner="x"))
    await asyncio.sleep(0.05)
    x1 = asyncio.create_task(q.transcribe(str, "x1", owner="x"))
    x2 = asyncio.create_task(q.transcribe(str, "x2", owner="x"))
    y1 = asyncio.create_task(q.transcribe(str, "y1", owner="y"))
    await asyncio.sleep(0.01)
    y2 = asyncio.create_task(q.transcribe(str, "y2", owner="y"))  # the 4th: x has most waiting
    await asyncio.sleep(0.05)
    with pytest.raises(Shed) as info:
        await asyncio.wait_for(x1, 1)
    assert info.value.reason == "full"
    gate.set()
    async with asyncio.timeout(5):
        assert await asyncio.gather(running, x2, y1, y2) == ["blocked", "x2", "y1", "y2"]
    assert metrics.shed == 1 and metrics.snapshot()["utterances_shed"] == 1
    assert 'babelfish_utterances_shed_total{reason="full"} 1.0' in metrics.prometheus().decode()


async def test_late_transcription_is_shed_not_run(pool):
    metrics = Metrics()
    q = InferenceQueue(pool, 1, 8, 0.2, metrics)
    gate, work = blocker()
    ran: list[str] = []
    running = asyncio.create_task(q.render(work, owner="a"))
    await asyncio.sleep(0.05)
    late = asyncio.create_task(q.transcribe(ran.append, "late", owner="b"))
    await asyncio.sleep(0.4)  # past its speech end + max_wait while the worker is busy
    gate.set()
    with pytest.raises(Shed) as info:
        await asyncio.wait_for(late, 5)
    assert info.value.reason == "late" and ran == []
    await asyncio.wait_for(running, 5)
    assert metrics.snapshot()["inference_waiting"] == 0


async def test_a_caller_that_leaves_keeps_its_slot_until_the_thread_is_done(pool):
    q = InferenceQueue(pool, 1, 8, 60, Metrics())
    gate, work = blocker()
    task = asyncio.create_task(q.render(work, owner="a"))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0.05)
    assert q.busy == 1  # the thread still runs: the queue does not pretend otherwise
    idle = asyncio.create_task(q.idle())
    await asyncio.sleep(0.05)
    assert not idle.done()
    gate.set()
    await asyncio.wait_for(idle, 5)
    assert q.busy == 0


async def test_no_revision_between_a_transcription_and_its_render(pool):
    """A finished transcription owes its render until its caller releases it: a waiting revision does not take the
    worker in that gap (the speaker's label is being looked up), however long it lasts."""
    q = InferenceQueue(pool, 1, 8, 60, Metrics(), revision_max_wait=60)
    gate, work = blocker()
    order: list[str] = []
    owed = q.owe_render()
    final = asyncio.create_task(q.transcribe(work, owner="a", owed=owed))
    await asyncio.sleep(0.05)
    revision = asyncio.create_task(q.revise(order.append, "revision", owner="b"))
    await asyncio.sleep(0.05)
    gate.set()
    assert await asyncio.wait_for(final, 5) == "blocked"
    await asyncio.sleep(0.5)  # longer than the partials' hold: the render is still owed
    assert order == [] and not revision.done()
    owed.release()
    async with asyncio.timeout(5):
        await q.render(order.append, "render", owner="a")  # asked for in the same step, as the pipeline does
        await revision
        await q.idle()
    assert order == ["render", "revision"]


async def test_a_released_render_debt_lets_the_revision_run(pool):
    """An utterance given up after its transcription (no speech, speaker gone) owes nothing: the revision runs."""
    q = InferenceQueue(pool, 1, 8, 60, Metrics(), revision_max_wait=60)
    gate, work = blocker()
    owed = q.owe_render()
    final = asyncio.create_task(q.transcribe(work, owner="a", owed=owed))
    await asyncio.sleep(0.05)
    revision = asyncio.create_task(q.revise(str, "revision", owner="b"))
    gate.set()
    assert await asyncio.wait_for(final, 5) == "blocked"
    await asyncio.sleep(0.05)
    assert not revision.done()
    owed.release()
    owed.release()  # twice: nothing more
    assert await asyncio.wait_for(revision, 5) == "revision"
    q.drop_revisions()  # nothing waits: a no-op


async def test_draining_drops_waiting_revisions(pool):
    q = InferenceQueue(pool, 1, 8, 60, Metrics(), revision_max_wait=60)
    gate, work = blocker()
    running = asyncio.create_task(q.render(work, owner="a"))
    await asyncio.sleep(0.05)
    ran: list[str] = []
    revision = asyncio.create_task(q.revise(ran.append, "revision", owner="b"))
    await asyncio.sleep(0.05)
    q.drop_revisions()
    with pytest.raises(Shed) as info:
        await asyncio.wait_for(revision, 5)
    assert info.value.reason == "busy"
    gate.set()
    await asyncio.wait_for(running, 5)
    assert ran == []
