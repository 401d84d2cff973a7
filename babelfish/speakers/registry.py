"""The registry of known voices: match an utterance's embedding to a speaker, enrol new voices, refine known ones.

All methods but `last_speaker` block (they write to the store before returning) and are called from one worker thread;
a lock keeps them safe anyway. `last_speaker` is called on the event loop, so it never takes that lock (a store that
hangs, Redis, would freeze every room): it reads an immutable client -> speaker mapping that writers swap in whole.
Rules:
- cosine similarity ≥ `threshold` against a known voice of the same embedder: that speaker (best match wins);
  its embedding is refined with this one, as a running mean over at most `refine_max` utterances;
- no match: a new speaker, named after the client for the first voice heard through it, else
  "Speaker N (via <client>)"; stored before `identify` returns;
- no embedding (utterance too short, or silence): the client's last speaker, else the client itself.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from babelfish.speakers.embedder import normalise
from babelfish.store.base import SpeakerRecord, Store

MAX_CLIENTS = 10_000  # clients whose last speaker is remembered
ID_PATTERN = re.compile(r"^[\w.:\-]{1,64}$")


@dataclass(frozen=True)
class Speaker:
    id: str
    name: str


@dataclass(frozen=True)
class Match:
    speaker: Speaker
    score: float | None  # cosine similarity to the matched voice; None when inherited or new
    enrolled: bool = False


class UnknownSpeaker(KeyError):
    pass


class Registry:
    def __init__(
        self,
        store: Store,
        embedder_name: str,
        threshold: float,
        refine_max: int = 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store, self._embedder = store, embedder_name
        self.threshold, self.refine_max = threshold, refine_max
        self._clock = clock
        self._lock = threading.RLock()
        # client id -> its last speaker, newest last; never changed in place, only replaced (read without the lock)
        self._last: Mapping[str, Speaker] = {}
        self._enrolled_via: dict[str, bool] = {}  # clients through which a voice was enrolled
        self._records: dict[str, SpeakerRecord] = {}
        self._load()

    @property
    def store(self) -> Store:
        return self._store

    def _load(self) -> None:
        self._records = {r.id: r for r in self._store.speakers()}

    def _sync(self) -> None:
        """Pick up what the admin CLI changed (rename, forget, import) while we run."""
        if self._store.changed():
            self._load()
            self._last = {c: self._current(s) for c, s in self._last.items() if s.id in self._records}

    def _current(self, s: Speaker) -> Speaker:
        record = self._records.get(s.id)
        return Speaker(s.id, record.name) if record else s

    def speakers(self) -> list[SpeakerRecord]:
        with self._lock:
            self._sync()
            return list(self._records.values())

    def identify(self, client_id: str, client_name: str, embedding: np.ndarray | None) -> Match:
        with self._lock:
            self._sync()
            if embedding is None:
                last = self._last.get(client_id)
                return Match(self._current(last) if last else Speaker(client_id, client_name), None)
            vector = normalise(embedding)
            best, score = self._best(vector)
            if best is not None and score >= self.threshold:
                self._refine(best, vector)
                match = Match(Speaker(best.id, best.name), score)
            else:
                first = client_id not in self._enrolled_via
                match = Match(self._enrol(client_name, vector, first), score if best else None, enrolled=True)
                self._remember(self._enrolled_via, client_id, True)
            seen = dict(self._last)
            self._remember(seen, client_id, match.speaker)
            self._last = seen
            return match

    def last_speaker(self, client_id: str) -> Speaker | None:
        """The voice last heard through this client, if any: lock-free, for the event loop (writers keep the mapping's
        names current)."""
        return self._last.get(client_id)

    @staticmethod
    def _remember(seen: dict[str, Any], client_id: str, value: Any) -> None:
        seen.pop(client_id, None)
        seen[client_id] = value  # newest last (dicts keep insertion order)
        while len(seen) > MAX_CLIENTS:  # bounded: clients long gone fall out, oldest first
            del seen[next(iter(seen))]

    def _best(self, vector: np.ndarray) -> tuple[SpeakerRecord | None, float]:
        candidates = [
            r for r in self._records.values() if r.embedder == self._embedder and r.embedding.size == vector.size
        ]
        if not candidates:
            return None, -1.0
        scores = np.stack([r.embedding for r in candidates]) @ vector
        i = int(np.argmax(scores))
        return candidates[i], float(scores[i])

    def _refine(self, record: SpeakerRecord, vector: np.ndarray) -> None:
        # A running mean that stops growing at refine_max: the voice follows slow changes (another microphone,
        # a cold) while no single utterance can move it far.
        weight = min(record.samples, self.refine_max - 1)
        refined = normalise(record.embedding * weight + vector)
        now = self._clock()
        if self._store.refine(record.id, refined, min(record.samples + 1, self.refine_max), now):
            record.embedding, record.samples, record.updated = refined, min(record.samples + 1, self.refine_max), now

    def _enrol(self, client_name: str, vector: np.ndarray, first: bool) -> Speaker:
        # The first new voice heard through a client is its owner's; later ones are numbered from 2.
        taken = {r.name for r in self._records.values()}
        name = client_name if first else f"Speaker 2 (via {client_name})"
        n = 3 if not first else 2
        while name in taken:
            name = f"Speaker {n} (via {client_name})"
            n += 1
        now = self._clock()
        record = SpeakerRecord(
            id=f"spk-{secrets.token_hex(4)}", name=name, embedder=self._embedder, embedding=vector, samples=1,
            created=now, updated=now, via=client_name,
        )  # fmt: skip
        self._store.put(record)  # on disk before anyone hears of this speaker
        self._records[record.id] = record
        return Speaker(record.id, record.name)

    def rename(self, speaker_id: str, name: str) -> Speaker:
        with self._lock:
            self._sync()
            if speaker_id not in self._records or not self._store.rename(speaker_id, name):
                raise UnknownSpeaker(speaker_id)
            self._records[speaker_id].name = name
            speaker = Speaker(speaker_id, name)
            self._last = {c: speaker if s.id == speaker_id else s for c, s in self._last.items()}
            return speaker

    def forget(self, speaker_id: str) -> bool:
        with self._lock:
            self._sync()
            found = self._store.forget(speaker_id)
            self._records.pop(speaker_id, None)
            self._last = {c: s for c, s in self._last.items() if s.id != speaker_id}
            return found
