"""The writer's connection states: one close, abandon a client that cannot take it, evict a slow reader."""

import asyncio

from starlette.websockets import WebSocketState

from babelfish import writer as writer_module
from babelfish.config import Settings
from babelfish.metrics import Metrics
from babelfish.protocol import Draining
from babelfish.tasks import TaskSet
from babelfish.writer import ConnectionState, Writer


class FakeSocket:
    """Records what is sent; `stuck` makes sends block like a client that stopped reading (`stuck_close`: and close)."""

    def __init__(self, stuck: bool = False, stuck_close: bool = False) -> None:
        self.stuck, self.stuck_close = stuck, stuck_close
        self.sent: list[object] = []
        self.closed: list[int] = []
        self.application_state = WebSocketState.CONNECTED

    async def _maybe_block(self) -> None:
        if self.stuck:
            await asyncio.sleep(3600)

    async def send_text(self, text: str) -> None:
        await self._maybe_block()
        self.sent.append(text)

    async def send_bytes(self, data: bytes) -> None:
        await self._maybe_block()
        self.sent.append(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.stuck_close:
            await asyncio.sleep(3600)
        self.closed.append(code)
        self.application_state = WebSocketState.DISCONNECTED


def make(ws: FakeSocket, abandoned: list[bool], **settings) -> tuple[Writer, TaskSet, Metrics]:
    tasks, metrics = TaskSet(), Metrics()
    w = Writer(ws, Settings(**settings), metrics, tasks, lambda: abandoned.append(True))  # type: ignore[arg-type]
    return w, tasks, metrics


async def test_close_happens_once_and_finish_adds_no_second_close():
    ws, abandoned = FakeSocket(), []
    w, tasks, _ = make(ws, abandoned)
    await w.close_with(Draining(reconnect_after_ms=2000), 1012)
    await w.close_with(None, 1000)  # already closing: nothing more is sent
    assert w.state is ConnectionState.CLOSING and ws.closed == [1012] and len(ws.sent) == 1
    await tasks.cancel_all()
    await w.finish()
    assert w.state is ConnectionState.CLOSED and ws.closed == [1012] and not abandoned


async def test_a_client_that_cannot_take_its_close_frame_is_abandoned(monkeypatch):
    monkeypatch.setattr(writer_module, "CLOSE_TIMEOUT", 0.1)
    ws, abandoned = FakeSocket(stuck=True, stuck_close=True), []
    w, tasks, _ = make(ws, abandoned)
    await asyncio.wait_for(w.close_with(Draining(reconnect_after_ms=2000), 1012), 5)
    assert w.state is ConnectionState.ABANDONED and abandoned == [True]
    await tasks.cancel_all()
    await asyncio.wait_for(w.finish(), 5)  # no close attempt on an abandoned client
    assert ws.closed == []


async def test_overflow_evicts_leaves_and_closes_1013():
    ws, abandoned, left = FakeSocket(stuck=True), [], []
    w, tasks, metrics = make(ws, abandoned, send_queue_max=4)
    w.on_evict = lambda: left.append(True)
    for i in range(6):  # the sender blocks on the first; the queue fills behind it
        w.outbox.put(f"m{i}")
        await asyncio.sleep(0)
    assert left == [True] and metrics.snapshot()["clients_dropped"] == 1
    assert w.state is ConnectionState.CLOSING  # the close is under way, without waiting for the slow reader
    await asyncio.sleep(0.05)
    assert ws.closed == [1013]  # the sender, blocked on the slow reader, was cancelled to let the close through
    await tasks.cancel_all()
