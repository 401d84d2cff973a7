"""Reads ahead: an utterance's words read in the pause that ends it (babelfish/early.py), kept for the cut that follows.

An early read and the cut's first pass read the same samples (the cut's silence past the early read's point is read as
zero: `Utterance.read_until`) with the same language, hints and voiced time, so the cut takes the early read's words
instead of decoding them again: a key of the samples' digest and those arguments says when. The early read decodes
carefully (a beam): its words serve a careful first pass and a hurried one alike (a hurried one is greedy only for
time). Revisions, and reads with a context or held words, never come here. A cut whose early read still runs waits
for it (it would only decode the same again), up to WAIT_SECONDS; one whose early read failed reads for itself.

Bounded: at most KEEP reads are kept, the oldest dropped first, none older than MAX_AGE. Each is taken once, by the cut
it was made for; a speaker who went on after the pause leaves theirs untaken until then. A VAD far behind may cut before
the early read has started: both then read (the early read is not taken).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from babelfish.engines.cascade.asr import Asr, Recognized

KEEP = 8  # a few speakers' pauses: an untaken read is a pause someone spoke on after
MAX_AGE = 60.0  # seconds: a cut comes a few windows after its early read, or after its wait in the engine queue
WAIT_SECONDS = 30.0  # a read runs at most a few seconds; past this something is wrong: read afresh


@dataclass
class _Read:
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False  # it finished without an error
    rec: Recognized | None = None
    audio: np.ndarray | None = None  # the samples it read (the recogniser may keep their encoding by identity)
    made: float = field(default_factory=time.monotonic)


_Key = tuple[object, ...]


def _key(audio: np.ndarray, language: str | None, candidates: Collection[str], voiced: float | None) -> _Key:
    digest = hashlib.blake2b(np.ascontiguousarray(audio, np.float32).tobytes(), digest_size=16).digest()
    return digest, len(audio), language, tuple(sorted(candidates)), voiced


class ReadsAhead:
    def __init__(self, asr: Asr, keep: int = KEEP, wait_seconds: float = WAIT_SECONDS) -> None:
        self._asr, self._keep, self._wait = asr, keep, wait_seconds
        self._reads: OrderedDict[_Key, _Read] = OrderedDict()
        self._lock = threading.Lock()  # reads and takes come from several inference workers

    def read(
        self, audio: np.ndarray, language: str | None, candidates: Collection[str], voiced_seconds: float | None
    ) -> None:
        """In a worker: read `audio` carefully and keep the words for the cut that will read the same. A read of the
        same key already kept or running is not repeated."""
        key = _key(audio, language, candidates, voiced_seconds)
        with self._lock:
            if key in self._reads:
                return
            entry = self._reads[key] = _Read(audio=audio)
            while len(self._reads) > self._keep or next(iter(self._reads.values())).made < entry.made - MAX_AGE:
                self._reads.popitem(last=False)
        try:
            entry.rec = self._asr.recognize(audio, language, candidates, voiced_seconds=voiced_seconds, careful=True)
            entry.ok = True
        finally:
            entry.done.set()

    def take(
        self, audio: np.ndarray, language: str | None, candidates: Collection[str], voiced_seconds: float | None
    ) -> tuple[Recognized | None, np.ndarray] | None:
        """The words an early read found for exactly this read (None for none: read it yourself), with the samples it
        read; waits for one still running. Taken once."""
        key = _key(audio, language, candidates, voiced_seconds)
        with self._lock:
            entry = self._reads.pop(key, None)
        if entry is None or not entry.done.wait(self._wait) or not entry.ok or entry.audio is None:
            return None
        return entry.rec, entry.audio

    def __len__(self) -> int:
        return len(self._reads)
