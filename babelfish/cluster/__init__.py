"""Several servers, one conversation: what a server tells the rest of its cluster, and the single-server default.

`Cluster` is what the rest of the server sees: presence (`entered`/`left`) and results to relay (`relay`). Without
`--redis-url` it is `LocalOnly`, which does nothing; `babelfish.cluster.redis_node.RedisCluster` is the real one.
"""

from __future__ import annotations

from typing import Any, Protocol

from babelfish.cluster.inbound import Ignored
from babelfish.rooms import Participant, RemoteMember, Room
from babelfish.transcripts import Entry


class EchoSink(Protocol):
    """Where one-phone-per-voice frames from the other servers go (babelfish/echoes.py)."""

    def remote(self, room: str, origin: str, body: dict[str, Any], payload: bytes = b"") -> Ignored | None:
        """A frame from server `origin` about its phones in `room` (its name here): None once taken, else why not."""
        ...

    def unreachable(self, room: str, client: str) -> None:
        """`client`'s server is dead or out of reach: nothing more of it will come (never from the wire)."""


class Cluster(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def entered(self, p: Participant) -> None:
        """`p` joined its room here and has had its welcome: tell the other servers."""

    def left(self, p: Participant) -> None:
        """`p` left its room here: tell the other servers."""

    def relay(
        self, room: Room, text: str, language: str | None, pcm: bytes | None = None, audio_only: bool = False
    ) -> None:
        """Hand a result (an encoded server message; audio: header + PCM) to listeners of `language` elsewhere;
        `audio_only`: a message about audio (speech_skipped), only for listeners who take audio."""

    def relay_partial(self, room: Room, slot: tuple[str, str, str], text: str, language: str | None) -> None:
        """Hand a streaming partial to listeners of `language` (None: everyone) elsewhere. Low priority: a newer
        partial of the same `slot` (utterance id, kind, language) supersedes one still waiting, and partials are the
        first thing dropped when the link to the other servers is busy."""

    def everywhere(self, text: str) -> None:
        """Hand an encoded server message to every client of every other server (speaker_renamed: voices are
        cluster-wide)."""

    def record(self, room: Room, entry: Entry) -> None:
        """A finished utterance of `room` (translations included), for the room's transcript on the other servers."""

    def shares(self, room: str) -> bool:
        """Whether `room` (its name here) has members on other servers now."""
        ...

    def echo(self, room: str, body: dict[str, Any], payload: bytes = b"") -> None:
        """Hand a one-phone-per-voice frame (babelfish/echoes.py) to `room`'s other servers."""

    def listen_echoes(self, sink: EchoSink) -> None:
        """Where one-phone-per-voice frames from the other servers go."""

    async def look(self, room: str, passcode: str | None) -> list[RemoteMember]:
        """Who is in `room` (as this passcode opens it) on the other servers now; read before admitting a newcomer,
        so its welcome lists the whole room and nothing reaches it before that welcome. Bounded wait; [] if unknown."""
        ...

    def adopt(self, room: Room, members: list[RemoteMember], newcomer: Participant) -> None:
        """Add what `look` found to `room` (telling the others there, not the newcomer: its welcome lists them)."""

    def status(self) -> dict[str, object]:
        """For /healthz and /metrics."""
        ...


class LocalOnly:
    """One server on its own: nothing to tell anyone."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def entered(self, p: Participant) -> None:
        return None

    def left(self, p: Participant) -> None:
        return None

    def relay(
        self, room: Room, text: str, language: str | None, pcm: bytes | None = None, audio_only: bool = False
    ) -> None:
        return None

    def relay_partial(self, room: Room, slot: tuple[str, str, str], text: str, language: str | None) -> None:
        return None

    def everywhere(self, text: str) -> None:
        return None

    def record(self, room: Room, entry: Entry) -> None:
        return None

    def shares(self, room: str) -> bool:
        return False

    def echo(self, room: str, body: dict[str, Any], payload: bytes = b"") -> None:
        return None

    def listen_echoes(self, sink: EchoSink) -> None:
        return None

    async def look(self, room: str, passcode: str | None) -> list[RemoteMember]:
        return []

    def adopt(self, room: Room, members: list[RemoteMember], newcomer: Participant) -> None:
        return None

    def status(self) -> dict[str, object]:
        return {"mode": "single"}
