"""Known voices in a cluster: the Redis store first, the local SQLite store as its copy and as the fallback.

While Redis answers, every read and write goes to Redis (shared by every server), and this server's local store
(`data/speakers/speakers.db`) is kept as a copy: this server's own writes go to both, and what other servers wrote
is copied in at most every `mirror_seconds` (and at start), a forget at the next reload. When Redis does not answer
(down, restarting, unreachable), nothing fails: reads come from the local copy, writes go to a pending journal
(`data/speakers/pending.json`, written atomically with fsync: each speaker id and what changed) and then to the local
copy (durable, as in single-server mode); journal first, so a crash in between never leaves a local change Redis will
not hear of. When Redis answers again, the journal is replayed before anything else, then the registry reloads from
Redis: a voice enrolled (or imported) offline is written whole; a refinement or rename writes only the fields it
changed, and only if Redis still holds that speaker (a voice forgotten elsewhere meanwhile stays forgotten, a name
given elsewhere survives an offline refinement); a forget is done. So nothing a user stored is lost: an enrolment,
refinement, rename or forget made while Redis was down reaches Redis later. Conflicts on the same field are settled
by the last write (a rename made offline overwrites a rename another server made meanwhile).

The first time a server's store meets Redis (no `redis-joined` marker yet), voices it knew from before the
cluster (single-server mode) that Redis lacks are copied up, so switching a server to cluster mode loses none. The
same happens whenever Redis holds no speaker data at all (a new Redis, or one restarted without persistence): the
servers' copies fill it again. That safety net can bring back a voice forgotten on another server just before Redis
lost its data; run Redis with persistence (docs/deployment.md).

After a failure Redis is tried again only after `retry_seconds`, doubling with each failure in a row up to
`max_retry_seconds`, so a Redis that hangs costs an utterance a socket timeout now and then, not every utterance.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from redis.exceptions import RedisError

from babelfish.speakers.backup import write_json_atomic
from babelfish.store.base import SpeakerRecord
from babelfish.store.redis_store import RedisStore
from babelfish.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

FAILURES = (RedisError, OSError, TimeoutError)
# Journal ops per speaker id: PUT (write the local record whole), FORGET, or the fields an offline change touched,
# "+"-joined (NAME, VOICE), written only if Redis still holds the speaker.
PUT, FORGET = "put", "forget"
NAME, VOICE = "name", "voice"


def _merge(old: str | None, new: str) -> str:
    """What the journal holds for a speaker after `new` follows `old`."""
    if old is None or new in (PUT, FORGET):
        return new
    if old in (PUT, FORGET):
        return old  # enrolled offline: Redis needs it whole anyway; forgotten: stays forgotten
    return "+".join(sorted(set(old.split("+")) | set(new.split("+"))))


def _valid(op: object) -> bool:
    return op in (PUT, FORGET) or (isinstance(op, str) and bool(op) and set(op.split("+")) <= {NAME, VOICE})


class SharedStore:
    def __init__(
        self,
        remote: RedisStore,
        local: SqliteStore,
        folder: Path,
        retry_seconds: float = 2.0,
        max_retry_seconds: float = 30.0,
        mirror_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._remote, self._local = remote, local
        self._pending_path, self._joined_path = folder / "pending.json", folder / "redis-joined"
        self._retry, self._mirror_every, self._clock = retry_seconds, mirror_seconds, clock
        self._max_retry, self._backoff = max_retry_seconds, retry_seconds  # the wait after the next failure
        self._lock = threading.RLock()
        self._pending: dict[str, str] = self._read_pending()  # speaker id -> op (above), not yet in Redis
        self._retry_at = 0.0  # Redis is not tried before this (monotonic)
        self._mirrored_at: float | None = None
        self._mirrored_ids: set[str] = set()
        self._online = False  # the last call reached Redis
        self._came_back = False  # back online: the registry must reload once

    # --- state ------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._pending)

    def status(self) -> dict[str, object]:
        return {"store": "redis" if self._online else "local", "pending": len(self._pending)}

    def _read_pending(self) -> dict[str, str]:
        try:
            data = json.loads(self._pending_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.error("speaker journal %s unreadable; ignoring it", self._pending_path)
            return {}
        return {str(k): v for k, v in data.get("pending", {}).items() if _valid(v)}

    def _note(self, ops: dict[str, str]) -> dict[str, str]:
        """Journal writes Redis has not seen, before they are made locally; the journal as it was before."""
        before = dict(self._pending)
        pending = dict(before)
        for speaker_id, op in ops.items():
            pending[speaker_id] = _merge(pending.get(speaker_id), op)
        write_json_atomic(self._pending_path, {"pending": pending})  # raises: nothing noted, nothing written
        self._pending = pending
        return before

    def _unnote(self, before: dict[str, str]) -> None:
        """The local write found nothing to change: the journal goes back to what it was."""
        self._pending = before
        write_json_atomic(self._pending_path, {"pending": self._pending})

    def _reach(self) -> bool:
        """Whether Redis may be used now: journal replayed and pre-cluster voices copied up first."""
        if self._clock() < self._retry_at:
            return False
        try:
            if not self._joined_path.exists() or not self._remote.seeded():
                self._join()
            if self._pending:
                self._replay()
        except FAILURES as exc:
            self._fail(exc)
            return False
        self._backoff = self._retry
        if not self._online:
            log.info("speaker store: Redis reachable; voices are shared with the cluster")
            self._online, self._came_back = True, True
        return True

    def _fail(self, exc: BaseException) -> None:
        if self._online or self._retry_at == 0.0:
            log.warning("speaker store: Redis unreachable (%s); using the local copy until it returns", exc)
        self._online = False
        self._retry_at = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, self._max_retry)

    def _replay(self) -> None:
        ops = dict(self._pending)
        local = {r.id: r for r in self._local.speakers()}
        puts = [local[i] for i, op in ops.items() if op == PUT and i in local]
        if puts:
            self._remote.put_all(puts)
        for speaker_id, op in ops.items():
            if op == FORGET:
                self._remote.forget(speaker_id)
            elif op != PUT and speaker_id in local:  # only what changed, and never bringing back a forgotten voice
                r, fields = local[speaker_id], op.split("+")
                if NAME in fields:
                    self._remote.rename(speaker_id, r.name)
                if VOICE in fields:
                    self._remote.refine(speaker_id, r.embedding, r.samples, r.updated)
        for speaker_id, op in ops.items():  # what was noted meanwhile (another thread) stays
            if self._pending.get(speaker_id) == op:
                del self._pending[speaker_id]
        write_json_atomic(self._pending_path, {"pending": self._pending})
        log.info("speaker store: %d change(s) made while Redis was down are now in Redis", len(ops))

    def _join(self) -> None:
        known = {r.id for r in self._remote.speakers()}
        mine = [r for r in self._local.speakers() if r.id not in known]
        if mine or not self._remote.seeded():
            self._remote.put_all(mine)  # also marks Redis as seeded, even with nothing to copy
            log.info("speaker store: %d voice(s) known here before the cluster copied to Redis", len(mine))
        self._joined_path.write_text("this store is a copy of the cluster's (Redis) speaker store\n")

    # --- the Store interface --------------------------------------------------------------------

    def speakers(self) -> list[SpeakerRecord]:
        with self._lock:
            if self._reach():
                try:
                    records = self._remote.speakers()
                except FAILURES as exc:
                    self._fail(exc)
                else:
                    self._came_back = False
                    now, ids = self._clock(), {r.id for r in records}
                    stale = self._mirrored_at is None or now - self._mirrored_at >= self._mirror_every
                    if stale or self._mirrored_ids - ids:  # a voice forgotten elsewhere leaves this copy at once
                        self._local.put_all(records, replace=True)
                        self._mirrored_at, self._mirrored_ids = now, ids
                    return records
            return self._local.speakers()

    def changed(self) -> bool:
        with self._lock:
            if not self._reach():
                return False  # the registry's memory is as new as the local copy
            try:
                return self._remote.changed() or self._came_back
            except FAILURES as exc:
                self._fail(exc)
                return False

    def put(self, record: SpeakerRecord) -> None:
        self.put_all([record])

    def put_all(self, records: Iterable[SpeakerRecord], replace: bool = False) -> None:
        records = list(records)
        with self._lock:
            if self._reach():
                try:
                    self._remote.put_all(records, replace)
                except FAILURES as exc:
                    self._fail(exc)
                else:
                    self._local.put_all(records, replace)
                    return
            ops = {r.id: PUT for r in records}
            if replace:
                ops = {r.id: FORGET for r in self._local.speakers()} | ops
            self._note(ops)
            self._local.put_all(records, replace)

    def refine(self, speaker_id: str, embedding: np.ndarray, samples: int, updated: float) -> bool:
        with self._lock:
            return self._change(speaker_id, VOICE, lambda s: s.refine(speaker_id, embedding, samples, updated))

    def rename(self, speaker_id: str, name: str) -> bool:
        with self._lock:
            return self._change(speaker_id, NAME, lambda s: s.rename(speaker_id, name))

    def forget(self, speaker_id: str) -> bool:
        with self._lock:
            if self._reach():
                try:
                    found = self._remote.forget(speaker_id)
                except FAILURES as exc:
                    self._fail(exc)
                else:
                    return self._local.forget(speaker_id) or found
            self._note({speaker_id: FORGET})  # Redis may hold it even if this copy did not
            return self._local.forget(speaker_id)

    def _change(self, speaker_id: str, op: str, write: Callable[[RedisStore | SqliteStore], bool]) -> bool:
        if self._reach():
            try:
                found = write(self._remote)
            except FAILURES as exc:
                self._fail(exc)
            else:
                if found:
                    write(self._local)  # a copy missing this speaker (not mirrored yet) catches up at the next mirror
                return found
        before = self._note({speaker_id: op})
        if not write(self._local):
            self._unnote(before)
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._remote.close()
            self._local.close()
