"""What the load benchmarks' clients share: audio sent at real-time pace, and a task reading what comes back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection


async def send_paced(ws: ClientConnection, pcm: bytes, t: float, frame_bytes: int, frame_seconds: float) -> float:
    """Send `pcm` in frames, each no earlier than its time on the client's clock (`t` for the first; a sender that
    fell behind catches up at once, like a microphone's buffer). Returns the time the next frame is due."""
    for i in range(0, len(pcm), frame_bytes):
        delay = t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await ws.send(pcm[i : i + frame_bytes])
        t += frame_seconds
    return t


@contextlib.asynccontextmanager
async def reading(ws: ClientConnection, on_message: Callable[[dict[str, Any], float], None]) -> AsyncIterator[None]:
    """While inside: every JSON message from `ws` goes to `on_message` with its arrival time (audio is skipped)."""

    async def reader() -> None:
        async for frame in ws:
            if not isinstance(frame, bytes):
                on_message(json.loads(frame), time.monotonic())

    task = asyncio.create_task(reader())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
