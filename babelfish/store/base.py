"""The store interface: where known voices live between restarts.

Every write is durable when the call returns (a registration is on disk before anyone is told of it).
Calls may block on disk I/O: make them from a worker thread, not the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class SpeakerRecord:
    id: str
    name: str
    embedder: str  # which embedder made `embedding`; vectors of different embedders are never compared
    embedding: np.ndarray  # float32, unit length
    samples: int = 1  # utterances averaged into `embedding`
    created: float = 0.0  # unix time
    updated: float = 0.0
    via: str = ""  # name of the client the voice was first heard through
    extra: dict[str, object] = field(default_factory=dict)  # metadata kept from an imported backup


class Store(Protocol):
    def speakers(self) -> list[SpeakerRecord]:
        """Every known speaker."""
        ...

    def put(self, record: SpeakerRecord) -> None:
        """Insert or replace one speaker."""
        ...

    def refine(self, speaker_id: str, embedding: np.ndarray, samples: int, updated: float) -> bool:
        """Update a known speaker's embedding; False (and nothing written) if it was forgotten meanwhile."""
        ...

    def rename(self, speaker_id: str, name: str) -> bool:
        """False if there is no such speaker."""
        ...

    def forget(self, speaker_id: str) -> bool:
        """Delete a speaker and its embedding; False if there was none."""
        ...

    def put_all(self, records: Iterable[SpeakerRecord], replace: bool = False) -> None:
        """All or nothing: insert/replace every record (after deleting everyone else when `replace`)."""
        ...

    def changed(self) -> bool:
        """Whether someone else (another process: the CLI) changed the store since the last call."""
        ...

    def close(self) -> None: ...
