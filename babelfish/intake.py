"""The intake of a joined client: what it sends, turned into utterances for the pipeline.

Audio is rate-limited (a token bucket of seconds of audio), cut by the client's own segmenter in the shared VAD
executor, and finished utterances wait in a small per-speaker queue for this client's utterance worker. Overflow
policy of that queue: the oldest waiting utterance is dropped and the speaker told. `rename_speaker` names a voice
in the registry and tells every room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from babelfish import protocol as proto
from babelfish.hub import Hub
from babelfish.joining import Member
from babelfish.protocol import ProtocolError
from babelfish.segmenter import Segment, Segmenter
from babelfish.tasks import TaskSet

log = logging.getLogger(__name__)


class TokenBucket:
    """Seconds of audio a client may send: refills at `rate` per wall-clock second, holds at most `burst`."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate, self._burst, self._level, self._at = rate, burst, burst, now

    def take(self, amount: float, now: float) -> bool:
        self._level = min(self._burst, self._level + (now - self._at) * self._rate)
        self._at = now
        if amount > self._level:
            return False
        self._level -= amount
        return True


class Intake:
    def __init__(self, hub: Hub, member: Member, tasks: TaskSet) -> None:
        s = hub.settings
        self._hub, self._member = hub, member
        self._budget = TokenBucket(s.max_audio_rate, s.audio_burst_seconds, time.monotonic())
        self._warned_rate = False
        self._segmenter: Segmenter | None = None  # made on the first audio: listeners that never speak cost no VAD
        self._pending: asyncio.Queue[Segment] = asyncio.Queue(s.pending_utterances_max)
        tasks.spawn(self._utterance_worker())

    async def on_text(self, raw: str) -> None:
        message = proto.parse_client_message(raw, self._hub.settings.max_text_bytes)
        if isinstance(message, proto.Join):
            raise ProtocolError("already_joined", "this connection has already joined; reconnect to change room")
        if isinstance(message, proto.Ping):
            self._member.participant.send(proto.Pong(id=message.id))
        elif isinstance(message, proto.RenameSpeaker):
            await self._rename(message)
        elif isinstance(message, proto.EndUtterance) and self._segmenter is not None:
            segment = await self._in_vad(self._segmenter.end_utterance, time.monotonic())
            if segment is not None:
                self._queue(segment)

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

    async def on_audio(self, data: bytes) -> None:
        s = self._hub.settings
        if len(data) > s.max_frame_bytes:
            raise ProtocolError(
                "frame_too_large", f"audio frames are limited to {s.max_frame_bytes} bytes", proto.CLOSE_TOO_BIG
            )
        if len(data) % 2:
            raise ProtocolError("bad_audio", "audio frames are 16-bit samples: the byte count must be even")
        if not data:
            return
        if not self._budget.take(len(data) / 2 / self._member.sample_rate, time.monotonic()):
            # Faster than real time for long: drop, so one client cannot starve the shared VAD threads.
            if not self._warned_rate:
                self._warned_rate = True
                raise ProtocolError(
                    "audio_too_fast", f"audio is accepted at up to {s.max_audio_rate:g}× real time; frames were dropped"
                )
            return
        if self._segmenter is None:
            detector = self._hub.detector_factory()
            self._segmenter = Segmenter(detector, self._hub.segmenter_config, self._member.sample_rate)
        for segment in await self._in_vad(self._segmenter.feed, data, time.monotonic()):
            self._queue(segment)

    async def _in_vad(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._hub.vad_executor, fn, *args)

    def _queue(self, segment: Segment) -> None:
        if self._pending.full():
            self._pending.get_nowait()  # drop the oldest: the freshest speech matters most in a conversation
            self._member.participant.send(proto.Notice.dropped_utterance())
        self._pending.put_nowait(segment)

    async def _utterance_worker(self) -> None:
        while True:
            segment = await self._pending.get()
            await self._hub.pipeline.process(self._member.participant, segment)
