"""Rooms, participants and the fan-out of results to them.

Each participant has a bounded outbox (messages and bytes) drained by its own sender task. Overflow
policy: a client whose outbox is full cannot keep up, so it is closed (1013, "client too slow") and everyone else
carries on; nothing ever waits on a slow reader. Fan-out serialises a message once per language
and only enqueues references, so delivering to hundreds of listeners stays cheap.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from babelfish.languages import AUTO
from babelfish.protocol import ParticipantInfo, ServerMessage, Speaker
from babelfish.transcripts import RoomTranscript

# What a sender task can be handed: a text frame, or an audio header and its binary frame.
Outgoing = str | tuple[str, bytes]


class Outbox:
    """A client's bounded send queue, limited in messages and in bytes (audio makes sizes vary a lot)."""

    def __init__(self, max_items: int, max_bytes: int, on_overflow: Callable[[], None]) -> None:
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue(max_items)
        self._max_bytes = max_bytes
        self._bytes = 0
        self._on_overflow = on_overflow
        self.overflowed = False
        self.closed = False

    def put(self, item: Outgoing) -> None:
        if self.overflowed or self.closed:
            return
        size = _size(item)
        try:
            # One message bigger than the budget still goes to a client that has caught up (an empty queue).
            if self._bytes + size > self._max_bytes and self._queue.qsize():
                raise asyncio.QueueFull
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            self._on_overflow()
            return
        self._bytes += size

    async def get(self) -> Outgoing:
        item = await self._queue.get()
        self._bytes -= _size(item)
        return item

    def close(self) -> None:
        """The connection is gone: drop what comes, without calling it an overflow."""
        self.closed = True

    def qsize(self) -> int:
        return self._queue.qsize()


def _size(item: Outgoing) -> int:
    # Text is counted in characters: close enough to bytes for a budget, and free to compute.
    return len(item) if isinstance(item, str) else len(item[0]) + len(item[1])


@dataclass(eq=False)
class Participant:
    id: str
    name: str
    language: str  # canonical code, or AUTO
    room_name: str
    outbox: Outbox
    wants_audio: bool = True
    # Proves to HTTP requests (the transcript download) that they come from this participant; sent in `welcome` only.
    key: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    def info(self) -> ParticipantInfo:
        """What the others see of this participant."""
        return ParticipantInfo(id=self.id, name=self.name, language=self.language)

    def speaker(self) -> Speaker:
        """How results name this participant as their speaker."""
        return Speaker(id=self.id, name=self.name)

    def send(self, message: ServerMessage) -> None:
        self.outbox.put(message.encode())


@dataclass(frozen=True)
class RemoteMember:
    """A participant of this room connected to another server of the cluster (see babelfish.cluster)."""

    id: str
    name: str
    language: str
    wants_audio: bool
    server: str

    def info(self) -> ParticipantInfo:
        return ParticipantInfo(id=self.id, name=self.name, language=self.language)


