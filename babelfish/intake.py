"""The intake of a joined client: what it sends, turned into utterances for the pipeline.

The receive loop never waits here: a frame is checked, stamped with its arrival time and queued, and the loop reads
the next one at once (so uvicorn keeps reading the socket and `latency_ms` starts when the frame was read from it,
not when the VAD got round to it). This client's VAD task lets ~100 ms gather, then takes everything queued at once
and cuts it in the shared VAD executor, one model call per batch (segmenter.py): a stream costs ~10 executor calls a
second, not 50, and one that fell behind catches up in larger, cheaper steps. Finished utterances wait in a small
per-speaker queue for this client's utterance worker. `rename_speaker` names a voice in the registry and tells
every room.

Bounds and overflow policies:
- audio: a token bucket of seconds of audio (`max_audio_rate` × real time beyond `audio_burst_seconds`): excess
  frames are dropped, reported once (`audio_too_fast`);
- audio waiting for the VAD: at most `vad_backlog_seconds`; beyond, new frames are dropped and the speaker told once
  per episode (`dropped_utterance`, reason `server_busy`): the server cannot keep up;
- control messages: a token bucket (`max_control_rate` per second, `control_burst`): excess messages are dropped,
  reported once (`control_too_fast`); a client that keeps flooding (10 × `control_burst` dropped) is closed 1008;
- utterances waiting for the engine, per speaker: `pending_utterances_max`; beyond, the oldest is dropped and the
  speaker told (`dropped_utterance`, reason `too_fast`).

`finish()` is how an intake ends when the speaker hangs up or the server drains: nothing new is taken, what already
arrived is cut (the utterance in progress is ended as if the speaker had sent `end_utterance`) and every utterance
queued is processed. Callers bound it in time (`drain_seconds`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from babelfish import protocol as proto
from babelfish.echoes import HORIZON, Verdict, envelopes, heard_elsewhere
from babelfish.hub import Hub
from babelfish.joining import Member
from babelfish.protocol import ProtocolError
from babelfish.segmenter import OpenSegment, ReadAhead, Segment, Segmenter
from babelfish.tasks import TaskSet

log = logging.getLogger(__name__)
BATCH_SECONDS = 0.1  # audio a stream gathers before its VAD step (see _cut)
FLOOD_FACTOR = 10  # control messages dropped, in units of control_burst, before a flooding client is closed


class TokenBucket:
    """Units a client may send: refills at `rate` per wall-clock second, holds at most `burst`."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate, self._burst, self._level, self._at = rate, burst, burst, now

    def take(self, amount: float, now: float) -> bool:
        self._level = min(self._burst, self._level + (now - self._at) * self._rate)
        self._at = now
        if amount > self._level:
            return False
        self._level -= amount
        return True


# What waits for the VAD task: a frame with its arrival time, or an end_utterance with its arrival time.
_Frame = tuple[bytes, float]


