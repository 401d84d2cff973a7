"""Export / import in the original backup format, validation of hostile files, rotating backups, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from babelfish.__main__ import main
from babelfish.speakers import backup
from babelfish.speakers.embedder import RESEMBLYZER, RESEMBLYZER_DIM
from babelfish.store.base import SpeakerRecord
from babelfish.store.sqlite import SqliteStore, database_path


def unit(seed: int, dim: int = RESEMBLYZER_DIM) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(dim)
    return list(v / np.linalg.norm(v))


def seed_store(data_dir: Path, n: int = 2) -> list[SpeakerRecord]:
    store = SqliteStore(database_path(data_dir))
    records = [
        SpeakerRecord(f"spk-{i}", f"P{i}", RESEMBLYZER, np.asarray(unit(i), np.float32), 3, 100.0 + i, 200.0, "Dan")
        for i in range(n)
    ]
    store.put_all(records)
    store.close()
    return records


def snapshot(data_dir: Path) -> list[tuple[str, str, bytes]]:
    store = SqliteStore(database_path(data_dir))
    try:
        return [(r.id, r.name, r.embedding.tobytes()) for r in store.speakers()]
    finally:
        store.close()


def cli(data_dir: Path, *args: str) -> int:
    return main(["speakers", "--data-dir", str(data_dir), *args])


def test_export_import_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = tmp_path / "a", tmp_path / "b"
    seed_store(src)
    assert cli(src, "export", str(tmp_path / "backup.json")) == 0
    data = json.loads((tmp_path / "backup.json").read_text())
    assert set(data) >= {"timestamp", "speakers", "known_embeddings"}
    assert all(isinstance(x, float) for x in data["known_embeddings"]["spk-0"])
    assert cli(dst, "import", str(tmp_path / "backup.json")) == 0
    assert snapshot(dst) == snapshot(src)
    restored = SqliteStore(database_path(dst)).speakers()
    assert [(r.via, r.samples, r.created) for r in restored] == [("Dan", 3, 100.0), ("Dan", 3, 101.0)]
    assert cli(dst, "list") == 0
    assert "P0" in capsys.readouterr().out


def test_a_backup_from_the_original_deployment_imports(tmp_path: Path) -> None:
    # What the original's backup_server_state() wrote: speaker_metadata as is, embeddings as plain lists.
    original = {
        "timestamp": 1700000000.5,
        "speakers": {"SPEAKER_00": {"name": "Maria", "first_seen": 1699990000.0}, "SPEAKER_01": {}},
        "known_embeddings": {"SPEAKER_00": unit(7), "SPEAKER_01": unit(8), "SPEAKER_02": unit(9)},
    }
    path = tmp_path / "backup_1700000000.json"
    path.write_text(json.dumps(original))
    assert cli(tmp_path / "d", "import", str(path)) == 0
    by_id = {r.id: r for r in SqliteStore(database_path(tmp_path / "d")).speakers()}
    assert {k: v.name for k, v in by_id.items()} == {"SPEAKER_00": "Maria", "SPEAKER_01": "SPEAKER_01",
                                                     "SPEAKER_02": "SPEAKER_02"}  # fmt: skip
    assert by_id["SPEAKER_00"].extra == {"first_seen": 1699990000.0}
    assert by_id["SPEAKER_00"].embedder == RESEMBLYZER
    assert np.allclose(by_id["SPEAKER_00"].embedding, unit(7), atol=1e-6)


def _valid() -> dict:
    return {"timestamp": 1.0, "speakers": {"a": {"name": "A"}}, "known_embeddings": {"a": unit(1)}}


HOSTILE = {
    "not an object": [],
    "speakers is a list": {**_valid(), "speakers": []},
    "string in vector": {**_valid(), "known_embeddings": {"a": ["0.1"] * RESEMBLYZER_DIM}},
    "bools in vector": {**_valid(), "known_embeddings": {"a": [True] * RESEMBLYZER_DIM}},
    "wrong dimension": {**_valid(), "known_embeddings": {"a": unit(1, 512)}},
    "huge array": {**_valid(), "known_embeddings": {"a": [0.1] * 1_000_000}},
    "all zeros": {**_valid(), "known_embeddings": {"a": [0.0] * RESEMBLYZER_DIM}},
    "name not a string": {**_valid(), "speakers": {"a": {"name": 5}}},
    "bad id": {"speakers": {}, "known_embeddings": {"../../etc": unit(1)}},
    "metadata without embedding": {**_valid(), "speakers": {"a": {}, "b": {}}},
    "another embedder": {**_valid(), "speakers": {"a": {"embedder": "pyannote:x"}}},
    "timestamp a string": {**_valid(), "timestamp": "yesterday"},
    "timestamp a huge integer": {**_valid(), "timestamp": 10**400},
    "created a huge integer": {**_valid(), "speakers": {"a": {"created": 10**400}}},
    "id with a trailing newline": {"speakers": {}, "known_embeddings": {"a\n": unit(1)}},
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_import_is_refused_and_changes_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_store(tmp_path)
    before = snapshot(tmp_path)
    path = tmp_path / "evil.json"
    # a good speaker first, then the bad one: a half-import would show
    data = HOSTILE[case]
    if isinstance(data, dict) and isinstance(data.get("known_embeddings"), dict):
        data = {**data, "known_embeddings": {"good": unit(5), **data["known_embeddings"]}}
    path.write_text(json.dumps(data))
    assert cli(tmp_path, "import", str(path)) == 1
    assert "nothing changed" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


NAN_FILE = '{"speakers": {}, "known_embeddings": {"a": [NaN' + ", 0.1" * 255 + "]}}"


@pytest.mark.parametrize("text", ["{not json", NAN_FILE, "[" * 100_000 + "]" * 100_000])
def test_broken_json_nan_and_deep_nesting_are_refused(text: str, tmp_path: Path) -> None:
    seed_store(tmp_path)
    before = snapshot(tmp_path)
    (tmp_path / "x.json").write_text(text)
    assert cli(tmp_path, "import", str(tmp_path / "x.json")) == 1
    assert snapshot(tmp_path) == before


def test_nan_never_reaches_the_store() -> None:
    data = _valid()
    data["known_embeddings"]["a"][3] = math.nan
    with pytest.raises(backup.BadBackup, match="NaN"):
        backup.parse_backup(data, RESEMBLYZER, RESEMBLYZER_DIM)


def test_rename_and_forget_reach_the_backups_too(tmp_path: Path) -> None:
    records = seed_store(tmp_path)
    folder = backup.backup_dir(tmp_path)
    for i in range(4):
        backup.rotate(folder, records, keep=3, now=1000.0 + i)
    assert len(backup.backups(folder)) == 3
    assert cli(tmp_path, "rename", "spk-0", "  Dan  Smith ") == 0
    assert SqliteStore(database_path(tmp_path)).speakers()[0].name == "Dan Smith"
    assert cli(tmp_path, "forget", "spk-1") == 0
    assert [r.id for r in SqliteStore(database_path(tmp_path)).speakers()] == ["spk-0"]
    for path in backup.backups(folder):
        text = path.read_text()
        assert "spk-1" not in text and "spk-0" in text
    assert cli(tmp_path, "forget", "spk-1") == 1  # nothing left to forget
    assert cli(tmp_path, "rename", "spk-9", "X") == 1
