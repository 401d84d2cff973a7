"""Several servers, one conversation: what a server tells the rest of its cluster, and the single-server default.

`Cluster` is what the rest of the server sees: presence (`entered`/`left`) and results to relay (`relay`). Without
`--redis-url` it is `LocalOnly`, which does nothing; `babelfish.cluster.redis_node.RedisCluster` is the real one.
"""

from __future__ import annotations

from typing import Protocol

from babelfish.rooms import Participant, Room


class Cluster(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def entered(self, p: Participant) -> None:
        """`p` joined its room here and has had its welcome: tell the other servers."""

    def left(self, p: Participant) -> None:
        """`p` left its room here: tell the other servers."""

    def relay(self, room: Room, text: str, language: str | None, pcm: bytes | None = None) -> None:
        """Hand a result (an encoded server message; audio: header + PCM) to listeners of `language` elsewhere."""

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

    def relay(self, room: Room, text: str, language: str | None, pcm: bytes | None = None) -> None:
        return None

    def status(self) -> dict[str, object]:
        return {"mode": "single"}
