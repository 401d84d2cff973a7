"""`python -m babelfish fetch-models PRESET...`: download bigger models from the Hugging Face hub into the data dir.

The offline default (Whisper base, apertium, espeak-ng) installs with pip. A machine that has internet can fetch more:
a better Whisper, NLLB-200 (German and ~200 languages), opus-mt pairs, SeamlessM4T, pyannote. Files go to
`data_dir/models/<folder>/` with a marker the server looks for at start (babelfish/model_store.py), so the next start
uses them without flags. Downloads go through huggingface_hub's `snapshot_download` (resumable, progress bars, the
`HF_TOKEN` / `HF_ENDPOINT` environment it honours); transformers MT models are converted to CTranslate2 int8 after
download (about 4x smaller and faster on CPU) with CTranslate2's own converter.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from babelfish.model_store import MARKER, Role, models_dir, read_marker, stored, write_marker

Kind = Literal["ctranslate2", "transformers", "pyannote"]

# What each kind of repo needs; everything else in a repo (other frameworks' weights, fairseq2 .pt checkpoints of
# 11 GB next to Seamless's transformers weights, READMEs) is not downloaded.
ALLOW: dict[Kind, list[str]] = {
    "ctranslate2": ["config.json", "model.bin", "tokenizer.json", "vocabulary.*", "preprocessor_config.json"],
    "transformers": ["*.json", "*.model", "*.spm", "*.safetensors", "*.bin", "*.txt"],
    "pyannote": ["*.bin", "*.ckpt", "*.yaml"],
}
IGNORE = ["*.pt", "onnx/*", "*.onnx", "*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*", "rust_model*"]
# Left out of a CTranslate2 conversion's copied files: the converter writes its own config and weights.
NOT_COPIED = re.compile(r"^(config\.json|generation_config\.json|.*\.safetensors|.*\.bin|.*\.index\.json)$")


@dataclass(frozen=True)
class Source:
    repo: str
    folder: str  # under data_dir/models
    kind: Kind
    convert: bool = False  # transformers weights → CTranslate2 int8 after download


@dataclass(frozen=True)
class Preset:
    name: str
    role: Role
    rank: int  # among fetched models of one role the server uses the highest
    buys: str
    licence: str
    download: str  # approximate, for --list; the exact size is printed before anything is downloaded
    disk: str
    sources: tuple[Source, ...]
    gated: bool = False

    @property
    def repos(self) -> str:
        return ", ".join(s.repo for s in self.sources)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "whisper-small", "asr", 20,
            "Whisper small (244M parameters, base has 74M): fewer misheard words, several times base's CPU time",
            "MIT", "0.5 GB", "0.5 GB",
            (Source("Systran/faster-whisper-small", "faster-whisper-small", "ctranslate2"),),
        ),
        Preset(
            "whisper-turbo", "asr", 30,
            "Whisper large-v3-turbo (809M parameters): near large-v3 accuracy; wants a GPU or many cores for live use",
            "MIT", "1.6 GB", "1.6 GB",
            (Source("mobiuslabsgmbh/faster-whisper-large-v3-turbo", "faster-whisper-large-v3-turbo", "ctranslate2"),),
        ),
        Preset(
            "nllb-600m", "mt", 20,
            "NLLB-200 distilled 600M: text between ~200 languages directly, German included (CTranslate2 int8)",
            "CC-BY-NC-4.0 (non-commercial)", "2.5 GB", "0.6 GB",
            (Source("facebook/nllb-200-distilled-600M", "nllb-200-distilled-600M-ct2", "transformers", convert=True),),
        ),
        Preset(
            "opus-mt-de", "mt", 10,
            "opus-mt German<->English (Marian, CTranslate2 int8): German listeners and speakers, other languages "
            "through English",
            "CC-BY-4.0", "0.6 GB", "0.15 GB",
            (
                Source("Helsinki-NLP/opus-mt-de-en", "opus-mt-de-en-ct2", "transformers", convert=True),
                Source("Helsinki-NLP/opus-mt-en-de", "opus-mt-en-de-ct2", "transformers", convert=True),
            ),
        ),
        Preset(
            "seamless-v2", "seamless", 30,
            "SeamlessM4T v2 large: speech to text and speech in one model (~100 languages in, 36 spoken out); "
            "--engine auto runs it from the next start; needs a GPU for live use",
            "CC-BY-NC-4.0 (non-commercial)", "9.3 GB", "9.3 GB",
            (Source("facebook/seamless-m4t-v2-large", "seamless-m4t-v2-large", "transformers"),),
        ),
        Preset(
            "seamless-medium", "seamless", 20,
            "SeamlessM4T v1 medium (1.2B parameters, half of v2 large): the same speech-to-text-and-speech engine on "
            "smaller machines, at lower quality than v2",
            "CC-BY-NC-4.0 (non-commercial)", "4.8 GB", "4.8 GB",
            (Source("facebook/hf-seamless-m4t-medium", "seamless-m4t-medium", "transformers"),),
        ),
        Preset(
            "pyannote", "speaker", 10,
            "pyannote speaker-embedding models (WeSpeaker ResNet34, pyannote/embedding) for telling voices apart; "
            "the server uses WeSpeaker from its next start (--speaker-model pyannote/embedding for the other)",
            "MIT / CC-BY-4.0", "0.05 GB", "0.05 GB",
            (
                Source("pyannote/wespeaker-voxceleb-resnet34-LM", "pyannote-wespeaker-resnet34-LM", "pyannote"),
                Source("pyannote/embedding", "pyannote-embedding", "pyannote"),
            ),
            gated=True,
        ),
    )
}  # fmt: skip
OPUS_MT = re.compile(r"^opus-mt-([a-z]{2,3})-([a-z]{2,3})$")


def preset(name: str) -> Preset | None:
    """A named preset, or `opus-mt-XX-YY` for any Helsinki-NLP opus-mt pair."""
    if name in PRESETS:
        return PRESETS[name]
    m = OPUS_MT.match(name)
    if m is None:
        return None
    src, tgt = m.groups()
    return Preset(
        name, "mt", 10, f"opus-mt {src}->{tgt} (Marian, CTranslate2 int8)", "CC-BY-4.0 (most pairs)", "0.3 GB",
        "0.08 GB", (Source(f"Helsinki-NLP/opus-mt-{src}-{tgt}", f"opus-mt-{src}-{tgt}-ct2", "transformers", True),),
    )  # fmt: skip


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "kB") else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"


def print_list() -> None:
    print("Presets: python -m babelfish fetch-models NAME... (sizes approximate; the exact size is shown first)\n")
    for p in PRESETS.values():
        gated = ", gated (HF_TOKEN and accepted terms)" if p.gated else ""
        print(f"{p.name:<14} {p.download} download, {p.disk} on disk, {p.licence}{gated}")
        print(f"{'':<14} {p.buys}")
        print(f"{'':<14} from {p.repos}")
    print(f"{'opus-mt-XX-YY':<14} ~0.3 GB download, ~0.08 GB on disk, CC-BY-4.0 (most pairs)")
    print(f"{'':<14} any Helsinki-NLP opus-mt pair, e.g. opus-mt-en-it")


def _plan(source: Source, target: Path) -> tuple[list[str], int, str]:
    """The files to fetch (exact names), the bytes still to download, and the hub commit: a dry run, no download."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()  # a listing, not a download: its bars would only be noise
    try:
        infos: Any = snapshot_download(
            source.repo, local_dir=target, allow_patterns=ALLOW[source.kind], ignore_patterns=IGNORE, dry_run=True
        )
    finally:
        if not was_disabled:
            enable_progress_bars()
    names = {i.filename for i in infos}
    if source.kind == "transformers" and any(n.endswith(".safetensors") for n in names):
        names = {n for n in names if not n.endswith(".bin")}  # the same weights twice: keep the safer format
    chosen = [i for i in infos if i.filename in names]
    commit = chosen[0].commit_hash if chosen else ""
    return sorted(names), sum(i.file_size or 0 for i in chosen if i.will_download), commit


