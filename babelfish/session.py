"""One client's WebSocket session, phase by phase: joining, then intake while joined; the writer throughout.

`Session.run` accepts the connection, refuses it while the server drains, waits (bounded) for a valid `join`, admits
the client (joining.py), then reads frames until the client leaves, handing them to its `Intake`. Everything sent
goes through its `Writer`. Every task the session starts is in its `TaskSet`, cancelled in `finally`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from babelfish import protocol as proto
from babelfish.gate import CALLER
from babelfish.hub import Hub
from babelfish.intake import Intake
from babelfish.joining import Member, admit, receive_join
from babelfish.protocol import ProtocolError
from babelfish.tasks import TaskSet
from babelfish.writer import ConnectionState, Writer

log = logging.getLogger(__name__)


class Session:
    def __init__(self, ws: WebSocket, hub: Hub) -> None:
        self.ws = ws
        self.hub = hub
        self._tasks = TaskSet()
        self._writer = Writer(ws, hub.settings, hub.metrics, self._tasks, self._abandon)
        self._run_task: asyncio.Task[Any] | None = None

    async def run(self) -> None:
        self._run_task = asyncio.current_task()
        try:  # from the start: the writer's sender task already runs, and must end however this does
            await self.ws.accept()
            self.hub.connections.add(self._writer)
            member = await self._join()
            if member is not None:
                await self._serve(member)
        except WebSocketDisconnect:
            pass
        except asyncio.CancelledError:
            if self._writer.state is not ConnectionState.ABANDONED:
                raise
            # We cancelled ourselves: the client would not take its close frame. End quietly, tidy up below.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            self._writer.stop_reading()
            await self._tasks.cancel_all()
            self.hub.connections.discard(self._writer)
            await self._writer.finish()

    async def _join(self) -> Member | None:
        """The joining phase: a member, or None when the connection was refused (and is being closed)."""
        if self.hub.draining:
            await self._writer.refuse(
                ProtocolError("draining", "the server is restarting", proto.CLOSE_SERVICE_RESTART)
            )
            return None
        try:
            join = await asyncio.wait_for(
                receive_join(self.ws, self.hub.settings.max_text_bytes), self.hub.settings.join_timeout_seconds
            )
        except TimeoutError:
            join = ProtocolError("join_timeout", "no join message in time", proto.CLOSE_POLICY_VIOLATION)
        try:
            if isinstance(join, ProtocolError):
                raise join
            # Read before admission: once admitted, results and events reach the newcomer, and none may precede
            # its welcome, which lists the room on every server of a cluster.
            others = await self.hub.cluster.look(join.room, join.passcode)
            member = admit(self.hub, join, self._writer.outbox, self.ws.scope.get(CALLER))
            self.hub.cluster.adopt(member.room, others, member.participant)
            return member
        except ProtocolError as exc:
            await self._writer.refuse(exc)
            return None

    async def _serve(self, member: Member) -> None:
        """The joined phase: welcome, then every frame to the intake until the connection ends."""
        me = member.participant
        self._writer.who = f"{me.name} ({me.id})"
        self._writer.on_evict = member.leave
        intake: Intake | None = None
        try:
            intake = Intake(self.hub, member)
            me.send(member.welcome())
            member.announce()
            log.info("%s (%s) joined room %r speaking %s", me.name, me.id, me.room_name, me.language)
            while self._writer.state is ConnectionState.OPEN:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    if message.get("bytes") is not None:
                        await intake.on_audio(message["bytes"])
                    elif message.get("text") is not None:
                        await intake.on_text(message["text"])
                except ProtocolError as exc:
                    if exc.close_code is None:
                        me.send(proto.Error(code=exc.code, message=exc.message))
                    else:
                        await self._writer.refuse(exc)
                        return
        finally:
            member.leave()  # the others see them go at once; what they already said still reaches them
            if intake is not None:
                self.hub.finish_later(intake)
            self._writer.stop_reading()
            await self._tasks.cancel_all()

    def _abandon(self) -> None:
        """The client would not take its close frame: end this session now (unless it is ending already)."""
        if self._run_task is not None and self._run_task is not asyncio.current_task():
            self._run_task.cancel()
