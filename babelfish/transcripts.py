"""Transcripts: everything said in a room, kept in memory for the room's life, and on disk only when asked.

Memory: each room holds a `RoomTranscript`, made with the room and dropped with it (rooms.py). It is bounded: at most
`cap` utterances; beyond that the oldest one is dropped (and counted in `dropped`), so a room that talks for days
keeps its latest hours, never unbounded memory.

Disk: only with `transcript_retention` on. Each room's life gets one JSON Lines file under
`data_dir/transcripts/` (one line per utterance, written when the utterance is done, off the event loop; a revised
turn adds one more line, with `replaces`: babelfish/revisions.py); files
older than the retention period are deleted at start and periodically after. With retention off nothing is ever
written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SUFFIX = ".jsonl"
# Bounds on an utterance relayed by another server (babelfish.cluster): anything beyond them is not one of ours.
MAX_WIRE_TEXT = 20_000  # characters of the text, and of each translation
MAX_WIRE_SHORT = 200  # characters of an id, a speaker id or name, a language
MAX_WIRE_LANGUAGES = 64
MAX_WIRE_REPLACES = 256  # utterances one revision may replace
MAX_WIRE_SECONDS = 24 * 3600.0  # longest plausible utterance (a revised turn included)
MAX_WIRE_TIME = 253_402_300_799.0  # 9999-12-31T23:59:59Z: the last time `iso` can write (a transcript's downloads)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(eq=False)
class Entry:
    """One utterance: who said what, when (Unix seconds, wall clock), and each translation as it was delivered."""

    utterance_id: str
    speaker_id: str
    speaker_name: str
    start: float
    end: float
    language: str
    text: str
    translations: dict[str, str] = field(default_factory=dict)  # language -> text
    replaces: list[str] = field(default_factory=list)  # a revision: the utterances this one's text replaced

    def as_json(self, since: float) -> dict[str, Any]:
        revised = {"replaces": list(self.replaces)} if self.replaces else {}
        return {
            "id": self.utterance_id,
            "speaker": {"id": self.speaker_id, "name": self.speaker_name},
            "start": iso(self.start),
            "end": iso(self.end),
            "offset_seconds": round(max(0.0, self.start - since), 3),
            "duration_seconds": round(max(0.0, self.end - self.start), 3),
            "language": self.language,
            "text": self.text,
            "translations": dict(sorted(self.translations.items())),
            **revised,
        }

    def to_wire(self) -> dict[str, Any]:
        """The entry as another server of the cluster receives it (babelfish.cluster)."""
        return {
            "id": self.utterance_id, "speaker": [self.speaker_id, self.speaker_name], "start": self.start,
            "end": self.end, "language": self.language, "text": self.text, "translations": self.translations,
            "replaces": self.replaces,
        }  # fmt: skip

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Entry | None:
        """None if `body` is not an entry (a frame from another version, or beyond the MAX_WIRE_* bounds)."""
        try:
            speaker_id, speaker_name = body["speaker"]
            translations = body.get("translations") or {}
            replaces = body.get("replaces") or []
            if len(translations) > MAX_WIRE_LANGUAGES or len(replaces) > MAX_WIRE_REPLACES:
                return None
            entry = cls(str(body["id"]), str(speaker_id), str(speaker_name), float(body["start"]), float(body["end"]),
                        str(body["language"]), str(body["text"]),
                        {str(k): str(v) for k, v in translations.items()},
                        [str(i) for i in replaces])  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):  # overflow: an int beyond any float
            return None
        return entry if entry._plausible() else None

    def _plausible(self) -> bool:
        times_ok = 0 <= self.start <= self.end <= MAX_WIRE_TIME  # NaN fails every comparison, infinities the bound
        shorts = [self.utterance_id, self.speaker_id, self.speaker_name, self.language, *self.translations,
                  *self.replaces]  # fmt: skip
        return (
            times_ok
            and self.end - self.start <= MAX_WIRE_SECONDS
            and all(len(s) <= MAX_WIRE_SHORT for s in shorts)
            and all(len(t) <= MAX_WIRE_TEXT for t in [self.text, *self.translations.values()])
        )


class RoomTranscript:
    """What was said in one room, oldest first; at most `cap` utterances (then the oldest goes, counted)."""

    def __init__(self, room: str, cap: int, started: float | None = None) -> None:
        self.room = room
        self.started = time.time() if started is None else started
        self._entries: deque[Entry] = deque(maxlen=cap)
        self.dropped = 0

    def add(self, entry: Entry) -> Entry:
        if len(self._entries) == self._entries.maxlen:
            self.dropped += 1
        self._entries.append(entry)
        return entry

    def revise(self, ids: list[str], text: str, language: str, translations: dict[str, str]) -> Entry | None:
        """A turn re-decoded whole (babelfish/revisions.py): the first of `ids` takes the revised text and spans the
        turn, the others go. Languages not re-translated keep their pieces' translations, joined. None when the first
        utterance is no longer kept (the cap)."""
        found = {e.utterance_id: e for e in self._entries if e.utterance_id in ids}
        first = found.get(ids[0])
        if first is None:
            return None
        pieces = [found[i] for i in ids if i in found]
        joined = {lang: " ".join(e.translations[lang] for e in pieces if lang in e.translations)
                  for lang in {lang for e in pieces for lang in e.translations}}  # fmt: skip
        first.text, first.language, first.end = text, language, max(e.end for e in pieces)
        first.translations = {**joined, **translations}
        first.replaces = list(ids)
        gone = {e.utterance_id for e in pieces[1:]}
        kept = [e for e in self._entries if e.utterance_id not in gone]
        self._entries.clear()
        self._entries.extend(kept)
        return first

    def add_relayed(self, entry: Entry) -> None:
        """An utterance spoken on another server of the cluster, which sends it once it is fully translated: it goes
        where its start time puts it (a local utterance added meanwhile may have started later). A repeat is ignored.
        A revision (`replaces`) revises the pieces relayed before it, as on the speaker's server; when the first of
        them is not here (the cap, or never received) it goes in as an utterance of its own, and its other pieces go."""
        if entry.replaces:
            if self.revise(entry.replaces, entry.text, entry.language, entry.translations) is not None:
                return
            replaced = set(entry.replaces)
            kept = [e for e in self._entries if e.utterance_id not in replaced]
            if len(kept) < len(self._entries):
                self._entries.clear()
                self._entries.extend(kept)
        if any(e.utterance_id == entry.utterance_id for e in self._entries):
            return
        if len(self._entries) == self._entries.maxlen:
            self._entries.popleft()
            self.dropped += 1
        at = len(self._entries)
        while at > 0 and self._entries[at - 1].start > entry.start:
            at -= 1
        self._entries.insert(at, entry)

    def entries(self) -> list[Entry]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class TranscriptArchive:
    """The on-disk copy (retention on): one JSON Lines file per room's life, deleted after `retention_seconds`."""

    def __init__(self, directory: Path, retention_seconds: float) -> None:
        self.directory = directory
        self.retention_seconds = retention_seconds

    def path_for(self, transcript: RoomTranscript) -> Path:
        # Room names may hold spaces and dots: keep a readable part, and a hash so two names never share a file.
        readable = re.sub(r"[^\w-]", "_", transcript.room)[:40]
        digest = hashlib.sha256(transcript.room.encode()).hexdigest()[:10]
        stamp = datetime.fromtimestamp(transcript.started, UTC).strftime("%Y%m%dT%H%M%S")
        return self.directory / f"{stamp}-{readable}-{digest}{SUFFIX}"

    def append(self, transcript: RoomTranscript, entry: Entry) -> None:
        """Blocking file I/O: call it from a worker thread."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        line = json.dumps({"room": transcript.room, **entry.as_json(transcript.started)}, ensure_ascii=False)
        # 0o600: what people said is for the operator, not every account on the machine.
        fd = os.open(self.path_for(transcript), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def expire(self, now: float | None = None) -> list[Path]:
        """Delete transcript files last written more than the retention period ago; the paths deleted."""
        if not self.directory.is_dir():
            return []
        cutoff = (time.time() if now is None else now) - self.retention_seconds
        removed = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:
                continue
        if removed:
            log.info("deleted %d transcript file(s) past the retention period", len(removed))
        return removed

    async def expire_forever(self) -> None:
        """Expire now and then periodically (a tenth of the period, at most hourly) until cancelled."""
        interval = min(3600.0, max(1.0, self.retention_seconds / 10))
        while True:
            await asyncio.to_thread(self.expire)
            await asyncio.sleep(interval)
