"""Real human voices through the default embedder (resemblyzer) and the registry at its default threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from babelfish.config import Settings
from babelfish.speakers.embedder import ResemblyzerEmbedder
from babelfish.speakers.registry import Registry
from babelfish.store.sqlite import SqliteStore
from tests.voices import voices


@pytest.fixture(scope="module")
def embedder() -> ResemblyzerEmbedder:
    return ResemblyzerEmbedder()


def test_readers_told_apart_and_recognised_across_clips(embedder: ResemblyzerEmbedder, tmp_path: Path) -> None:
    defaults = Settings()
    registry = Registry(SqliteStore(tmp_path / "s.db"), embedder.name, defaults.speaker_threshold)
    seen: dict[str, set[str]] = {}
    for who, clips in voices().items():
        for clip in clips:
            if len(clip) / 16000 < defaults.speaker_min_seconds:
                continue  # the pipeline does not embed these either
            match = registry.identify("one-phone", "Phone", embedder.embed(clip))
            seen.setdefault(who, set()).add(match.speaker.id)
    assert all(len(ids) == 1 for ids in seen.values()), seen  # each voice kept one label over all its clips
    assert len(set.union(*seen.values())) == 3, seen  # three people, three labels


def test_embeddings_are_unit_vectors_and_silence_is_refused(embedder: ResemblyzerEmbedder) -> None:
    clip = voices()["librivox"][0]
    v = embedder.embed(clip)
    assert v.shape == (embedder.dim,) and abs(float(np.linalg.norm(v)) - 1) < 1e-5
    with pytest.raises(ValueError):
        embedder.embed(np.zeros(16000, dtype=np.float32))
