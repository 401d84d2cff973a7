"""One client's WebSocket session: join, audio in, results out, clean leave.

The receive loop validates every frame at the edge. Audio goes through the client's segmenter
in the VAD executor; finished utterances wait in a small per-speaker queue (overflow policy: the
oldest waiting utterance is dropped and the speaker told) for this client's utterance worker.
A sender task drains the client's outbox. All tasks are tracked and cancelled in `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from babelfish import protocol as proto
from babelfish.config import Settings
from babelfish.engines.base import Engine
from babelfish.languages import UnknownLanguage, resolve
from babelfish.metrics import Metrics
from babelfish.pipeline import Pipeline
from babelfish.protocol import ProtocolError
from babelfish.rooms import Outbox, Participant, Room, RoomFull, Rooms, TooManyRooms
from babelfish.segmenter import Segment, Segmenter, SegmenterConfig, SpeechDetector

log = logging.getLogger(__name__)
CLOSE_TIMEOUT = 2.0  # seconds a client gets to take its last message and close frame


@dataclass
class Hub:
    """Everything sessions share; built once in the app's lifespan."""

    settings: Settings
    engine: Engine
    rooms: Rooms
    metrics: Metrics
    pipeline: Pipeline
    vad_executor: Executor
    detector_factory: Callable[[], SpeechDetector]
    language_table: list[dict[str, Any]]
    languages_in: frozenset[str]  # codes a speaker may join with
    sessions: set[Session] = field(default_factory=set)
    draining: bool = False

    def population_changed(self) -> None:
        self.metrics.set_population(self.rooms.participants, len(self.rooms))

    async def drain(self, reconnect_after_ms: int = 2000) -> None:
        """Tell every client the server restarts, then close them (1012) so they reconnect elsewhere/later."""
        self.draining = True
        message = proto.Draining(reconnect_after_ms=reconnect_after_ms)
        await asyncio.gather(*(s.close_with(message, proto.CLOSE_SERVICE_RESTART) for s in list(self.sessions)))


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


