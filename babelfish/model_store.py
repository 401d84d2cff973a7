"""Models fetched with `python -m babelfish fetch-models`: where they live and how the server finds them.

Each fetched model is a folder `data_dir/models/<name>/` holding the files the loader wants (a faster-whisper or
CTranslate2 folder, a transformers folder) and a marker, `babelfish-model.json`, written last: a folder without the
marker is a download that did not finish and is never used. The marker says what the model is for (`role`), which
preset brought it, and its `rank` among models of that role (the server uses the highest).

Cheap to import: no model library is loaded here.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

MARKER = "babelfish-model.json"
Role = Literal["asr", "mt", "seamless", "speaker"]


@dataclass(frozen=True)
class StoredModel:
    folder: Path
    role: Role
    preset: str  # the fetch-models preset that brought it
    repo: str  # the hub repo it came from
    revision: str  # the hub commit
    rank: int  # higher is better among models of one role
    licence: str

    @property
    def label(self) -> str:
        return f"fetched: {self.preset}, {self.repo}"


def models_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "models"


def write_marker(folder: Path, role: Role, preset: str, repo: str, revision: str, rank: int, licence: str) -> None:
    """Mark `folder` as a complete, usable model (atomically: a reader sees the whole marker or none)."""
    info = asdict(StoredModel(folder, role, preset, repo, revision, rank, licence))
    info.pop("folder")
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, folder / MARKER)


def read_marker(folder: Path) -> StoredModel | None:
    try:
        info = json.loads((folder / MARKER).read_text())
        return StoredModel(folder=folder, role=info["role"], preset=str(info["preset"]), repo=str(info["repo"]),
                           revision=str(info.get("revision", "")), rank=int(info.get("rank", 0)),
                           licence=str(info.get("licence", "")))  # fmt: skip
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a damaged marker: skip that folder, say so
        log.warning("ignoring fetched model in %s: unreadable %s (%s)", folder, MARKER, exc)
        return None


def stored(data_dir: Path, role: Role | None = None) -> list[StoredModel]:
    """The complete fetched models under data_dir (of one role if given), best first."""
    root = models_dir(data_dir)
    if not root.is_dir():
        return []
    # ".downloads" (originals awaiting conversion) and "<name>.partial" (a conversion not yet moved in) are work areas
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    found = [m for p in folders if not p.name.endswith(".partial") and (m := read_marker(p)) is not None]
    found = [m for m in found if role is None or m.role == role]
    return sorted(found, key=lambda m: -m.rank)


def find(data_dir: Path, role: Role, name: str) -> StoredModel | None:
    """A fetched model of `role` known by `name`: its preset, its hub repo or its folder name."""
    for model in stored(data_dir, role):
        if name in (model.preset, model.repo, model.folder.name):
            return model
    return None


def mt_folders(configured: Sequence[Path], data_dir: Path) -> list[Path]:
    """The MT model folders to load: the configured ones (--mt-models), then every fetched one not among them."""
    seen = {Path(p).resolve() for p in configured}
    return [*configured, *(m.folder for m in stored(data_dir, "mt") if m.folder.resolve() not in seen)]
