"""The cluster's speaker store against a real redis-server: shared between servers, and nothing lost while Redis is
down (the local copy serves, a journal replays), with hand-made vectors (no model)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from babelfish.speakers import backup, cli
from babelfish.speakers.registry import Registry
from babelfish.store.base import SpeakerRecord
from babelfish.store.redis_store import RedisStore
from babelfish.store.shared import SharedStore
from babelfish.store.sqlite import SqliteStore
from tests.redisproc import RedisProcess, free_port
from tests.serverproc import ROOT
from tests.speakers.test_registry import voice


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path / "redis", password="pw").start()
    yield proc
    proc.kill()


def record(sid: str, i: int, name: str = "") -> SpeakerRecord:
    return SpeakerRecord(sid, name or sid, "fake", voice(i), created=float(i), updated=float(i), extra={"k": [i]})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def shared(redis: RedisProcess, folder: Path, clock: Clock | None = None) -> SharedStore:
    folder.mkdir(parents=True, exist_ok=True)
    return SharedStore(RedisStore(redis.url, timeout=1), SqliteStore(folder / "speakers.db"), folder,
                       clock=clock or Clock())  # fmt: skip


def test_redis_store_round_trip_and_changes_seen_by_another_server(redis: RedisProcess) -> None:
    a, b = RedisStore(redis.url), RedisStore(redis.url)
    try:
        assert b.speakers() == [] and not b.changed()
        a.put(record("spk-1", 0, "Ann"))
        assert b.changed()
        (got,) = b.speakers()
        assert (got.id, got.name, got.embedder, got.extra, got.created) == ("spk-1", "Ann", "fake", {"k": [0]}, 0.0)
        assert np.array_equal(got.embedding, voice(0)) and not b.changed()
        assert a.rename("spk-1", "Annie") and a.refine("spk-1", voice(1), 2, 5.5)
        assert not a.rename("nobody", "X") and not a.refine("nobody", voice(1), 2, 5.5)
        assert b.changed()
        (got,) = b.speakers()
        assert (got.name, got.samples, got.updated) == ("Annie", 2, 5.5) and np.array_equal(got.embedding, voice(1))
        a.put_all([record("spk-2", 2), record("spk-3", 3)], replace=True)
        assert [r.id for r in b.speakers()] == ["spk-2", "spk-3"]
        assert a.forget("spk-2") and not a.forget("spk-2")
        # Backups are written and read the same whatever the store.
        data = backup.to_json(b.speakers())
        assert [r.id for r in backup.parse_backup(data, "fake", 8)] == ["spk-3"]
    finally:
        a.close()
        b.close()


def test_a_voice_enrolled_through_one_server_is_recognised_through_another(redis: RedisProcess, tmp_path: Path):
    one, two = shared(redis, tmp_path / "a"), shared(redis, tmp_path / "b")
    ra, rb = Registry(one, "fake", 0.7), Registry(two, "fake", 0.7)
    ann = ra.identify("c1", "Ann", voice(0)).speaker
    heard = rb.identify("c9", "Hall", voice(0, wobble=0.1, seed=4))
    assert heard.speaker == ann and not heard.enrolled
    rb.rename(ann.id, "Ann B.")
    assert ra.identify("c1", "Ann", voice(0)).speaker.name == "Ann B."


def test_nothing_stored_while_redis_is_down_is_lost(redis: RedisProcess, tmp_path: Path) -> None:
    clock = Clock()
    one = shared(redis, tmp_path / "a", clock)
    reg = Registry(one, "fake", 0.7)
    ann = reg.identify("c1", "Ann", voice(0)).speaker
    bob = reg.identify("c2", "Bob", voice(1)).speaker
    redis.kill()
    # Down: recognition goes on from the local copy, new voices and changes are kept locally and journalled.
    assert reg.identify("c3", "Tablet", voice(0, 0.1, 5)).speaker == ann
    cat = reg.identify("c4", "Cat", voice(2)).speaker
    reg.rename(ann.id, "Ann K.")
    assert reg.forget(bob.id)
    assert one.status() == {"store": "local", "pending": 3}
    one.close()
    # A restart while Redis is still down: the local copy and the journal survive it.
    clock.now = 100
    again = shared(redis, tmp_path / "a", clock)
    assert {r.name for r in again.speakers()} == {"Ann K.", "Cat"} and again.pending == 3
    # Redis returns (empty: no persistence in tests): the copy fills it again and the journal is replayed.
    redis.start()
    clock.now = 200
    assert {(r.id, r.name) for r in again.speakers()} == {(ann.id, "Ann K."), (cat.id, "Cat")}
    assert again.pending == 0 and again.status()["store"] == "redis"
    other = RedisStore(redis.url)
    assert {(r.id, r.name) for r in other.speakers()} == {(ann.id, "Ann K."), (cat.id, "Cat")}
    other.close()
    again.close()


def test_voices_known_before_the_cluster_are_copied_up(redis: RedisProcess, tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    alone = SqliteStore(folder / "speakers.db")
    alone.put(record("spk-old", 3, "Dora"))
    alone.close()
    RedisStore(redis.url).put(record("spk-new", 4, "Eve"))  # the cluster already has voices
    joined = shared(redis, folder)
    assert {r.name for r in joined.speakers()} == {"Dora", "Eve"}
    joined.close()


def test_the_admin_cli_works_on_the_shared_store(redis: RedisProcess, tmp_path: Path) -> None:
    RedisStore(redis.url).put(record("spk-1", 0, "Ann"))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "babelfish", "speakers", "--data-dir", str(tmp_path / "d"),
                               "--redis-url", redis.url, *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)  # fmt: skip

    assert cli("rename", "spk-1", "Annie").returncode == 0
    assert "Annie" in cli("list").stdout
    out = tmp_path / "backup.json"
    assert cli("export", str(out)).returncode == 0
    assert backup.parse_backup(json.loads(out.read_text()), "fake", 8)[0].name == "Annie"
    redis.kill()
    down = cli("rename", "spk-1", "X")
    assert down.returncode == 1 and "did not answer" in down.stderr


def test_a_voice_forgotten_through_another_server_leaves_this_servers_copy(redis: RedisProcess, tmp_path: Path):
    clock = Clock()
    one, two = shared(redis, tmp_path / "a"), shared(redis, tmp_path / "b", clock)
    ra, rb = Registry(one, "fake", 0.7), Registry(two, "fake", 0.7)
    ann = ra.identify("c1", "Ann", voice(0)).speaker
    clock.now = 60  # b copies what the others wrote at most every 30 s
    assert rb.identify("c2", "Hall", voice(0)).speaker == ann

    def b_copy() -> set[str]:
        copy = SqliteStore(tmp_path / "b" / "speakers.db")
        try:
            return {r.id for r in copy.speakers()}
        finally:
            copy.close()

    assert ann.id in b_copy()
    assert ra.forget(ann.id)
    rb.identify("c2", "Hall", voice(5))  # b's next utterance: it reloads, and the forget reaches its copy at once
    assert ann.id not in b_copy()


def test_an_offline_refinement_neither_undoes_a_rename_nor_brings_back_a_forgotten_voice(
    redis: RedisProcess, tmp_path: Path
) -> None:
    clock = Clock()
    one = shared(redis, tmp_path / "a", clock)
    reg = Registry(one, "fake", 0.7)
    ann = reg.identify("c1", "Ann", voice(0)).speaker
    bob = reg.identify("c2", "Bob", voice(1)).speaker
    redis.kill()
    # Offline here: both voices are refined (journalled, fields only); an unknown id journals nothing.
    assert reg.identify("c1", "Ann", voice(0, 0.1, 5)).speaker == ann
    assert reg.identify("c2", "Bob", voice(1, 0.1, 6)).speaker == bob
    assert not one.rename("nobody", "X") and one.pending == 2
    # Meanwhile the cluster renamed Ann and forgot Bob (Redis restarted empty in tests: the other server writes
    # what the cluster holds by then).
    redis.start()
    other = RedisStore(redis.url)
    try:
        other.put(SpeakerRecord(ann.id, "Ann B.", "fake", voice(0), samples=1, created=1.0, updated=1.0))
        clock.now = 100
        one.speakers()  # Redis answers again: the journal is replayed
        assert one.pending == 0
        (got,) = other.speakers()
        assert (got.id, got.name, got.samples) == (ann.id, "Ann B.", 2)  # the refinement arrived, the rename stays
        assert not np.array_equal(got.embedding, voice(0))
    finally:
        other.close()
        one.close()


def test_a_change_the_journal_cannot_hold_is_not_made_locally(
    redis: RedisProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Journal first, then SQLite: a crash (here a full disk) in between never leaves a local change Redis won't hear of.
    one = shared(redis, tmp_path / "a")
    one.put(record("spk-1", 1, "Ann"))
    redis.kill()

    def full_disk(path: Path, data: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("babelfish.store.shared.write_json_atomic", full_disk)
    with pytest.raises(OSError):
        one.put(record("spk-2", 2, "Bob"))
    with pytest.raises(OSError):
        one.rename("spk-1", "Annie")
    with pytest.raises(OSError):
        one.forget("spk-1")
    one.close()
    copy = SqliteStore(tmp_path / "a" / "speakers.db")
    try:
        assert [(r.id, r.name) for r in copy.speakers()] == [("spk-1", "Ann")]
    finally:
        copy.close()


class Counted(RedisStore):
    tries = 0

    def speakers(self) -> list[SpeakerRecord]:
        self.tries += 1
        return super().speakers()


def test_a_redis_that_keeps_failing_is_tried_less_and_less_often(tmp_path: Path) -> None:
    clock, folder = Clock(), tmp_path / "a"
    folder.mkdir()
    remote = Counted(f"redis://127.0.0.1:{free_port()}/0", timeout=1)  # nothing listens there
    store = SharedStore(remote, SqliteStore(folder / "speakers.db"), folder, clock=clock)
    tried_at = []
    for t in range(0, 121):
        clock.now = float(t)
        before = remote.tries
        store.speakers()
        if remote.tries > before:
            tried_at.append(t)
    store.close()
    assert tried_at == [0, 2, 6, 14, 30, 60, 90, 120]  # 2 s, doubling, at most 30 s


def test_the_cli_refuses_to_change_only_the_local_copy_of_a_cluster_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BABELFISH_REDIS_URL", raising=False)
    folder = tmp_path / "d" / "speakers"
    local = SqliteStore(folder / "speakers.db")
    local.put(record("spk-1", 0, "Ann"))
    local.close()
    (folder / "redis-joined").write_text("joined\n")
    assert cli.main(["--data-dir", str(tmp_path / "d"), "forget", "spk-1"]) == 2
    assert "--local" in capsys.readouterr().err
    assert cli.main(["--data-dir", str(tmp_path / "d"), "list"]) == 2  # even reading: it may be behind the cluster
    assert cli.main(["--data-dir", str(tmp_path / "d"), "--local", "list"]) == 0
    assert "Ann" in capsys.readouterr().out
    assert cli.main(["--data-dir", str(tmp_path / "d"), "--local", "forget", "spk-1"]) == 0
