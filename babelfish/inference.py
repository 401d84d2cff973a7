"""The engine's queue, shared by every speaker: priority, a bound, and a written shedding policy.

Engine calls run in the inference executor, `workers` at a time. Waiting calls are ordered: finishing an utterance
already transcribed (its render) comes before starting a new one, then first come, first served. Shedding policy,
so that delay never grows without a word when speech arrives faster than the engine can take it:

- late: a transcription that has waited `max_wait` seconds for the engine is skipped — by the time it ran, the
  conversation has moved on (the wait is counted here, in the engine's queue: lag elsewhere, the VAD's, has its own
  bound and notice in intake.py, and shedding here would not relieve it);
- full: when `max_waiting` transcriptions wait already, the oldest waiting one of the speaker with the most waiting is
  skipped, so one talkative speaker cannot starve the others.

A skipped call raises `Shed` in its caller (the pipeline tells the speaker and counts it in /metrics). Renders are never
skipped.

Text first: speech never delays anyone's text. The pipeline renders an utterance's texts (transcript, then
translations) as one call, and its speech as another, a speech job, which runs in its own lane: one speech job at a
time, in an executor of its own, so a speech job never holds a worker a transcription or a render could use, and
speech plays in the order it was asked for (two jobs at once would interleave two utterances' sentences where a voice
streams sentence by sentence).
A speech job starts only when no render and no transcription waits and no finished transcription owes its render
(below): it then shares the CPU with text already running, never the other way round. Speech jobs start first come,
first served. Shedding policy for speech (the text is out already; only the sound is skipped):
- late: a speech job that could not start within `speech_max_wait` seconds of being asked for (its text was sent
  then) is skipped: speech that far behind its text would talk over the conversation that followed;
- full: when `max_waiting` speech jobs wait already, the oldest waiting one is skipped (the freshest speech matters
  most).
A speech job that already runs finishes. A skipped one raises `Shed` in its caller, which counts it in /metrics and
tells the listeners who wanted to hear it (docs/protocol.md, `speech_skipped`). Revisions and partials do not wait for
speech (they use the workers, speech has its own lane).

Revisions (a finished turn re-decoded whole: babelfish/revisions.py) come last and are the first to go. They run only
when no render and no transcription waits, nor while a finished transcription still owes its render (below); and, as
they only improve text listeners already have:
- busy: a revision asked for while `BUSY_WAITING` transcriptions wait is skipped at once, and every waiting revision
  is skipped the moment a transcription is shed — an engine that is behind spends nothing on revisions;
- late: a revision that has waited `revision_max_wait` seconds is skipped (the conversation has moved on);
- full: beyond `max_waiting` waiting revisions, the oldest is skipped;
- idle only (a one-piece turn's revision, worth less; its caller waits for `quiet` first): skipped ("busy") at once
  unless nothing runs, nothing waits and no render is owed.
A revision that already runs finishes (it holds a worker for one re-decode of at most ~28 s of audio, or three of a
short one-piece turn: babelfish/engines/cascade/asr.py).

Streaming partials (babelfish/partials.py) come after everything, revisions included, and back off first: a partial runs
only while no other kind of call runs or waits (other partials may run beside it, one per free worker: two people
talking each get theirs), and never waits: it is dropped at once ("busy") when a transcription, render or revision
runs or waits, or no worker is free (a partial that started beside a final would share the CPU with it: with six
people talking, partials in every free moment slowed the finals by a fifth, docs/benchmarks.md), and for
`partial_hold` seconds after a transcription finishes (its render is asked for after the speaker's label is known: no
partial may take a worker in between). Should one wait after all, it goes after every other call and is skipped
("stale") after `max_wait` of its own. Their caller keeps at most one in flight per speaker. Partial sheds are
counted apart from utterances. Early reads (an utterance's first pass read in the pause that ends it,
babelfish/early.py) go exactly as partials do, one in flight per speaker too (its partials stop in that pause); their
caller counts them, not as partials.

Behind: a transcription may ask to be told, as it starts, whether the engine is behind: another transcription is
waiting then, or this one had to wait for a worker itself (with two workers and six people talking, a transcription
seldom waits behind another, but often waits for a worker). The pipeline decodes carefully (the cascade: a beam
search) only when the engine is not behind: a beam costs ~8% more engine time, which a backlog cannot afford
(docs/benchmarks.md, "A beam on the first pass").

Renders owed: a transcription submitted with an `Owed` (the pipeline's) owes its render from the moment it finishes
until its caller calls `Owed.release` (the render is being asked for, or the utterance was given up: release in a
`finally`). Meanwhile no revision and no partial starts, however long the speaker's label takes: the final's render
goes first. A transcription whose caller went away owes nothing.

A call whose caller went away still runs to the end in its thread (threads cannot be stopped) and keeps its slot until
then, so the count of busy workers is always the truth.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from babelfish.metrics import Metrics

T = TypeVar("T")
RENDER, TRANSCRIBE, REVISE, PARTIAL = 0, 1, 2, 3  # priorities: lower runs first
SPEAK = 4  # speech jobs: their own lane (module docstring), never in the workers' heap
SPEECH_LANES = 1  # speech jobs at once: one, so speech plays in order (module docstring)
ShedReason = Literal["late", "full", "busy", "stale"]
BUSY_WAITING = 2  # transcriptions waiting that make the engine "behind" for revisions


class Shed(Exception):
    def __init__(self, reason: ShedReason) -> None:
        super().__init__(reason)
        self.reason: ShedReason = reason


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    fn: Callable[..., Any] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    future: asyncio.Future[Any] = field(compare=False)
    owner: str = field(compare=False)
    deadline: float | None = field(compare=False)
    owed: Owed | None = field(compare=False, default=None)
    tell_behind: bool = field(compare=False, default=False)  # called with one more argument: `behind` (docstring)
    queued: bool = field(compare=False, default=False)  # it did not start when submitted: it waited for a worker
    early: bool = field(compare=False, default=False)  # an early read (a partial's place): its caller counts its sheds


class Owed:
    """A final's render, owed from the end of its transcription until `release` (module docstring). Idempotent."""

    def __init__(self, queue: InferenceQueue) -> None:
        self._queue = queue

    def release(self) -> None:
        self._queue._release(self)