class Session:
    def __init__(self, ws: WebSocket, hub: Hub) -> None:
        self.ws = ws
        self.hub = hub
        self.me: Participant | None = None
        self.room: Room | None = None
        self._segmenter: Segmenter | None = None
        self._pending: asyncio.Queue[Segment] = asyncio.Queue(hub.settings.pending_utterances_max)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._left = False
        self._abandoned = False
        self._run_task: asyncio.Task[Any] | None = None
        self._sender_task: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()  # an audio header and its payload go out back to back, never split
        self._sample_rate = 16_000  # set from join
        self._audio_budget = TokenBucket(
            hub.settings.max_audio_rate, hub.settings.audio_burst_seconds, time.monotonic()
        )
        self._warned_rate = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        self._run_task = asyncio.current_task()
        await self.ws.accept()
        self.hub.sessions.add(self)
        try:
            if self.hub.draining:
                await self._refuse(ProtocolError("draining", "the server is restarting", proto.CLOSE_SERVICE_RESTART))
                return
            try:
                join = await asyncio.wait_for(self._receive_join(), self.hub.settings.join_timeout_seconds)
            except TimeoutError:
                join = ProtocolError("join_timeout", "no join message in time", proto.CLOSE_POLICY_VIOLATION)
            if isinstance(join, ProtocolError):
                await self._refuse(join)
                return
            await self._serve(join)
        except WebSocketDisconnect:
            pass
        except asyncio.CancelledError:
            if not self._abandoned:
                raise
            # We cancelled ourselves: the client would not take its close frame. End quietly, tidy up below.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            await self._cleanup()

    async def _serve(self, join: proto.Join) -> None:
        try:
            me = self._admit(join)
        except ProtocolError as exc:
            await self._refuse(exc)
            return
        self._sender_task = self._spawn(self._sender(me.outbox))
        self._spawn(self._utterance_worker())
        me.send(self._welcome(join))
        assert self.room is not None
        self.room.broadcast(
            proto.Participants(room=me.room, event="join", who=me.info(), count=len(self.room.members)),
            self.room.listeners(me),
        )
        log.info("%s (%s) joined room %r speaking %s", me.name, me.id, me.room, me.language)
        while not self._closing:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                if message.get("bytes") is not None:
                    await self._on_audio(message["bytes"])
                elif message.get("text") is not None:
                    await self._on_text(message["text"])
            except ProtocolError as exc:
                if exc.close_code is None:
                    me.send(proto.Error(code=exc.code, message=exc.message))
                else:
                    await self._refuse(exc)
                    return

    def _admit(self, join: proto.Join) -> Participant:
        s = self.hub.settings
        name = " ".join(join.name.split())
        if len(name) > s.max_name_chars:
            raise ProtocolError(
                "invalid_name", f"names are limited to {s.max_name_chars} characters", proto.CLOSE_POLICY_VIOLATION
            )
        try:
            language = resolve(join.language, self.hub.languages_in)
        except UnknownLanguage as exc:
            raise ProtocolError("unsupported_language", str(exc), proto.CLOSE_POLICY_VIOLATION) from None
        if join.sample_rate not in s.allowed_sample_rates:
            raise ProtocolError(
                "unsupported_sample_rate",
                f"sample_rate {join.sample_rate} is not supported; use one of {s.allowed_sample_rates}",
                proto.CLOSE_UNSUPPORTED_DATA,
            )
        me = Participant(
            id=secrets.token_hex(4),
            name=name,
            language=language,
            room=join.room,
            outbox=Outbox(s.send_queue_max, s.send_queue_max_bytes, self._too_slow),
            wants_audio=join.audio,
        )
        try:
            self.room = self.hub.rooms.join(me)
        except RoomFull as exc:
            raise ProtocolError("room_full", str(exc), proto.CLOSE_TRY_AGAIN_LATER) from None
        except TooManyRooms as exc:
            raise ProtocolError("too_many_rooms", str(exc), proto.CLOSE_TRY_AGAIN_LATER) from None
        self.me = me
        self._sample_rate = join.sample_rate
        self.hub.population_changed()
        return me

    def _welcome(self, join: proto.Join) -> proto.Welcome:
        assert self.me is not None and self.room is not None
        s, info = self.hub.settings, self.hub.engine.info
        return proto.Welcome(
            client_id=self.me.id,
            room=self.me.room,
            name=self.me.name,
            language=self.me.language,
            sample_rate=join.sample_rate,
            participants=self.room.roster(),
            languages=self.hub.language_table,
            engine=proto.EngineSummary(name=info.name, reason=info.reason),
            limits=proto.Limits(
                max_frame_bytes=s.max_frame_bytes,
                max_text_bytes=s.max_text_bytes,
                max_utterance_seconds=s.max_utterance_seconds,
            ),
        )

    async def _cleanup(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.hub.sessions.discard(self)
        self._leave()
        if self.ws.application_state == WebSocketState.CONNECTED and not self._abandoned:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self.ws.close(proto.CLOSE_NORMAL)

    def _leave(self) -> None:
        """Leave the room and tell the others; once, however the session ends."""
        me = self.me
        if me is None or self._left:
            return
        self._left = True
        room = self.hub.rooms.leave(me)
        if room is not None and room.members:
            room.broadcast(proto.Participants(room=me.room, event="leave", who=me.info(), count=len(room.members)))
        self.hub.population_changed()
        log.info("%s (%s) left room %r", me.name, me.id, me.room)

    # --- inbound ------------------------------------------------------------------------------

    async def _receive_join(self) -> proto.Join | ProtocolError:
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if message.get("text") is None:
            return ProtocolError("not_joined", "send a join message before any audio", proto.CLOSE_POLICY_VIOLATION)
        try:
            parsed = proto.parse_client_message(message["text"], self.hub.settings.max_text_bytes)
        except ProtocolError as exc:
            return ProtocolError(exc.code, exc.message, exc.close_code or proto.CLOSE_POLICY_VIOLATION)
        if not isinstance(parsed, proto.Join):
            return ProtocolError("not_joined", f"send join before {parsed.type}", proto.CLOSE_POLICY_VIOLATION)
        return parsed

    async def _on_text(self, raw: str) -> None:
        assert self.me is not None
        message = proto.parse_client_message(raw, self.hub.settings.max_text_bytes)
        if isinstance(message, proto.Join):
            raise ProtocolError("already_joined", "this connection has already joined; reconnect to change room")
        if isinstance(message, proto.Ping):
            self.me.send(proto.Pong(id=message.id))
        elif isinstance(message, proto.EndUtterance) and self._segmenter is not None:
            segment = await self._in_vad(self._segmenter.end_utterance, time.monotonic())
            if segment is not None:
                self._queue(segment)

    async def _on_audio(self, data: bytes) -> None:
        s = self.hub.settings
        if len(data) > s.max_frame_bytes:
            raise ProtocolError(
                "frame_too_large", f"audio frames are limited to {s.max_frame_bytes} bytes", proto.CLOSE_TOO_BIG
            )
        if len(data) % 2:
            raise ProtocolError("bad_audio", "audio frames are 16-bit samples: the byte count must be even")
        if not data:
            return
        if not self._audio_budget.take(len(data) / 2 / self._sample_rate, time.monotonic()):
            # Faster than real time for long: drop, so one client cannot starve the shared VAD threads.
            if not self._warned_rate:
                self._warned_rate = True
                raise ProtocolError(
                    "audio_too_fast", f"audio is accepted at up to {s.max_audio_rate:g}× real time; frames were dropped"
                )
            return
        if self._segmenter is None:  # made lazily: listeners that never speak cost no VAD state
            config = SegmenterConfig(
                s.vad_threshold, s.vad_silence_ms, s.vad_min_speech_ms, s.vad_preroll_ms, s.max_utterance_seconds
            )
            self._segmenter = Segmenter(self.hub.detector_factory(), config, self._sample_rate)
        for segment in await self._in_vad(self._segmenter.feed, data, time.monotonic()):
            self._queue(segment)

    async def _in_vad(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.hub.vad_executor, fn, *args)

    def _queue(self, segment: Segment) -> None:
        assert self.me is not None
        if self._pending.full():
            self._pending.get_nowait()  # drop the oldest: the freshest speech matters most in a conversation
            self.me.send(proto.Notice.dropped_utterance())
        self._pending.put_nowait(segment)

    async def _utterance_worker(self) -> None:
        assert self.me is not None
        while True:
            segment = await self._pending.get()
            await self.hub.pipeline.process(self.me, segment)

    # --- outbound -----------------------------------------------------------------------------

    async def _sender(self, outbox: Outbox) -> None:
        try:
            while True:
                item = await outbox.get()
                async with self._send_lock:
                    if isinstance(item, str):
                        await self.ws.send_text(item)
                    else:
                        header, payload = item
                        await self.ws.send_text(header)
                        await self.ws.send_bytes(payload)
        except (WebSocketDisconnect, RuntimeError, OSError):
            # The connection is gone or closing; the receive loop cleans up. What is still queued for it is
            # not a sign of a slow reader: stop queueing rather than count it as one.
            outbox.close()

    def _too_slow(self) -> None:
        self.hub.metrics.client_dropped()
        log.warning("closing %s: it reads too slowly (send queue full)", self.me.id if self.me else "?")
        if self._sender_task is not None:
            self._sender_task.cancel()  # stop queueing behind a reader that does not read; close right away
        self._leave()  # its room slot and the others' view of the room do not wait for the close handshake
        self._spawn(self.close_with(None, proto.CLOSE_TRY_AGAIN_LATER, "client too slow"))

    async def close_with(self, message: proto.ServerMessage | None, code: int, reason: str = "") -> None:
        """Send `message` directly (bypassing the outbox) and close; later frames are ignored.

        A client that does not read cannot take even a close frame: after CLOSE_TIMEOUT the session is abandoned
        (its tasks end and it leaves its room), so neither it nor a server restart waits on that client.
        """
        if self._closing:
            return
        self._closing = True
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT), self._send_lock:
                if message is not None:
                    await self.ws.send_text(message.encode())
                await self.ws.close(code, reason[:120])
        except TimeoutError:
            log.warning("%s did not take its close frame in %.0f s; dropping it", self._who(), CLOSE_TIMEOUT)
            self._abandon()
        except Exception:  # already gone: nothing left to close
            log.debug("closing %s failed", self._who(), exc_info=True)

    def _abandon(self) -> None:
        self._abandoned = True
        if self._run_task is not None and self._run_task is not asyncio.current_task():
            self._run_task.cancel()

    def _who(self) -> str:
        return f"{self.me.name} ({self.me.id})" if self.me else "a client"

    async def _refuse(self, exc: ProtocolError) -> None:
        await self.close_with(
            proto.Error(code=exc.code, message=exc.message), exc.close_code or proto.CLOSE_POLICY_VIOLATION, exc.message
        )

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