@dataclass(eq=False)
class Room:
    name: str
    members: dict[str, Participant] = field(default_factory=dict)  # connected here
    remote: dict[str, RemoteMember] = field(default_factory=dict)  # connected to other servers of the cluster
    passcode_digest: bytes | None = None  # set by whoever created the room; joining needs the same passcode
    voices: dict[str, int] = field(default_factory=dict)  # participant id -> voice variant (see voice_of)
    transcript: RoomTranscript = field(default_factory=lambda: RoomTranscript("", 1))  # Rooms gives the real one

    def member_with_key(self, key: str) -> Participant | None:
        """The member whose key this is (compared in constant time), or None."""
        found = None
        for p in self.members.values():
            if hmac.compare_digest(p.key.encode(), key.encode()):
                found = p
        return found

    @property
    def count(self) -> int:
        """Participants cluster-wide."""
        return len(self.members) + len(self.remote)

    def admits(self, passcode: str | None) -> bool:
        if self.passcode_digest is None:
            return True
        return passcode is not None and hmac.compare_digest(self.passcode_digest, passcode_digest(passcode))

    def voice_of(self, pid: str) -> int:
        """A voice variant for a speaker: kept while they stay, and the lowest one no other member holds."""
        for gone in self.voices.keys() - self.members.keys():
            del self.voices[gone]
        if pid not in self.voices:
            taken = set(self.voices.values())
            self.voices[pid] = next(n for n in range(len(self.voices) + 1) if n not in taken)
        return self.voices[pid]

    def roster(self) -> list[ParticipantInfo]:
        return [p.info() for p in self.members.values()] + [r.info() for r in self.remote.values()]

    def languages(self) -> set[str]:
        """Every language spoken or heard in the room, cluster-wide."""
        return {p.language for p in self.members.values()} | {r.language for r in self.remote.values()}

    def listeners(self, speaker: Participant) -> list[Participant]:
        return [p for p in self.members.values() if p is not speaker]

    def target_languages(self, speaker: Participant, source: str) -> list[str]:
        """Distinct listener languages, cluster-wide, that need a translation of `source` (sorted, stable order)."""
        local = {p.language for p in self.listeners(speaker)}
        return sorted((local | {r.language for r in self.remote.values()}) - {source, AUTO})

    def wants_speech(self, speaker: Participant, targets: Iterable[str]) -> bool:
        """Whether any listener of one of `targets`, here or on another server, takes synthesized speech."""
        wanted = set(targets)
        return any(p.wants_audio and p.language in wanted for p in self.listeners(speaker)) or any(
            r.wants_audio and r.language in wanted for r in self.remote.values()
        )

    def broadcast(self, message: ServerMessage, to: Iterable[Participant] | None = None) -> None:
        text = message.encode()  # serialise once, whatever the audience size
        for p in self.members.values() if to is None else to:
            p.outbox.put(text)


class RoomFull(Exception):
    pass


class TooManyRooms(Exception):
    pass


class WrongPasscode(Exception):
    pass


def passcode_digest(passcode: str) -> bytes:
    # Kept only while the room lives, in memory; hashed so a memory dump or debugger shows no passcode.
    return hashlib.sha256(passcode.encode()).digest()


class Rooms:
    def __init__(self, max_rooms: int, max_per_room: int, transcript_cap: int = 2000) -> None:
        self._rooms: dict[str, Room] = {}
        self._max_rooms = max_rooms
        self._max_per_room = max_per_room
        self._transcript_cap = transcript_cap  # utterances each room's transcript keeps (RoomTranscript)

    def __len__(self) -> int:
        return len(self._rooms)

    @property
    def max_per_room(self) -> int:
        """Participants a room holds, cluster-wide."""
        return self._max_per_room

    def __iter__(self):  # noqa: ANN204 - plain iterator over rooms
        return iter(list(self._rooms.values()))

    def get(self, name: str) -> Room | None:
        return self._rooms.get(name)

    @property
    def participants(self) -> int:
        return sum(len(r.members) for r in self._rooms.values())

    def join(self, p: Participant, passcode: str | None = None) -> Room:
        """Put `p` in its room, creating the room (locked with `passcode`, if one is given) when it is new."""
        room = self._rooms.get(p.room_name)
        if room is None:
            if len(self._rooms) >= self._max_rooms:
                raise TooManyRooms(f"this server hosts at most {self._max_rooms} rooms")
            room = self._rooms[p.room_name] = Room(
                p.room_name,
                passcode_digest=passcode_digest(passcode) if passcode else None,
                transcript=RoomTranscript(p.room_name, self._transcript_cap),
            )
        elif not room.admits(passcode):  # before the size check: outsiders learn nothing about the room
            raise WrongPasscode(f"room {p.room_name!r} needs its passcode")
        elif room.count >= self._max_per_room:
            raise RoomFull(f"room {p.room_name!r} is full ({self._max_per_room} participants)")
        room.members[p.id] = p
        return room

    def leave(self, p: Participant) -> Room | None:
        room = self._rooms.get(p.room_name)
        if room is None or room.members.pop(p.id, None) is None:
            return None
        if not room.members:
            del self._rooms[p.room_name]
        return room
