"""Starlette's TestClient with a deadline on every WebSocket receive (its own wait forever).

A test that waits for a message which never comes (a renamed type, a lost result) fails after RECEIVE_TIMEOUT with
what it was waiting for, instead of hanging until the pytest timeout.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.types import Message

RECEIVE_TIMEOUT = 20.0  # seconds; the slowest thing a test waits for is one fake-engine utterance through real VAD


class _BoundedSession(WebSocketTestSession):
    def receive(self) -> Message:
        async def within() -> Message:
            with anyio.fail_after(RECEIVE_TIMEOUT):
                return await self._send_rx.receive()  # what Starlette's receive() awaits, without a bound

        try:
            return self.portal.call(within)
        except TimeoutError:
            raise AssertionError(f"nothing received from the server within {RECEIVE_TIMEOUT:.0f} s") from None


class BoundedClient(TestClient):
    def websocket_connect(self, *args: Any, **kwargs: Any) -> WebSocketTestSession:
        session = super().websocket_connect(*args, **kwargs)
        session.__class__ = _BoundedSession  # same object, bounded receive (the session is not entered yet)
        return session