class InferenceQueue:
    def __init__(
        self,
        executor: Executor,
        workers: int,
        max_waiting: int,
        max_wait: float,
        metrics: Metrics,
        revision_max_wait: float = 5.0,
        partial_hold: float = 0.3,
        speech_executor: Executor | None = None,  # None: `executor` (it then needs a thread more)
        speech_max_wait: float = 3.0,
    ) -> None:
        self._executor = executor
        self._speech_executor = speech_executor or executor
        self._speech_max_wait = speech_max_wait
        self._speech: deque[_Job] = deque()  # waiting speech jobs, oldest first
        self._speech_free = SPEECH_LANES
        self._partial_hold = partial_hold
        self._partials_after = 0.0  # no partial starts before this (monotonic): a final is being completed
        self._revision_max_wait = revision_max_wait
        self._free = workers
        self._others_running = 0  # calls running that are not partials (partials may run beside each other only)
        self._workers = workers
        self._max_waiting = max_waiting
        self._max_wait = max_wait
        self._metrics = metrics
        self._heap: list[_Job] = []
        self._owed: set[Owed] = set()  # finished transcriptions whose render is not asked for yet
        self._seq = itertools.count()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def executor(self) -> Executor:
        return self._executor

    @property
    def waiting(self) -> int:
        return sum(1 for j in self._heap if not j.future.done())

    @property
    def busy(self) -> int:
        return self._workers - self._free

    @property
    def speech_waiting(self) -> int:
        return sum(1 for j in self._speech if not j.future.done())

    @property
    def speaking(self) -> int:
        return SPEECH_LANES - self._speech_free

    @property
    def quiet(self) -> bool:
        """Nothing runs or waits (speech included), no render is owed: an idle-only revision would start now."""
        return (
            self._free == self._workers
            and self._speech_free == SPEECH_LANES
            and not self.waiting
            and not self.speech_waiting
            and not self._owed
        )

    @property
    def revision_max_wait(self) -> float:
        return self._revision_max_wait

    async def transcribe(
        self, fn: Callable[..., T], *args: Any, owner: str, owed: Owed | None = None, tell_behind: bool = False
    ) -> T:
        """Run a transcription; raises `Shed` if the policy skips it. With `owed`, its render is owed once it is done:
        the caller must `owed.release()` (module docstring). With `tell_behind`, `fn` gets one more argument: whether
        the engine was behind as it started (module docstring)."""
        deadline = time.monotonic() + self._max_wait
        return await self._submit(fn, args, TRANSCRIBE, owner, deadline, owed, tell_behind)

    def owe_render(self) -> Owed:
        return Owed(self)

    def _release(self, owed: Owed) -> None:
        if owed in self._owed:
            self._owed.discard(owed)
            # Not at once: the caller asks for the render right after releasing, and it must be queued first.
            asyncio.get_running_loop().call_soon(self._dispatch)

    async def render(self, fn: Callable[..., T], *args: Any, owner: str) -> T:
        return await self._submit(fn, args, RENDER, owner, None)

    async def speak(self, fn: Callable[..., T], *args: Any, owner: str) -> T:
        """Run a speech job in the speech lane, after every text; raises `Shed` if the policy skips it (module
        docstring)."""
        waiting = [j for j in self._speech if not j.future.done()]
        if len(waiting) >= self._max_waiting:
            self._shed(waiting[0], "full")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        deadline = time.monotonic() + self._speech_max_wait
        self._speech.append(_Job(SPEAK, next(self._seq), fn, args, future, owner, deadline))
        self._idle.clear()
        self._dispatch()
        return await future

    async def revise(self, fn: Callable[..., T], *args: Any, owner: str, idle_only: bool = False) -> T:
        """Run a revision at the lowest priority; raises `Shed` if the policy skips it (module docstring)."""
        if len(self._waiting_of(TRANSCRIBE)) >= BUSY_WAITING:
            raise Shed("busy")
        if idle_only and not self.quiet:
            raise Shed("busy")
        revisions = self._waiting_of(REVISE)
        if len(revisions) >= self._max_waiting:
            self._shed(min(revisions), "full")
        return await self._submit(fn, args, REVISE, owner, time.monotonic() + self._revision_max_wait)

    def drop_revisions(self) -> None:
        """Skip every waiting revision ("busy"): the server drains."""
        for job in self._waiting_of(REVISE):
            self._shed(job, "busy")

    def _waiting_of(self, priority: int) -> list[_Job]:
        return [j for j in self._heap if j.priority == priority and not j.future.done()]

    async def partial(self, fn: Callable[..., T], *args: Any, owner: str, max_wait: float, early: bool = False) -> T:
        """Run a streaming-partial call if no other kind of call runs or waits and a worker is free; raises `Shed`
        ("busy" or "stale"). `early`: an early read, which goes as a partial does but is counted by its caller."""
        if (
            self._owed
            or self._others_running
            or not self._free
            or time.monotonic() < self._partials_after
            or any(j.priority < PARTIAL and not j.future.done() for j in self._heap)
        ):
            if not early:
                self._metrics.partial_shed("busy")
            raise Shed("busy")
        return await self._submit(fn, args, PARTIAL, owner, time.monotonic() + max_wait, early=early)

    async def idle(self) -> None:
        """Wait until nothing waits and nothing runs."""
        await self._idle.wait()

    async def _submit(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        priority: int,
        owner: str,
        deadline: float | None,
        owed: Owed | None = None,
        tell_behind: bool = False,
        early: bool = False,
    ) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if priority == TRANSCRIBE:
            self._make_room()
        job = _Job(priority, next(self._seq), fn, args, future, owner, deadline, owed, tell_behind, early=early)
        heapq.heappush(self._heap, job)
        self._idle.clear()
        self._dispatch()
        job.queued = any(j is job for j in self._heap)  # not started at once: no worker was free
        return await future

    def _make_room(self) -> None:
        waiting = self._waiting_of(TRANSCRIBE)
        if len(waiting) < self._max_waiting:
            return
        per_owner = Counter(j.owner for j in waiting)
        most = max(per_owner.values())
        victim = min(j for j in waiting if per_owner[j.owner] == most)  # the oldest of the busiest speaker
        self._shed(victim, "full")

    def _shed(self, job: _Job, reason: ShedReason) -> None:
        if job.future.done():
            return
        if job.priority == PARTIAL:
            if not job.early:
                self._metrics.partial_shed("stale")  # the only way a waiting partial is skipped
            job.future.set_exception(Shed("stale"))
            return
        job.future.set_exception(Shed(reason))
        if job.priority in (REVISE, SPEAK):
            return  # counted by its caller, as a revision's or a speech job's outcome
        self._metrics.utterance_shed(reason)
        for revision in self._waiting_of(REVISE):  # the engine is behind: fresh speech first
            self._shed(revision, "busy")

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while self._free and self._heap:
            job = heapq.heappop(self._heap)
            if job.future.done():  # shed, or its caller went away
                continue
            if job.deadline is not None and time.monotonic() > job.deadline:
                self._shed(job, "late")
                continue
            if job.priority == PARTIAL and (
                self._owed or self._others_running or time.monotonic() < self._partials_after
            ):
                self._shed(job, "busy")  # counted as stale: it waited, and a final came first
                continue
            if job.priority == REVISE and self._owed:
                heapq.heappush(self._heap, job)  # a final's render is about to be asked for; released: dispatched
                break  # only revisions and partials are left behind it
            self._free -= 1
            self._others_running += job.priority != PARTIAL
            args = (*job.args, job.queued or bool(self._waiting_of(TRANSCRIBE))) if job.tell_behind else job.args
            running = loop.run_in_executor(self._executor, job.fn, *args)
            running.add_done_callback(functools.partial(self._finished, job))
        self._dispatch_speech()
        waiting = self.waiting
        self._metrics.set_waiting(waiting)
        if self._free == self._workers and not waiting:
            self._heap.clear()
            if self._speech_free == SPEECH_LANES and not self.speech_waiting:
                self._speech.clear()
                self._idle.set()

    def _dispatch_speech(self) -> None:
        now = time.monotonic()
        while self._speech and (self._speech[0].future.done() or now > (self._speech[0].deadline or now)):
            self._shed(self._speech.popleft(), "late")  # a no-op for one already done (its caller went away)
        if self._owed or any(j.priority <= TRANSCRIBE and not j.future.done() for j in self._heap):
            return  # text waits, or is about to be asked for: text first
        loop = asyncio.get_running_loop()
        while self._speech_free and self._speech:
            job = self._speech.popleft()
            if job.future.done():
                continue
            self._speech_free -= 1
            running = loop.run_in_executor(self._speech_executor, job.fn, *job.args)
            running.add_done_callback(functools.partial(self._finished, job))

    def _finished(self, job: _Job, done: asyncio.Future[Any]) -> None:
        if job.priority == SPEAK:
            self._speech_free += 1
        else:
            self._free += 1
            self._others_running -= job.priority != PARTIAL
        if job.priority == TRANSCRIBE:
            self._partials_after = time.monotonic() + self._partial_hold
            if job.owed is not None and not job.future.done() and not done.cancelled() and done.exception() is None:
                self._owed.add(job.owed)  # before the dispatch below: nothing lower may start in the gap
        if not job.future.done():
            if done.cancelled():
                job.future.cancel()
            elif done.exception() is not None:
                job.future.set_exception(done.exception())  # type: ignore[arg-type]
            else:
                job.future.set_result(done.result())
        elif not done.cancelled():
            done.exception()  # retrieved: an error nobody waits for is not logged as "never retrieved"
        self._dispatch()
