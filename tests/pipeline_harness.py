"""Drive `Pipeline` on its own: an engine (the fake by default), real rooms, outboxes and metrics; no socket, no VAD.

    h = PipelineHarness()
    ann, bob = h.join("Ann", "en"), h.join("Bob", "de")
    await h.say(ann)
    assert [m["type"] for m in await h.received(bob)] == ["transcript", "translation", "audio"]

`say` returns once every result of the utterance, its speech included, is in the listeners' outboxes.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from babelfish.engines.base import Engine
from babelfish.engines.fake import FakeEngine
from babelfish.inference import InferenceQueue
from babelfish.metrics import Metrics
from babelfish.pipeline import Pipeline
from babelfish.rooms import Outbox, Participant, Rooms
from babelfish.segmenter import Segment


class PipelineHarness:
    def __init__(
        self,
        engine: Engine | None = None,
        max_items: int = 256,
        max_bytes: int = 1 << 26,
        speech_max_wait: float = 60.0,
    ) -> None:
        self.engine = engine or FakeEngine()
        self.rooms = Rooms(max_rooms=10, max_per_room=100)
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="harness-inference")
        self.speech_executor = ThreadPoolExecutor(1, thread_name_prefix="harness-speech")
        # No shedding here (a minute's wait allowed): routing is under test, not load.
        self.queue = InferenceQueue(
            self.executor, 1, 64, 60.0, self.metrics, speech_executor=self.speech_executor,
            speech_max_wait=speech_max_wait,
        )  # fmt: skip
        self.pipeline = Pipeline(self.engine, self.queue, self.rooms, self.metrics)
        self.dropped: list[str] = []  # ids of participants whose outbox overflowed
        self._limits = (max_items, max_bytes)

    def join(self, name: str, language: str, room: str = "r", audio: bool = True) -> Participant:
        pid = f"{name.lower()}-id"
        outbox = Outbox(*self._limits, on_overflow=lambda: self.dropped.append(pid))
        p = Participant(id=pid, name=name, language=language, room_name=room, outbox=outbox, wants_audio=audio)
        self.rooms.join(p)
        return p

    async def say(self, who: Participant, seconds: float = 1.0, level: float = 0.3) -> None:
        """`who` finished an utterance of `seconds` (a tone: the fake engine transcribes any non-silent audio)."""
        await self.pipeline.process(who, self.segment(seconds, level))
        assert await self.pipeline.spoken(10) == 0, "speech not done within 10 s"  # text first: speech comes after

    def segment(self, seconds: float = 1.0, level: float = 0.3) -> Segment:
        """An utterance of `seconds` that ends now: a tone (the fake engine transcribes any non-silent audio)."""
        t = np.arange(int(16000 * seconds), dtype=np.float32) / 16000
        audio = (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        return Segment(audio, time.monotonic(), "silence")

    async def received(self, p: Participant) -> list[dict[str, Any]]:
        """Everything queued for `p` so far, parsed; an audio header gets its binary frame as `payload`."""
        out = []
        while p.outbox.qsize():
            item = await p.outbox.get()
            if isinstance(item, str):
                out.append(json.loads(item))
            else:
                out.append({**json.loads(item[0]), "payload": item[1]})
        return out

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.speech_executor.shutdown(wait=True, cancel_futures=True)
