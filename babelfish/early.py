"""Early reads: an utterance's first pass read in the pause that ends it, while the VAD still waits to be sure.

An utterance is cut after `vad_silence_ms` (300 ms) of silence, and the engine mostly idles meanwhile. `early_read_ms`
(100 ms, rounded to 32 ms windows; the VAD step after it) into that silence, the speaker's `EarlyStream` has the engine
read the open segment exactly as its cut will be read (`Segmenter.read_ahead`: the audio up to that point, the rest of
the silence as zeros, which is how the cut's words are read too, `Segment.read_until`). When the pause does end the
utterance, its first pass takes those words (the cascade keeps them: babelfish/engines/cascade/reads_ahead.py) instead
of decoding, and the transcript goes out sooner by the decode, or by the time from the read to the cut (about 0.2 s)
where the decode takes longer: the same words, and the same wait for the end of speech. When the speaker goes on, the
read was for nothing: engine time the engine had free.

Priority: an early read goes as a streaming partial does (babelfish/inference.py): it starts only when no other kind
of call runs or waits and a worker is free, and never waits; a busy engine reads the utterance at its cut as before.
One at a time per speaker, once per pause (tried again after each VAD step while the engine stays busy, and counted
once); the speaker's partials stop there (the final is near). A pause that another phone of the room hears better is
not read (babelfish/heard_better.py): one phone per voice will keep that phone's copy, not this one. `/metrics` counts
them (`babelfish_early_reads`: run, used by the cut's transcript, busy, stale, elsewhere;
`babelfish_early_read_seconds`: their engine time).

An engine takes part if it can read ahead (`EarlyEngine`): the cascade can; SeamlessM4T does not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, runtime_checkable

from babelfish.echoes import Echoes
from babelfish.engines.base import Utterance
from babelfish.heard_better import kept_elsewhere
from babelfish.inference import InferenceQueue, Shed
from babelfish.metrics import Metrics
from babelfish.pipeline import Pipeline
from babelfish.rooms import Participant
from babelfish.segmenter import ReadAhead, Segmenter, early_windows

log = logging.getLogger(__name__)
MAX_WAIT = 0.1  # an early read that could not start within this is stale: the cut is a few windows away


@runtime_checkable
class EarlyEngine(Protocol):
    def read_early(self, utterance: Utterance) -> None:
        """Read the utterance's words now, for a first pass of exactly the same utterance to take (in a worker)."""
        ...


class EarlyReads:
    """The server's early reads: what every speaker's `EarlyStream` shares."""

    def __init__(
        self,
        engine: EarlyEngine,
        queue: InferenceQueue,
        pipeline: Pipeline,
        metrics: Metrics,
        echoes: Echoes | None = None,
    ) -> None:
        self.engine, self.queue, self.pipeline, self.metrics = engine, queue, pipeline, metrics
        self.echoes = echoes  # one phone per voice: a pause another phone hears better is not read

    def stream(self, who: Participant, spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]) -> EarlyStream:
        return EarlyStream(self, who, spawn)


class EarlyStream:
    """One speaker's early reads. Lives on the event loop; the read runs in the engine queue."""

    def __init__(
        self, service: EarlyReads, who: Participant, spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]
    ) -> None:
        self._s, self._who, self._spawn = service, who, spawn
        self._busy = False  # a read of this speaker is queued or running
        self._last: tuple[int, int] | None = None  # (serial, read_until) of the last pause read, or tried and shed
        self._retry = False  # that try found the engine busy: tried again after the next step while the pause lasts
        self._weighed: tuple[int, int] | None = None  # the pause last found to be this phone's to read (not elsewhere)

    def snapshot(self, segmenter: Segmenter) -> ReadAhead | None:
        """In the VAD thread, right after a step: the open segment as its cut will read it, when a pause has lasted
        long enough and was not read yet (its audio is one concatenation of the segment, kept off the event loop)."""
        if self._busy:
            return None
        point = segmenter.read_ahead_point()
        return segmenter.read_ahead() if point is not None and (point != self._last or self._retry) else None

    def after_batch(self, ahead: ReadAhead | None) -> None:
        """On the loop, after the step that took `ahead` (the step's `snapshot`): read it if it is new, or again if
        the last try found the engine busy."""
        if ahead is None or self._busy:
            return
        point = (ahead.serial, ahead.read_until)
        if point == self._last and not self._retry:
            return
        again = point == self._last  # a retry: the pause's "busy" was counted at its first try
        self._last, self._retry, self._busy = point, False, True
        self._spawn(self._read(ahead, again))

    async def _read(self, ahead: ReadAhead, again: bool) -> None:
        s = self._s
        try:
            point = (ahead.serial, ahead.read_until)
            if s.echoes is not None and self._weighed != point:  # once a pause: not again on a retry
                kept = await kept_elsewhere(s.echoes, self._who.room_name, self._who.id, ahead)
                if kept is not None:
                    s.metrics.early_read("elsewhere")
                    log.debug("%s: not read early, %s hears it better", self._who.id, kept)
                    return
                self._weighed = point
            utterance = s.pipeline.first_pass(self._who, ahead.audio, ahead.speech_probs, ahead.read_until)
            seconds = await s.queue.partial(_timed, s.engine, utterance, owner=self._who.id, max_wait=MAX_WAIT,
                                            early=True)  # fmt: skip
            s.metrics.early_read("run", seconds)
        except Shed as exc:
            if exc.reason == "busy":  # busy at once: tried again after the next step, while the pause lasts
                self._retry = True
                if not again:
                    s.metrics.early_read("busy")
            else:  # waited past MAX_WAIT: the cut is near
                s.metrics.early_read("stale")
        except Exception:  # an early read is an economy: the cut reads for itself
            log.exception("an early read for %s failed", self._who.id)
        finally:
            self._busy = False


def _timed(engine: EarlyEngine, utterance: Utterance) -> float:
    """In a worker: the early read, and the engine time it took."""
    began = time.monotonic()
    engine.read_early(utterance)
    return time.monotonic() - began


def make_early_reads(
    early_read_ms: int,
    silence_ms: int,
    engine: object,
    queue: InferenceQueue,
    pipeline: Pipeline,
    metrics: Metrics,
    echoes: Echoes | None = None,
) -> EarlyReads | None:
    """The service, or None (logged) when early reads are off, do not fit in the pause, or the engine has none."""
    if not early_windows(early_read_ms, silence_ms):
        log.info("early reads: off (early_read_ms %d, vad_silence_ms %d)", early_read_ms, silence_ms)
        return None
    if not isinstance(engine, EarlyEngine):
        log.info("early reads: off, the %s engine does not read ahead", type(engine).__name__)
        return None
    log.info("early reads: on, %d ms into the pause that ends an utterance", early_read_ms)
    return EarlyReads(engine, queue, pipeline, metrics, echoes)