def _free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def convert_to_ctranslate2(src: Path, out: Path, quantization: str = "int8") -> None:
    """A transformers MT folder → a CTranslate2 folder the cascade's Seq2Seq loads (tokenizer files copied along)."""
    import ctranslate2

    copy = sorted(p.name for p in src.iterdir() if p.is_file() and not NOT_COPIED.match(p.name))
    converter = ctranslate2.converters.TransformersConverter(str(src), copy_files=copy)
    converter.convert(str(out), quantization=quantization, force=True)


def fetch_source(p: Preset, source: Source, data_dir: Path, dry_run: bool) -> None:
    from huggingface_hub import snapshot_download

    final = models_dir(data_dir) / source.folder
    target = models_dir(data_dir) / ".downloads" / source.folder if source.convert else final
    names, size, commit = _plan(source, target)
    if not names:
        raise RuntimeError(f"{source.repo} has none of the files a {source.kind} model needs")
    done = read_marker(final)
    if done is not None and done.revision == commit:
        print(f"  {source.repo}: up to date in {final}")
        return
    print(f"  {source.repo}: {len(names)} files, {human(size)} to download → {final}")
    if dry_run:
        return
    need = size + (size // 3 if source.convert else 0)
    if _free_bytes(final) < need:
        raise RuntimeError(f"not enough disk space for {source.repo}: {human(need)} needed, "
                           f"{human(_free_bytes(final))} free under {final.parent}")  # fmt: skip
    (final / MARKER).unlink(missing_ok=True)  # a folder being updated is not a usable model until it is done
    started = time.perf_counter()
    snapshot_download(source.repo, revision=commit or None, local_dir=target, allow_patterns=names)
    print(f"  downloaded in {time.perf_counter() - started:.0f} s")
    if source.convert:
        print("  converting to CTranslate2 int8 (minutes for large models; needs about the download's size in RAM)")
        started = time.perf_counter()
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        convert_to_ctranslate2(target, partial)
        write_marker(partial, p.role, p.name, source.repo, commit, p.rank, p.licence)
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        shutil.rmtree(target)  # the original weights are not needed any more
        print(f"  converted in {time.perf_counter() - started:.0f} s: {human(_folder_size(final))} in {final}")
    else:
        write_marker(final, p.role, p.name, source.repo, commit, p.rank, p.licence)


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _gated_help(repo: str, endpoint: str) -> str:
    return (
        f"  {repo} is gated: the hub gives its files only to an account that accepted its terms.\n"
        f"    1. Log in on {endpoint} and accept the terms on {endpoint}/{repo}\n"
        f"    2. Create a read token on {endpoint}/settings/tokens\n"
        f"    3. Run again with it: HF_TOKEN=hf_... python -m babelfish fetch-models ... (or `hf auth login` once)"
    )


USES: dict[Role, str] = {
    "asr": "speech recognition (instead of the shipped Whisper base; --asr-model still overrides)",
    "mt": "translation, beside the offline backends",
    "seamless": "the seamless engine (--engine auto picks it; --engine cascade keeps the cascade)",
    "speaker": "nothing yet: kept for a pyannote speaker backend",
}


def fetch(p: Preset, data_dir: Path, dry_run: bool = False) -> bool:
    from huggingface_hub import constants
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError

    print(f"{p.name}: {p.buys}\n  licence: {p.licence}")
    ok = True
    for source in p.sources:
        try:
            fetch_source(p, source, data_dir, dry_run)
        except GatedRepoError:
            print(_gated_help(source.repo, constants.ENDPOINT))
            ok = False
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError, RuntimeError, ValueError) as exc:
            print(f"  {source.repo}: failed: {str(exc).strip().splitlines()[0]}")
            ok = False
    if ok and not dry_run:
        print(f"  ready: the server uses it from its next start for {USES[p.role]}")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m babelfish fetch-models",
        description="Download bigger models (better ASR, NLLB/opus-mt translation, SeamlessM4T, pyannote) into the "
        "data dir; the server uses them from its next start. Needs internet (or HF_ENDPOINT pointing at a mirror).",
    )
    parser.add_argument("presets", nargs="*", metavar="PRESET", help="presets to fetch (see --list)")
    parser.add_argument("--list", action="store_true", help="list the presets: size, licence, what each buys")
    parser.add_argument("--data-dir", type=Path, default=None, help="the server's data dir (default: its setting)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be downloaded, and how much")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.list or not args.presets:
        print_list()
        return 0
    unknown = [name for name in args.presets if preset(name) is None]
    if unknown:
        print(f"unknown preset(s): {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        print("HF_HUB_OFFLINE is set: downloads are switched off. Unset it to fetch models.", file=sys.stderr)
        return 2
    if args.data_dir is None:
        from babelfish.config import Settings

        args.data_dir = Settings().data_dir
    print(f"hub: {constants.ENDPOINT}; models go to {models_dir(args.data_dir).resolve()}\n")
    results = [fetch(p, args.data_dir, args.dry_run) for name in args.presets if (p := preset(name)) is not None]
    if not args.dry_run:
        have = ", ".join(f"{m.role}: {m.folder.name}" for m in stored(args.data_dir)) or "none"
        print(f"\nfetched models in {models_dir(args.data_dir)}: {have}")
    return 0 if all(results) else 1
