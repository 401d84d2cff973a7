"""Speaker backups in the original deployment's JSON format, and rotating automatic backups.

Format (what the original server's backup script wrote, so its backups restore here):
    {"timestamp": 1764412345.6,
     "speakers": {"<id>": {"name": "Dan", ...metadata}},
     "known_embeddings": {"<id>": [0.013, -0.094, ...]}}
We add `embedder` to each speaker's metadata (vectors of different embedders cannot be compared) and
a top-level `format`; readers of the original format ignore both.

An import is validated completely before anything is written, then written in one transaction: a bad
file changes nothing.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from babelfish.speakers.registry import ID_PATTERN
from babelfish.store.base import SpeakerRecord

FORMAT = "babelfish-speakers/1"
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_SPEAKERS = 100_000
MAX_DIM = 4096
MAX_NAME_CHARS = 200
BACKUP_GLOB = "speakers-*.json"


class BadBackup(ValueError):
    """The file cannot be imported; the message says why, in words."""


def to_json(records: Iterable[SpeakerRecord], now: float | None = None) -> dict[str, Any]:
    records = list(records)
    return {
        "format": FORMAT,
        "timestamp": time.time() if now is None else now,
        "speakers": {
            r.id: {
                **r.extra,
                "name": r.name,
                "embedder": r.embedder,
                "samples": r.samples,
                "created": r.created,
                "updated": r.updated,
                "via": r.via,
            }
            for r in records
        },
        "known_embeddings": {r.id: [float(x) for x in r.embedding] for r in records},
    }


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write, fsync, then rename over `path`: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # biometric data: owner only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_backup(path: Path, embedder: str, dim: int) -> list[SpeakerRecord]:
    """Parse and validate a backup for an embedder making `dim`-sized vectors (0: any one size)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BadBackup(f"cannot read {path}: {exc.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise BadBackup(f"{path} is {size} bytes; a speaker backup is at most {MAX_FILE_BYTES} bytes")
    try:
        data = json.loads(path.read_bytes(), parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadBackup(f"{path} is not valid JSON: {exc}") from None
    except ValueError as exc:
        raise BadBackup(f"{path}: {exc}") from None
    except RecursionError:
        raise BadBackup(f"{path} is nested too deeply to be a speaker backup") from None
    return parse_backup(data, embedder, dim)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number an embedding may hold")


def parse_backup(data: Any, embedder: str, dim: int) -> list[SpeakerRecord]:
    if not isinstance(data, dict):
        raise BadBackup("a speaker backup is a JSON object with timestamp, speakers and known_embeddings")
    timestamp = data.get("timestamp")
    if timestamp is not None and not _is_finite(timestamp):
        raise BadBackup("timestamp must be a number (seconds since 1970)")
    speakers, embeddings = data.get("speakers"), data.get("known_embeddings")
    if not isinstance(speakers, dict) or not isinstance(embeddings, dict):
        raise BadBackup("speakers and known_embeddings must both be JSON objects keyed by speaker id")
    if len(embeddings) > MAX_SPEAKERS or len(speakers) > MAX_SPEAKERS:
        raise BadBackup(f"too many speakers (at most {MAX_SPEAKERS})")
    missing = sorted(set(speakers) - set(embeddings))
    if missing:
        raise BadBackup(f"speaker {missing[0]!r} has no entry in known_embeddings")
    records: list[SpeakerRecord] = []
    sizes: set[int] = set()
    for sid, vector in embeddings.items():
        if not ID_PATTERN.fullmatch(sid):  # fullmatch: `$` would let a trailing newline through
            raise BadBackup(f"speaker id {sid[:80]!r} is not valid (1-64 letters, digits, '_', '-', '.', ':')")
        meta = speakers.get(sid, {})
        if not isinstance(meta, dict):
            raise BadBackup(f"speakers[{sid!r}] must be a JSON object")
        record = _record(sid, meta, vector, embedder, dim)
        sizes.add(record.embedding.size)
        records.append(record)
    if len(sizes) > 1:
        raise BadBackup(f"embeddings have different sizes ({sorted(sizes)}); they cannot come from one model")
    return records


def _record(sid: str, meta: dict[str, Any], vector: Any, embedder: str, dim: int) -> SpeakerRecord:
    where = f"known_embeddings[{sid!r}]"
    if not isinstance(vector, list) or not vector:
        raise BadBackup(f"{where} must be a non-empty list of numbers")
    if len(vector) > MAX_DIM:
        raise BadBackup(f"{where} has {len(vector)} values; embeddings have at most {MAX_DIM}")
    if not all(_is_number(x) for x in vector):
        raise BadBackup(f"{where} must hold only numbers")
    try:
        array = np.asarray(vector, dtype=np.float64)
    except (OverflowError, ValueError):
        raise BadBackup(f"{where} holds a number too large for an embedding") from None
    if not np.all(np.isfinite(array)):
        raise BadBackup(f"{where} holds NaN or infinite values")
    if dim and array.size != dim:
        raise BadBackup(f"{where} has {array.size} values, but this server's embedder ({embedder}) makes {dim}")
    norm = float(np.linalg.norm(array))
    if norm == 0.0 or not math.isfinite(norm):
        raise BadBackup(f"{where} is all zeros")
    source = meta.get("embedder", embedder)
    if source != embedder:
        raise BadBackup(f"speaker {sid!r} was made by embedder {source!r}; this server uses {embedder!r}")
    name = meta.get("name", sid)
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise BadBackup(f"speakers[{sid!r}].name must be a non-empty string of at most {MAX_NAME_CHARS} characters")
    samples = meta.get("samples", 1)
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= 1_000_000:
        raise BadBackup(f"speakers[{sid!r}].samples must be a positive whole number")
    times = {k: meta.get(k, 0.0) for k in ("created", "updated")}
    for key, value in times.items():
        if not _is_finite(value):
            raise BadBackup(f"speakers[{sid!r}].{key} must be a number")
    via = meta.get("via", "")
    if not isinstance(via, str) or len(via) > MAX_NAME_CHARS:
        raise BadBackup(f"speakers[{sid!r}].via must be a string")
    known = {"name", "embedder", "samples", "created", "updated", "via"}
    extra = {k: v for k, v in meta.items() if k not in known}
    if len(json.dumps(extra)) > 10_000:
        raise BadBackup(f"speakers[{sid!r}] carries too much metadata")
    return SpeakerRecord(
        id=sid, name=" ".join(name.split()), embedder=embedder, embedding=(array / norm).astype(np.float32),
        samples=samples, created=float(times["created"]), updated=float(times["updated"]), via=via, extra=extra,
    )  # fmt: skip


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_finite(x: Any) -> bool:
    # JSON integers are unbounded: math.isfinite(10**400) raises OverflowError instead of answering.
    try:
        return _is_number(x) and math.isfinite(x)
    except OverflowError:
        return False


# --- rotating backups --------------------------------------------------------------------------


def backup_dir(data_dir: Path) -> Path:
    return data_dir / "speakers" / "backups"


def rotate(folder: Path, records: Iterable[SpeakerRecord], keep: int, now: float | None = None) -> Path:
    """Write a new backup into `folder` and delete all but the newest `keep`."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    path = folder / f"speakers-{stamp}-{int(now * 1000) % 1000:03d}.json"
    write_json_atomic(path, to_json(records, now))
    for old in backups(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def backups(folder: Path) -> list[Path]:
    """Automatic backups, oldest first (their names sort by time)."""
    return sorted(folder.glob(BACKUP_GLOB)) if folder.is_dir() else []


def last_backup_time(folder: Path) -> float | None:
    found = backups(folder)
    return found[-1].stat().st_mtime if found else None


def purge(folder: Path, speaker_id: str) -> int:
    """Remove one speaker from every automatic backup (forget means everywhere); how many files changed."""
    changed = 0
    for path in backups(folder):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        hit = False
        for key in ("speakers", "known_embeddings"):
            section = data.get(key)
            if isinstance(section, dict) and speaker_id in section:
                del section[speaker_id]
                hit = True
        if hit:
            write_json_atomic(path, data)
            changed += 1
    return changed
