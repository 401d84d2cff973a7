"""The Redis store: known voices shared by every server of a cluster (`--redis-url`), behind the `Store` interface.

Each speaker is one hash (`babelfish:speaker:<id>`: name, embedder, the embedding as raw little-endian float32 bytes,
samples, times, via, extra as JSON), listed in the set `babelfish:speakers`. Every write also bumps
`babelfish:speakers:version`, so `changed()` tells a server that another one enrolled, refined, renamed or forgot a
voice: a speaker enrolled on server A is recognised on server B at B's next utterance. Conditional writes (refine,
rename) are Lua scripts, and a replacing import is one MULTI/EXEC, so a voice forgotten meanwhile is never brought
back half-written and an import is all or nothing.

Durability is Redis': with `appendonly yes` and `appendfsync always` a write is on disk when the call returns, as with
SQLite; with Redis' defaults the last second may be lost in a crash (docs/deployment.md). Every call blocks (the sync
client) and raises RedisError/OSError when Redis cannot be reached: the registry calls it from its worker thread, and
`babelfish.store.shared.SharedStore` turns those failures into local service.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from babelfish.store.base import SpeakerRecord

PREFIX = "babelfish:"
IDS = f"{PREFIX}speakers"
VERSION = f"{PREFIX}speakers:version"

# KEYS: speaker hash, version; ARGV: field, value, ... Writes only if the speaker still exists; the new version or 0.
_UPDATE_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return redis.call('INCR', KEYS[2])
"""
# KEYS: the id set; ARGV: the speaker hash prefix. Deletes every speaker (the first step of a replacing import).
_DELETE_ALL = """
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do redis.call('DEL', ARGV[1] .. id) end
redis.call('DEL', KEYS[1])
return 1
"""


def speaker_key(speaker_id: str) -> str:
    return f"{PREFIX}speaker:{speaker_id}"


class RedisStore:
    def __init__(self, url: str, timeout: float = 2.0) -> None:
        # Fail fast: one immediate retry (a pooled connection gone stale after a Redis restart), no backoff.
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1)
        )
        self._update = self._redis.register_script(_UPDATE_IF_EXISTS)
        self._delete_all = self._redis.register_script(_DELETE_ALL)
        self._lock = threading.Lock()
        self._seen: int | None = None  # the version our view matches; None: never read (changed() says so)

    def _version(self) -> int:
        return int(self._redis.get(VERSION) or 0)

    def _wrote(self, version: int) -> None:
        """After one write of ours returned `version`: still in step only if nobody else wrote in between."""
        if self._seen is not None and version == self._seen + 1:
            self._seen = version

    def seeded(self) -> bool:
        """Whether Redis holds speaker data at all (False: a new Redis, or one that lost its data)."""
        return bool(self._redis.exists(VERSION))

    def speakers(self) -> list[SpeakerRecord]:
        with self._lock:
            version = self._version()  # before the read: a write meanwhile makes changed() true again, never lost
            ids = sorted(_text(m) for m in self._redis.smembers(IDS))
            pipe = self._redis.pipeline(transaction=False)
            for speaker_id in ids:
                pipe.hgetall(speaker_key(speaker_id))
            records = [_record(i, h) for i, h in zip(ids, pipe.execute(), strict=True) if h]  # forgotten meanwhile
            self._seen = version
        return sorted(records, key=lambda r: (r.created, r.id))

    def put(self, record: SpeakerRecord) -> None:
        self.put_all([record])

    def put_all(self, records: Iterable[SpeakerRecord], replace: bool = False) -> None:
        records = list(records)
        with self._lock:
            pipe = self._redis.pipeline(transaction=True)  # MULTI/EXEC: all or nothing
            if replace:
                self._delete_all(keys=[IDS], args=[speaker_key("")], client=pipe)
            for record in records:
                pipe.delete(speaker_key(record.id))
                pipe.hset(speaker_key(record.id), mapping=_fields(record))
                pipe.sadd(IDS, record.id)
            pipe.incr(VERSION)
            self._wrote(int(pipe.execute()[-1]))

    def refine(self, speaker_id: str, embedding: np.ndarray, samples: int, updated: float) -> bool:
        return self._update_if_exists(speaker_id, {"embedding": _vector(embedding), "samples": samples,
                                                   "updated": repr(float(updated))})  # fmt: skip

    def rename(self, speaker_id: str, name: str) -> bool:
        return self._update_if_exists(speaker_id, {"name": name})

    def _update_if_exists(self, speaker_id: str, fields: dict[str, Any]) -> bool:
        args = [x for kv in fields.items() for x in kv]
        with self._lock:
            version = int(self._update(keys=[speaker_key(speaker_id), VERSION], args=args))
            if version:
                self._wrote(version)
        return bool(version)

    def forget(self, speaker_id: str) -> bool:
        with self._lock:
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(speaker_key(speaker_id))
            pipe.srem(IDS, speaker_id)
            pipe.incr(VERSION)
            deleted, _, version = pipe.execute()
            self._wrote(int(version))
        return bool(deleted)

    def changed(self) -> bool:
        with self._lock:
            return self._seen is None or self._version() != self._seen

    def close(self) -> None:
        self._redis.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _vector(embedding: np.ndarray) -> bytes:
    return np.asarray(embedding, dtype="<f4").tobytes()


def _fields(r: SpeakerRecord) -> dict[Any, Any]:
    return {
        "name": r.name, "embedder": r.embedder, "embedding": _vector(r.embedding), "samples": r.samples,
        "created": repr(float(r.created)), "updated": repr(float(r.updated)), "via": r.via,
        "extra": json.dumps(r.extra),
    }  # fmt: skip


def _record(speaker_id: str, h: dict[bytes, bytes]) -> SpeakerRecord:
    return SpeakerRecord(
        id=speaker_id,
        name=h[b"name"].decode(),
        embedder=h[b"embedder"].decode(),
        embedding=np.frombuffer(h[b"embedding"], dtype="<f4").copy(),
        samples=int(h[b"samples"]),
        created=float(h[b"created"]),
        updated=float(h[b"updated"]),
        via=h.get(b"via", b"").decode(),
        extra=json.loads(h.get(b"extra", b"{}")),
    )
