"""What every connection shares, built once in the app's lifespan, and the drain that ends them all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from babelfish import protocol as proto
from babelfish.cluster import Cluster, LocalOnly
from babelfish.config import Settings
from babelfish.engines.base import Engine
from babelfish.gate import AddressLimits
from babelfish.metrics import Metrics
from babelfish.pipeline import Pipeline
from babelfish.rooms import Rooms
from babelfish.segmenter import SegmenterConfig, SpeechDetector
from babelfish.speakers.service import Speakers
from babelfish.writer import Writer


@dataclass
class Hub:
    settings: Settings
    engine: Engine
    rooms: Rooms
    metrics: Metrics
    pipeline: Pipeline
    vad_executor: Executor
    detector_factory: Callable[[], SpeechDetector]
    segmenter_config: SegmenterConfig
    language_table: list[dict[str, Any]]
    languages_in: frozenset[str]  # codes a speaker may join with
    speakers: Speakers  # who is speaking: the registry behind every result's speaker label
    address_limits: AddressLimits | None = None  # per client address (babelfish.gate); None: unlimited
    cluster: Cluster = field(default_factory=LocalOnly)  # the other servers of a cluster (--redis-url)
    connections: set[Writer] = field(default_factory=set)  # every accepted WebSocket not yet closed
    draining: bool = False

    def population_changed(self) -> None:
        self.metrics.set_population(self.rooms.participants, len(self.rooms))

    async def drain(self, reconnect_after_ms: int = 2000) -> None:
        """Refuse new connections; tell every client the server restarts and close it (1012). Safe to call again."""
        self.draining = True
        message = proto.Draining(reconnect_after_ms=reconnect_after_ms)
        await asyncio.gather(*(w.close_with(message, proto.CLOSE_SERVICE_RESTART) for w in list(self.connections)))
