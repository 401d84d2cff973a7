"""The speaker stage of the pipeline: embed each utterance beside ASR, then name its speaker from the registry.

Embedding (the model) and the registry (its SQLite writes) run in one dedicated worker thread, never on the event
loop. `embed` starts with the utterance, so it runs while ASR transcribes; `identify` runs after a transcript exists
(noise that ASR rejects never enrols a "speaker") and returns once any new speaker is on disk. With recognition off
(no embedder) every utterance is labelled with its client, and nothing about voices is stored.
Automatic backups are written by `backup_loop`, a task the app's lifespan owns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from pathlib import Path

import numpy as np

from babelfish import protocol as proto
from babelfish.engines.base import SAMPLE_RATE
from babelfish.rooms import Participant
from babelfish.speakers import backup
from babelfish.speakers.embedder import Embedder
from babelfish.speakers.registry import Registry, UnknownSpeaker

log = logging.getLogger(__name__)


class Speakers:
    def __init__(
        self, embedder: Embedder | None, registry: Registry | None, executor: Executor, min_seconds: float
    ) -> None:
        self.embedder, self.registry = embedder, registry
        self._executor, self._min_seconds = executor, min_seconds

    @property
    def enabled(self) -> bool:
        return self.embedder is not None and self.registry is not None

    def store_status(self) -> dict[str, object] | None:
        """Where voices are read from now (the cluster's shared store only; None otherwise), for /healthz."""
        status = getattr(self.registry.store, "status", None) if self.registry is not None else None
        return status() if callable(status) else None

    async def embed(self, audio: np.ndarray) -> np.ndarray | None:
        """The utterance's voice vector; None when recognition is off or the utterance is too short to tell."""
        if self.embedder is None or len(audio) < self._min_seconds * SAMPLE_RATE:
            return None
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._embed, audio)

    def _embed(self, audio: np.ndarray) -> np.ndarray | None:
        assert self.embedder is not None
        try:
            return self.embedder.embed(audio)
        except Exception:  # a bad vector (silence, clipping) must not cost the utterance: it inherits a speaker
            log.debug("no embedding for this utterance", exc_info=True)
            return None

    def label(self, who: Participant) -> proto.Speaker:
        """A label before the utterance's own is known (streaming partials): the client's last voice, else itself."""
        last = self.registry.last_speaker(who.id) if self.registry is not None else None
        return proto.Speaker(id=last.id, name=last.name) if last else who.speaker()

    async def identify(self, who: Participant, vector: np.ndarray | None) -> proto.Speaker:
        if self.registry is None:
            return who.speaker()
        try:
            match = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.registry.identify, who.id, who.name, vector
            )
        except Exception:
            # The store failed (disk full, unreadable file): nothing new was registered, so nobody may be told of a
            # new speaker; the utterance still goes out, labelled with its client.
            log.exception("speaker registry failed; labelling this utterance with its client")
            return who.speaker()
        if match.enrolled:
            log.info("new voice enrolled as %r (%s) via %s", match.speaker.name, match.speaker.id, who.name)
        return proto.Speaker(id=match.speaker.id, name=match.speaker.name)

    async def rename(self, speaker_id: str, name: str) -> proto.Speaker | None:
        """None when no such speaker is known (or recognition is off)."""
        if self.registry is None:
            return None
        try:
            s = await asyncio.get_running_loop().run_in_executor(self._executor, self.registry.rename, speaker_id, name)
        except UnknownSpeaker:
            return None
        except Exception:
            # The store failed (locked by a long admin import, disk full): the name did not change; the client is
            # told, and its session (and everyone else's) goes on.
            log.exception("speaker rename failed")
            raise proto.ProtocolError("internal_error", "the speaker store failed; the name was not changed") from None
        return proto.Speaker(id=s.id, name=s.name)

    async def backup_loop(self, folder: Path, keep: int, every_seconds: float) -> None:
        """Write a backup now if the last one is older than `every_seconds`, then every `every_seconds`."""
        if self.registry is None or keep <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            last = await loop.run_in_executor(self._executor, backup.last_backup_time, folder)
            wait = 0.0 if last is None else max(0.0, last + every_seconds - time.time())
            await asyncio.sleep(wait)
            try:
                path = await loop.run_in_executor(self._executor, self._backup, folder, keep)
                log.info("speaker backup written: %s", path)
            except OSError as exc:
                log.error("speaker backup failed: %s", exc)
                await asyncio.sleep(min(every_seconds, 3600))

    def _backup(self, folder: Path, keep: int) -> Path:
        assert self.registry is not None
        return backup.rotate(folder, self.registry.speakers(), keep)
