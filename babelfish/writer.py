"""The sending half of one client's connection: its outbox, the sender task, slow-reader eviction, close.

Everything the server sends a client goes through its bounded `Outbox`, drained by one sender task. Overflow
policy: a client whose outbox overflows cannot keep up, so it is evicted: it leaves its room at once and is closed
(1013, "client too slow"). A client that cannot take even its close frame within CLOSE_TIMEOUT is abandoned, so
neither it nor a server restart waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from enum import Enum

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from babelfish import protocol as proto
from babelfish.config import Settings
from babelfish.metrics import Metrics
from babelfish.rooms import Outbox
from babelfish.tasks import TaskSet

log = logging.getLogger(__name__)
CLOSE_TIMEOUT = 2.0  # seconds a client gets to take its last message and close frame


class ConnectionState(Enum):
    OPEN = "open"  # frames flow both ways
    CLOSING = "closing"  # a close is under way: frames still arriving are ignored, none is sent but the close
    ABANDONED = "abandoned"  # the client would not take its close frame: dropped without one
    CLOSED = "closed"  # the session is over


class Writer:
    def __init__(
        self, ws: WebSocket, settings: Settings, metrics: Metrics, tasks: TaskSet, on_abandon: Callable[[], None]
    ) -> None:
        self.ws = ws
        self.state = ConnectionState.OPEN
        self.outbox = Outbox(settings.send_queue_max, settings.send_queue_max_bytes, self._evict)
        self.who = "a client"  # for the log; named once joined
        self.on_evict: Callable[[], None] = lambda: None  # set once joined: leave the room
        self._metrics, self._tasks, self._on_abandon = metrics, tasks, on_abandon
        self._send_timeout = settings.send_timeout_seconds
        self._send_lock = asyncio.Lock()  # an audio header and its payload go out back to back, never split
        self._sender = tasks.spawn(self._send_all())

    async def _send_all(self) -> None:
        try:
            while True:
                item = await self.outbox.get()
                async with self._send_lock:
                    try:
                        # A send waits while the socket's buffers are full: a client that takes nothing for this
                        # long is not reading. Evicted now, well before uvicorn's keepalive (cli.py) would cut it
                        # without a word.
                        async with asyncio.timeout(self._send_timeout):
                            if isinstance(item, str):
                                await self.ws.send_text(item)
                            else:
                                header, payload = item
                                await self.ws.send_text(header)
                                await self.ws.send_bytes(payload)
                    except TimeoutError:
                        self._evict(stalled_for=self._send_timeout)
                        return
        except (WebSocketDisconnect, RuntimeError, OSError):
            # The connection is gone or closing; the receive loop cleans up. What is still queued for it is
            # not a sign of a slow reader: stop queueing rather than count it as one.
            self.outbox.close()

    def _evict(self, stalled_for: float | None = None) -> None:
        self._metrics.client_dropped()
        if stalled_for is None:
            log.warning("closing %s: it reads too slowly (send queue full)", self.who)
        else:
            log.warning("closing %s: it reads too slowly (took nothing for %g s)", self.who, stalled_for)
        self._sender.cancel()  # stop queueing behind a reader that does not read; close right away
        self.on_evict()  # its room slot and the others' view of the room do not wait for the close handshake
        self._tasks.spawn(self.close_with(None, proto.CLOSE_TRY_AGAIN_LATER, "client too slow"))

    async def refuse(self, exc: proto.ProtocolError) -> None:
        """Send the error and close with its close code."""
        await self.close_with(
            proto.Error(code=exc.code, message=exc.message), exc.close_code or proto.CLOSE_POLICY_VIOLATION, exc.message
        )

    async def close_with(self, message: proto.ServerMessage | None, code: int, reason: str = "") -> None:
        """Send `message` directly (bypassing the outbox) and close; once, later calls do nothing.

        A client that does not read cannot take even a close frame: after CLOSE_TIMEOUT it is abandoned (the session
        is told, ends its tasks and leaves the room), so neither it nor a server restart waits on that client.
        """
        if self.state is not ConnectionState.OPEN:
            return
        self.state = ConnectionState.CLOSING
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT), self._send_lock:
                if message is not None:
                    await self.ws.send_text(message.encode())
                await self.ws.close(code, reason[:120])
        except TimeoutError:
            log.warning("%s did not take its close frame in %.0f s; dropping it", self.who, CLOSE_TIMEOUT)
            self.state = ConnectionState.ABANDONED
            self._on_abandon()
        except Exception:  # already gone: nothing left to close
            log.debug("closing %s failed", self.who, exc_info=True)

    def stop_reading(self) -> None:
        """The session ends: what still arrives is ignored (a close already under way carries on)."""
        if self.state is ConnectionState.OPEN:
            self.state = ConnectionState.CLOSING

    async def finish(self) -> None:
        """Last step of a session, after its tasks ended: a normal close if none was sent and the client can take it."""
        abandoned = self.state is ConnectionState.ABANDONED
        self.state = ConnectionState.CLOSED
        if self.ws.application_state == WebSocketState.CONNECTED and not abandoned:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self.ws.close(proto.CLOSE_NORMAL)
