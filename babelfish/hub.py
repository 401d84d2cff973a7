"""What every connection shares, built once in the app's lifespan, and the drain that ends them all."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from babelfish import protocol as proto
from babelfish.cluster import Cluster, LocalOnly
from babelfish.config import Settings
from babelfish.early import EarlyReads
from babelfish.echoes import EchoConfig, Echoes
from babelfish.engines.base import Engine
from babelfish.gate import AddressLimits
from babelfish.metrics import Metrics
from babelfish.partials import Partials
from babelfish.pipeline import Pipeline
from babelfish.rooms import Rooms
from babelfish.segmenter import SegmenterConfig, SpeechDetector
from babelfish.speakers.service import Speakers
from babelfish.tasks import TaskSet
from babelfish.writer import Writer

if TYPE_CHECKING:
    from babelfish.intake import Intake

log = logging.getLogger(__name__)


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
    # One phone per voice: which copy of speech heard by several phones goes on (babelfish/echoes.py).
    echoes: Echoes = field(default_factory=lambda: Echoes(EchoConfig(enabled=False), lambda: ""))
    partials: Partials | None = None  # streaming partials; None: off, or an engine that cannot do them cheaply
    early: EarlyReads | None = None  # first passes read in the pause before the cut; None: off (babelfish/early.py)
    connections: set[Writer] = field(default_factory=set)  # every accepted WebSocket not yet closed
    intakes: set[Intake] = field(default_factory=set)  # joined clients' intakes, until handed to finish_later
    finishing: TaskSet = field(default_factory=TaskSet)  # intakes finishing what was said (finish_later)
    draining: bool = False

    def population_changed(self) -> None:
        self.metrics.set_population(self.rooms.participants, len(self.rooms))

    def finish_later(self, intake: Intake) -> None:
        """A speaker left (or the server drains): what they already said is still cut, processed and delivered to
        the room, by a task of the hub's (not of the session, which ends now), within `drain_seconds`."""
        if intake in self.intakes:
            self.intakes.discard(intake)
            self.finishing.spawn(self._finish(intake))

    async def _finish(self, intake: Intake) -> None:
        try:
            async with asyncio.timeout(self.settings.drain_seconds):
                await intake.finish()
        except TimeoutError:
            log.warning("what a speaker said was not finished within %g s", self.settings.drain_seconds)
        finally:
            await intake.close()

    async def drain(self, reconnect_after_ms: int = 2000) -> None:
        """Refuse new connections; finish what was already said; tell every client the server restarts and close it
        (1012, reason "server restarting"). Safe to call again.

        Finishing: every intake stops taking audio, cuts what arrived (the utterance in progress ends there) and waits
        for its utterances to be transcribed, translated and delivered — while every client is still connected to
        receive them. Bounded by `drain_seconds`, kept under systemd's stop timeout (babelfish.service).
        """
        self.draining = True
        self.pipeline.stop_revising()  # the engine finishes what was said; listeners are about to go
        for intake in list(self.intakes):
            self.finish_later(intake)
        started = time.monotonic()
        if len(self.finishing):
            late = await self.finishing.wait(self.settings.drain_seconds + 1)
            log.info("drain: finished what was said in %.1f s (%d cut short)", time.monotonic() - started, late)
        # Then its speech (text first: speech jobs outlive their utterance's text), within the same limit.
        unspoken = await self.pipeline.spoken(max(0.0, self.settings.drain_seconds + 1 - (time.monotonic() - started)))
        if unspoken:
            log.info("drain: %d utterances' speech given up", unspoken)
        message = proto.Draining(reconnect_after_ms=reconnect_after_ms)
        await asyncio.gather(
            *(w.close_with(message, proto.CLOSE_SERVICE_RESTART, "server restarting") for w in list(self.connections))
        )