class Intake:
    def __init__(self, hub: Hub, member: Member) -> None:
        s = hub.settings
        now = time.monotonic()
        self._hub, self._member = hub, member
        self._room = member.participant.room_name
        # Its own tasks, not the session's: they outlive a speaker who hangs up until what was said is delivered.
        self._tasks = TaskSet()
        self._budget = TokenBucket(s.max_audio_rate, s.audio_burst_seconds, now)
        self._control = TokenBucket(s.max_control_rate, s.control_burst, now)
        self._warned_rate = self._warned_control = self._warned_backlog = False
        self._told_loud = False  # the speaker was told their phone hears a crowd (once a connection)
        self._control_dropped = 0
        self._segmenter: Segmenter | None = None  # made on the first audio: listeners that never speak cost no VAD
        self._frames: deque[_Frame | float] = deque()
        self._backlog_bytes = 0
        self._max_backlog_bytes = int(s.vad_backlog_seconds * member.sample_rate * 2)
        self._wake = asyncio.Event()
        self._flush = asyncio.Event()
        self._vad_idle = asyncio.Event()
        self._vad_idle.set()
        self._vad_task: asyncio.Task[None] | None = None
        self._pending: asyncio.Queue[Segment] = asyncio.Queue(s.pending_utterances_max)
        self._accepting = True
        # Streaming partials of this speaker's open segment (babelfish/partials.py), when the server has them.
        self._partials = hub.partials.stream(member.participant, self._tasks.spawn) if hub.partials else None
        # Reads of this speaker's utterances in the pause that ends them (babelfish/early.py), when the server has them.
        self._early = hub.early.stream(member.participant, self._tasks.spawn) if hub.early else None
        self._tasks.spawn(self._utterance_worker())
        hub.intakes.add(self)

    # --- from the receive loop: never waits --------------------------------------------------------------------

    async def on_text(self, raw: str) -> None:
        now = time.monotonic()
        if not self._control.take(1, now):
            self._control_dropped += 1
            if self._control_dropped > FLOOD_FACTOR * self._hub.settings.control_burst:
                raise ProtocolError(
                    "control_too_fast", "too many control messages: closing", proto.CLOSE_POLICY_VIOLATION
                )
            if not self._warned_control:
                self._warned_control = True
                raise ProtocolError(
                    "control_too_fast",
                    f"control messages are accepted at up to {self._hub.settings.max_control_rate:g} a second; "
                    "messages were dropped",
                )
            return
        message = proto.parse_client_message(raw, self._hub.settings.max_text_bytes)
        if isinstance(message, proto.Join):
            raise ProtocolError("already_joined", "this connection has already joined; reconnect to change room")
        if isinstance(message, proto.Ping):
            self._member.participant.send(proto.Pong(id=message.id))
        elif isinstance(message, proto.RenameSpeaker):
            await self._rename(message)
        elif isinstance(message, proto.EndUtterance) and self._segmenter is not None and self._accepting:
            self._enqueue(now)

    async def _rename(self, message: proto.RenameSpeaker) -> None:
        name = " ".join(message.name.split())
        limit = self._hub.settings.max_name_chars
        if not name or len(name) > limit:
            raise ProtocolError("invalid_name", f"names are 1 to {limit} characters")
        renamed = await self._hub.speakers.rename(message.id, name)
        if renamed is None:
            raise ProtocolError("unknown_speaker", f"no known speaker {message.id!r} (is speaker recognition on?)")
        log.info("%s renamed speaker %s to %r", self._member.participant.name, renamed.id, renamed.name)
        update = proto.SpeakerRenamed(speaker=renamed)
        for room in self._hub.rooms:
            room.broadcast(update)
        self._hub.cluster.everywhere(update.encode())  # voices are shared: every server's clients hear of it

    async def on_audio(self, data: bytes) -> None:
        now = time.monotonic()  # arrival: the receive loop reads every frame as soon as uvicorn has it
        s = self._hub.settings
        if len(data) > s.max_frame_bytes:
            raise ProtocolError(
                "frame_too_large", f"audio frames are limited to {s.max_frame_bytes} bytes", proto.CLOSE_TOO_BIG
            )
        if len(data) % 2:
            raise ProtocolError("bad_audio", "audio frames are 16-bit samples: the byte count must be even")
        if not data or not self._accepting:
            return
        if not self._budget.take(len(data) / 2 / self._member.sample_rate, now):
            # Faster than real time for long: drop, so one client cannot starve the shared VAD threads.
            if not self._warned_rate:
                self._warned_rate = True
                raise ProtocolError(
                    "audio_too_fast", f"audio is accepted at up to {s.max_audio_rate:g}× real time; frames were dropped"
                )
            return
        if self._backlog_bytes + len(data) > self._max_backlog_bytes:
            if not self._warned_backlog:  # once per episode: the flag clears when the backlog is gone
                self._warned_backlog = True
                self._hub.metrics.audio_dropped()
                who = self._member.participant.id
                log.warning("%s: audio waiting for the VAD is over %g s; dropping frames", who, s.vad_backlog_seconds)
                self._member.participant.send(proto.Notice.server_busy())
            return
        if self._segmenter is None:
            detector = self._hub.detector_factory()
            self._segmenter = Segmenter(detector, self._hub.segmenter_config, self._member.sample_rate)
            self._hub.pipeline.turns.watch(self._member.participant.id, self._speech_since)
            self._vad_task = self._tasks.spawn(self._cut())
        self._backlog_bytes += len(data)
        self._enqueue((data, now))

    def _enqueue(self, item: _Frame | float) -> None:
        self._frames.append(item)
        self._vad_idle.clear()
        self._wake.set()
        if isinstance(item, float):
            self._flush.set()  # an end of utterance is cut at once

    # --- VAD and utterances -------------------------------------------------------------------------------------

    async def _cut(self) -> None:
        """This client's VAD task: everything queued so far goes to the VAD executor in one call."""
        assert self._segmenter is not None
        segmenter, loop = self._segmenter, asyncio.get_running_loop()
        while True:
            if not self._frames:
                self._vad_idle.set()
                self._warned_backlog = False
                await self._wake.wait()
            first = self._frames[0]
            if self._accepting and not isinstance(first, float):
                # Let a few frames gather: one executor call per BATCH_SECONDS of a stream rather than per 20 ms
                # frame (fewer thread hand-offs, and the model sees several windows at once). It delays a cut by
                # at most BATCH_SECONDS; an end_utterance or a hang-up does not wait.
                delay = first[1] + BATCH_SECONDS - time.monotonic()
                if delay > 0:
                    self._flush.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._flush.wait()
            self._wake.clear()
            batch: list[_Frame] = []
            end: float | None = None
            while self._frames and end is None:
                item = self._frames.popleft()
                if isinstance(item, float):
                    end = item
                else:
                    batch.append(item)
            self._backlog_bytes -= sum(len(data) for data, _ in batch)
            partials = self._partials
            snapshot: Callable[[Segmenter], OpenSegment | None] | None = None
            if partials is not None and self._accepting and partials.decode_due(time.monotonic()):
                snapshot = partials.snapshot  # a partial's audio, the whole open segment, is copied in the VAD thread
            early = self._early
            ahead = early.snapshot if early is not None and self._accepting else None
            me, echoes = self._member.participant.id, self._hub.echoes
            # A copy told to the other servers of a cluster carries its envelopes, computed here in the VAD thread.
            shared = echoes.shares(self._room)
            segments, opened, described, read_ahead = await loop.run_in_executor(
                self._hub.vad_executor, _cut_batch, segmenter, batch, end, snapshot, shared, ahead
            )
            if segments and not shared and echoes.shares(self._room):
                # A phone of another server spoke up while the batch ran (its first words in the room): its copies of
                # this speech will wait for ours only if ours are told, with their envelopes, before this phone's
                # speech is told closed below. Rare (once per room and 30 min), and the envelopes cost milliseconds.
                described = await asyncio.to_thread(_describe, segments)
            for segment, features in zip(segments, described, strict=True):
                self._queue(segment, features)
            if not self._told_loud and self._accepting and segmenter.hears_crowd:
                self._told_loud = True
                log.info("%s: the phone hears a crowd; suggesting push-to-talk", self._member.participant.id)
                self._member.participant.send(proto.Notice.loud_room())
            # Other phones' copies of the same speech wait for this one only while it is open (babelfish/echoes.py),
            # and only while what it heard so far (read from a worker thread, only by a copy that waits) may be theirs.
            if segments or not segmenter.speaking:
                echoes.speech_open(self._room, me, None)
            if segmenter.speaking:
                since = batch[0][1] if batch else time.monotonic()
                echoes.speech_open(
                    self._room, me, since, functools.partial(_heard_so_far, segmenter, segmenter.open_serial)
                )
            if early is not None:  # before partials: an utterance's final words before its words so far
                early.after_batch(read_ahead if self._accepting else None)
            if partials is not None:  # the segmenter is idle until the next batch
                partials.after_batch(segmenter, segments, opened if self._accepting else None)

    def _queue(self, segment: Segment, features: np.ndarray | None = None) -> None:
        if self._pending.full():
            dropped = self._pending.get_nowait()  # drop the oldest: the freshest speech matters most in a conversation
            self._pending.task_done()
            if self._partials is not None:
                self._partials.finished(self._partials.utterance_id(dropped))
            self._member.participant.send(proto.Notice.dropped_utterance())
        self._pending.put_nowait(segment)
        self._hub.echoes.register(self._room, self._member.participant.id, segment, features)

    async def _utterance_worker(self) -> None:
        while True:
            segment = await self._pending.get()
            utterance_id = self._partials.utterance_id(segment) if self._partials is not None else None
            standing_by = False
            try:
                standing_by = await self._utterance(segment, utterance_id)
            except Exception:  # one utterance must never end the worker: the speaker's later ones would be lost
                log.exception("an utterance from %s failed", self._member.participant.id)
            finally:
                if not standing_by:  # else its stand-by task is done with it (a drain waits for that too)
                    self._pending.task_done()
                if self._partials is not None:
                    self._partials.finished(utterance_id)

    async def _utterance(self, segment: Segment, utterance_id: str | None) -> bool:
        """One phone per voice, then the pipeline. True when the copy was heard elsewhere and stands by."""
        who, hub = self._member.participant, self._hub
        # It is no longer pending while it waits for its verdict: the speaker's open turn must still wait for it.
        waiting = f"admit-{id(segment)}"
        hub.pipeline.turns.expect(who.id, waiting)
        try:
            verdict = await hub.echoes.admit(self._room, who.id, segment, utterance_id)
        except Exception:  # the filter is an economy: without it the copy is simply processed
            log.exception("one phone per voice failed for an utterance from %s; processing it", who.id)
            verdict = Verdict(True, utterance_id or hub.pipeline.new_id())
        finally:
            hub.pipeline.turns.settled(who.id, waiting)  # process() expects it under its id before any wait
        if verdict.keep:
            await hub.pipeline.process(who, segment, verdict.utterance_id, verdict.outcome)
            return False
        try:
            heard_elsewhere(hub, who, verdict)
        except Exception:
            log.exception("telling the room that %s heard %s too failed", who.id, verdict.utterance_id)
        if verdict.standby is None:
            hub.metrics.utterance_done("heard_elsewhere")
            return False
        self._tasks.spawn(self._stand_by(segment, verdict.standby, verdict.utterance_id))
        return True

    async def _stand_by(self, segment: Segment, turn: asyncio.Future[Verdict | None], utterance_id: str) -> None:
        """A copy heard elsewhere waits (at most HORIZON s) for the kept copy's outcome; it is processed in its place
        when that one was not delivered (babelfish/echoes.py)."""
        try:
            try:
                async with asyncio.timeout(HORIZON):
                    verdict = await turn  # cancelled with this task: the filter then passes it over
            except TimeoutError:
                verdict = self._unresolved(utterance_id)
            if verdict is None:  # the kept copy was delivered: this one was only heard elsewhere (counted once)
                self._hub.metrics.utterance_done("heard_elsewhere")
            else:  # it takes over: the pipeline counts its outcome
                await self._hub.pipeline.process(self._member.participant, segment, verdict.utterance_id,
                                                 verdict.outcome)  # fmt: skip
        finally:
            self._pending.task_done()
            # Cancelled after it was handed the utterance: the next copy standing by takes over instead.
            handed = turn.result() if turn.done() and not turn.cancelled() else None
            if handed is not None and handed.outcome is not None and not handed.outcome.done():
                handed.outcome.set_result("none")

    def _unresolved(self, utterance_id: str) -> Verdict | None:
        """No outcome came for the kept copy within HORIZON: only a lost cluster message (the kept copy on another
        server, its outcome or its server's end never told) gets here. Unless the room's transcript shows the
        utterance delivered, this copy is processed after all: a late duplicate is better than lost speech."""
        room = self._hub.rooms.get(self._member.participant.room_name)
        if room is not None and any(e.utterance_id == utterance_id for e in room.transcript.entries()):
            return None
        log.warning("no outcome for utterance %s within %.0f s; processing %s's copy of it", utterance_id, HORIZON,
                    self._member.participant.id)  # fmt: skip
        self._hub.metrics.echo_unresolved_copy()
        return Verdict(True, utterance_id)

    async def finish(self) -> None:
        """Take nothing new; cut what already arrived (ending the utterance in progress) and process it all.

        The hub runs this (Hub.finish_later), bounded by `drain_seconds`, then `close`s the intake.
        """
        if self._accepting:
            self._accepting = False
            if self._segmenter is not None:
                self._enqueue(time.monotonic())  # what was said before the hang-up counts: end it here
        await self._vad_idle.wait()
        await self._pending.join()

    async def close(self) -> None:
        if self._partials is not None:
            self._partials.close()
        self._hub.echoes.speech_open(self._room, self._member.participant.id, None)
        await self._tasks.cancel_all()
        self._hub.pipeline.leave(self._member.participant)  # their turn ends: it is revised now

    def _speech_since(self) -> float | None:
        """For the turn tracker (babelfish/turns.py): when speech not yet handed to the pipeline started; 0.0 when
        utterances are already cut and wait; None when there is none."""
        if self._pending.qsize():
            return 0.0
        return self._segmenter.speech_started if self._segmenter is not None else None


