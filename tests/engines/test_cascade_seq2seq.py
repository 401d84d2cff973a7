"""The settings.mt_models path, tested with a tiny random opus-mt (MarianMT) model built here from a config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from babelfish.engines.cascade.mt import load_seq2seq
from babelfish.engines.cascade.router import Router

SENTENCES = [
    "hello world how are you today",
    "the weather is nice in berlin",
    "guten morgen wie geht es dir",
    "ich habe einen hund und eine katze",
] * 20


@pytest.fixture(scope="module")
def tiny_marian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    work = tmp_path_factory.mktemp("marian")
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES))
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(work / "spm"), vocab_size=32, model_type="unigram",
        bos_id=-1, eos_id=-1, unk_id=0, pad_id=-1, minloglevel=2,
    )  # fmt: skip
    sp = spm.SentencePieceProcessor(model_file=str(work / "spm.model"))
    # The opus-mt layout: </s>=0, <unk>=1, the pieces, <pad> last (CTranslate2's converter relies on that).
    pieces = ["</s>", "<unk>"] + [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if i != 0] + ["<pad>"]
    pieces = list(dict.fromkeys(pieces))  # one id per piece, or the vocab and the model's size disagree
    pad = len(pieces) - 1
    (work / "vocab.json").write_text(json.dumps({p: i for i, p in enumerate(pieces)}))
    tok = MarianTokenizer(
        source_spm=str(work / "spm.model"), target_spm=str(work / "spm.model"), vocab=str(work / "vocab.json"),
        source_lang="de", target_lang="en",
    )  # fmt: skip
    config = MarianConfig(
        vocab_size=len(pieces), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=256,
        pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    folder = work / "opus-mt-de-en"
    MarianMTModel(config).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_marian_folder_loads_declares_its_pair_and_translates(tiny_marian: Path):
    (model,) = load_seq2seq([tiny_marian], threads=1, device="cpu")
    assert model.kind == "marian"
    assert set(model.pairs()) == {("de", "en")}
    out = model.translate("guten morgen", "de", "en")
    assert isinstance(out, str)  # random weights: any string, but the whole path ran
    router = Router([model])
    assert router.route("de", "en")[0].backend == model.name


def test_bad_model_folder_is_skipped_not_fatal(tmp_path: Path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    assert load_seq2seq([tmp_path], threads=1, device="cpu") == []


def test_ctranslate2_conversion_of_the_same_model(tiny_marian: Path, tmp_path: Path):
    """Users often have opus-mt/NLLB converted to CTranslate2 (model.bin): the same folder layout must load."""
    import ctranslate2

    out = tmp_path / "opus-mt-de-en-ct2"
    tokenizer_files = [p.name for p in tiny_marian.iterdir() if p.suffix in (".spm", ".model", ".json") and p.name
                       not in ("config.json", "generation_config.json")]  # fmt: skip
    ctranslate2.converters.TransformersConverter(str(tiny_marian), copy_files=tokenizer_files).convert(str(out))
    assert (out / "model.bin").is_file()
    (model,) = load_seq2seq([out], threads=1, device="cpu")
    assert model.kind == "marian" and set(model.pairs()) == {("de", "en")}
    assert isinstance(model.translate("guten morgen", "de", "en"), str)
