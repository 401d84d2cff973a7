"""Registry rules with hand-made vectors and a real SQLite store (no model)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from babelfish.speakers.registry import Registry, UnknownSpeaker
from babelfish.store.sqlite import SqliteStore

DIM = 8


def voice(i: int, wobble: float = 0.0, seed: int = 0) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    v += np.random.default_rng(seed).standard_normal(DIM).astype(np.float32) * wobble
    return v


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "speakers.db")
    yield s
    s.close()


def registry(store: SqliteStore, **kw: object) -> Registry:
    return Registry(store, "fake", threshold=0.7, **kw)  # type: ignore[arg-type]


def test_first_voice_takes_the_clients_name_further_voices_are_numbered(store: SqliteStore) -> None:
    r = registry(store)
    dan = r.identify("c1", "Dan's phone", voice(0))
    other = r.identify("c1", "Dan's phone", voice(1))
    third = r.identify("c1", "Dan's phone", voice(2))
    assert (dan.enrolled, other.enrolled, third.enrolled) == (True, True, True)
    assert dan.speaker.name == "Dan's phone"
    assert other.speaker.name == "Speaker 2 (via Dan's phone)"
    assert third.speaker.name == "Speaker 3 (via Dan's phone)"
    assert len({dan.speaker.id, other.speaker.id, third.speaker.id}) == 3


def test_a_known_voice_is_recognised_from_any_client(store: SqliteStore) -> None:
    r = registry(store)
    ann = r.identify("c1", "Ann", voice(0)).speaker
    again = r.identify("c2", "Kitchen tablet", voice(0, wobble=0.1, seed=3))
    assert again.speaker == ann and not again.enrolled and again.score is not None and again.score > 0.7


def test_no_embedding_inherits_the_clients_last_speaker_or_the_client(store: SqliteStore) -> None:
    r = registry(store)
    first = r.identify("c1", "Dan", None)
    assert (first.speaker.id, first.speaker.name, first.enrolled) == ("c1", "Dan", False)
    assert store.speakers() == []  # nothing enrolled from a too-short utterance
    bob = r.identify("c1", "Dan", voice(3)).speaker
    assert r.identify("c1", "Dan", None).speaker == bob


def test_refinement_is_bounded_and_durable(tmp_path: Path, store: SqliteStore) -> None:
    r = registry(store, refine_max=4)
    sid = r.identify("c", "A", voice(0)).speaker.id
    for seed in range(10):
        r.identify("c", "A", voice(0, wobble=0.2, seed=seed))
    [record] = store.speakers()
    assert record.id == sid and record.samples == 4
    # one stray (but still matching) utterance moves a voice refined over 4 by at most a quarter of the way
    before = record.embedding.copy()
    odd = voice(0) * 0.8 + voice(1) * 0.6
    r.identify("c", "A", odd)
    after = store.speakers()[0].embedding
    assert np.linalg.norm(after - before) < 0.35
    assert abs(np.linalg.norm(after) - 1) < 1e-5


def test_rename_forget_and_changes_made_by_another_process(tmp_path: Path, store: SqliteStore) -> None:
    r = registry(store)
    a = r.identify("c", "A", voice(0)).speaker
    assert r.rename(a.id, "Alice").name == "Alice"
    assert r.identify("c", "A", None).speaker.name == "Alice"
    with pytest.raises(UnknownSpeaker):
        r.rename("spk-nope", "X")
    # the admin CLI works on its own connection; the running registry sees it before the next utterance
    cli = SqliteStore(tmp_path / "speakers.db")
    assert cli.rename(a.id, "Alice B.")
    assert r.identify("c", "A", voice(0)).speaker.name == "Alice B."
    assert cli.forget(a.id)
    cli.close()
    fresh = r.identify("c", "A", voice(0))
    assert fresh.enrolled and fresh.speaker.id != a.id
    assert r.forget(fresh.speaker.id) and store.speakers() == []


def test_other_embedders_vectors_are_never_compared(store: SqliteStore) -> None:
    Registry(store, "other-model", threshold=0.7).identify("c", "A", voice(0))
    mine = registry(store).identify("c", "B", voice(0))
    assert mine.enrolled and mine.speaker.name == "B"


def test_registrations_survive_a_new_process(tmp_path: Path) -> None:
    s1 = SqliteStore(tmp_path / "speakers.db")
    a = registry(s1).identify("c", "A", voice(0)).speaker
    # no close(): a killed process does not close its database either
    s2 = SqliteStore(tmp_path / "speakers.db")
    assert registry(s2).identify("c9", "Z", voice(0)).speaker == a
    s2.close()
    s1.close()


class HangingStore:
    """A store whose `changed()` hangs while `hang` is set, as the cluster's does when Redis stops answering."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner
        self.hang, self.entered, self.release = threading.Event(), threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def changed(self) -> bool:
        if self.hang.is_set():
            self.entered.set()
            self.release.wait(5)
        return self.inner.changed()


def test_last_speaker_never_waits_for_a_store_that_hangs(store: SqliteStore) -> None:
    # last_speaker runs on the event loop (streaming partials): a rename stuck on the store in the worker thread
    # must not freeze it.
    hanging = HangingStore(store)
    reg = Registry(hanging, "fake", 0.7)  # type: ignore[arg-type]
    ann = reg.identify("c1", "Ann", voice(0)).speaker
    hanging.hang.set()
    worker = threading.Thread(target=reg.rename, args=(ann.id, "Ann K."), daemon=True)
    worker.start()
    try:
        assert hanging.entered.wait(5)
        began = time.monotonic()
        assert reg.last_speaker("c1") == ann and reg.last_speaker("nobody") is None
        assert time.monotonic() - began < 1.0
    finally:
        hanging.release.set()
        worker.join(10)
    assert not worker.is_alive()
    assert reg.last_speaker("c1") == type(ann)(ann.id, "Ann K.")