def _cut_batch(
    segmenter: Segmenter,
    batch: list[_Frame],
    end: float | None,
    snapshot: Callable[[Segmenter], OpenSegment | None] | None = None,
    describe: bool = False,
    ahead: Callable[[Segmenter], ReadAhead | None] | None = None,
) -> tuple[list[Segment], OpenSegment | None, list[np.ndarray | None], ReadAhead | None]:
    """In a VAD thread: the batch's windows through the model at once, then the client's end_utterance, if any;
    when asked (`snapshot`), the open segment for a partial decode; when asked (`describe`), each cut segment's
    envelopes (one phone per voice across servers, babelfish/echoes.py); when asked (`ahead`), the open segment as
    its cut will read it, for an early read (babelfish/early.py), and then no partial in that pause."""
    out = segmenter.feed_many(batch) if batch else []
    if end is not None:
        last = segmenter.end_utterance(end)
        if last is not None:
            out.append(last)
    features: list[np.ndarray | None] = _describe(out) if describe else [None] * len(out)
    read_ahead = ahead(segmenter) if ahead is not None else None
    # A pause long enough for an early read: the final is near (being read, maybe), so no partial of it starts now.
    pausing = ahead is not None and segmenter.read_ahead_point() is not None
    opened = snapshot(segmenter) if snapshot is not None and not pausing else None
    return out, opened, features, read_ahead


def _describe(segments: list[Segment]) -> list[np.ndarray | None]:
    """Each segment's envelopes (a worker thread)."""
    return [envelopes(s.audio) for s in segments]


def _heard_so_far(segmenter: Segmenter, serial: int | None) -> OpenSegment | None:
    """The open segment `serial` as far as it was fed (any thread); None once it was cut, even if the VAD opened the
    next one meanwhile: a look must never judge a later utterance in place of the one it was told of."""
    heard = segmenter.open_segment()
    return heard if heard is not None and heard.serial == serial else None
