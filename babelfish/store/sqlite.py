"""The SQLite store: one file in the data dir, WAL journal, a full fsync at every commit.

WAL with `synchronous=FULL` makes each commit durable when it returns (kill -9 or a power cut right after
loses nothing), and lets the admin CLI read and write while the server runs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from babelfish.store.base import SpeakerRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS speakers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    embedder TEXT NOT NULL,
    embedding BLOB NOT NULL,
    samples INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    via TEXT NOT NULL DEFAULT '',
    extra TEXT NOT NULL DEFAULT '{}'
)
"""


def database_path(data_dir: Path) -> Path:
    return data_dir / "speakers" / "speakers.db"


class SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)  # voice embeddings are biometric data: owner only
        self.path = path
        self._lock = threading.Lock()  # one connection, used from whichever worker thread calls
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(SCHEMA)
        path.chmod(0o600)
        self._version = self._data_version()

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def speakers(self) -> list[SpeakerRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, embedder, embedding, samples, created, updated, via, extra FROM speakers "
                "ORDER BY created, id"
            ).fetchall()
            self._version = self._data_version()
        return [
            SpeakerRecord(
                id=r[0], name=r[1], embedder=r[2], embedding=np.frombuffer(r[3], dtype=np.float32).copy(),
                samples=r[4], created=r[5], updated=r[6], via=r[7], extra=json.loads(r[8]),
            )
            for r in rows
        ]  # fmt: skip

    def _write(self, records: Iterable[SpeakerRecord]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO speakers (id, name, embedder, embedding, samples, created, updated, via, extra) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (r.id, r.name, r.embedder, np.asarray(r.embedding, dtype="<f4").tobytes(), r.samples, r.created,
                 r.updated, r.via, json.dumps(r.extra))
                for r in records
            ],
        )  # fmt: skip

    def put(self, record: SpeakerRecord) -> None:
        self.put_all([record])

    def put_all(self, records: Iterable[SpeakerRecord], replace: bool = False) -> None:
        records = list(records)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if replace:
                    self._db.execute("DELETE FROM speakers")
                self._write(records)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def refine(self, speaker_id: str, embedding: np.ndarray, samples: int, updated: float) -> bool:
        blob = np.asarray(embedding, dtype="<f4").tobytes()
        return self._change(
            "UPDATE speakers SET embedding = ?, samples = ?, updated = ? WHERE id = ?", blob, samples, updated,
            speaker_id,
        )  # fmt: skip

    def rename(self, speaker_id: str, name: str) -> bool:
        return self._change("UPDATE speakers SET name = ? WHERE id = ?", name, speaker_id)

    def forget(self, speaker_id: str) -> bool:
        return self._change("DELETE FROM speakers WHERE id = ?", speaker_id)

    def _change(self, sql: str, *args: object) -> bool:
        with self._lock:
            return self._db.execute(sql, args).rowcount > 0

    def changed(self) -> bool:
        with self._lock:
            version = self._data_version()
            changed, self._version = version != self._version, version
        return changed

    def close(self) -> None:
        with self._lock:
            self._db.close()
