"""The settings.mt_models path, tested with a tiny random opus-mt (MarianMT) model built here from a config."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(("src", "tgt"), [("und", "en"), ("de", "deu")])
def test_marian_without_two_known_languages_is_skipped_with_a_warning(
    tiny_marian: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, src: str, tgt: str
):
    """One side unknown, or both the same language: a warning at load, not an unpacking error in Router.__init__."""
    folder = tmp_path / "opus-mt-bad"
    shutil.copytree(tiny_marian, folder)
    config = folder / "tokenizer_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "source_lang": src, "target_lang": tgt}))
    with caplog.at_level(logging.WARNING):
        assert load_seq2seq([folder, tiny_marian], threads=1, device="cpu")[0].folder == tiny_marian
    assert "opus-mt-bad" in caplog.text and "two distinct known languages" in caplog.text


def test_m2m100_is_driven_with_its_own_language_codes(tiny_marian: Path, tmp_path: Path):
    """M2M-100 says "tl" where BabbleFish says "fil": the tokenizer and the forced BOS must get the model's code."""
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer

    folder = tmp_path / "m2m100-tiny"
    folder.mkdir()
    vocab = {p: i for i, p in enumerate(["<s>", "<pad>", "</s>", "<unk>", "▁"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    shutil.copy(tiny_marian / "source.spm", folder / "sentencepiece.bpe.model")
    tok = M2M100Tokenizer(vocab_file=str(folder / "vocab.json"), spm_file=str(folder / "sentencepiece.bpe.model"))
    tok.save_pretrained(folder)
    config = M2M100Config(
        vocab_size=len(vocab) + len(tok.lang_code_to_token) + 8,  # the pieces, the language tokens, 8 made-up words
        d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
    )  # fmt: skip
    torch.manual_seed(0)
    M2M100ForConditionalGeneration(config).eval().save_pretrained(folder)
    (model,) = load_seq2seq([folder], threads=1, device="cpu")
    assert model.kind == "m2m" and ("fil", "zh") in model.pairs() and "tl" not in {a for a, _ in model.pairs()}
    assert isinstance(model.translate("hello", "fil", "zh"), str)
    assert model.tokenizer.src_lang == "tl"
    forced = []
    generate = model._model.generate
    model._model.generate = lambda **kw: forced.append(kw["forced_bos_token_id"]) or generate(**kw)
    model.translate("hello", "en", "fil")
    assert forced == [model.tokenizer.convert_tokens_to_ids("__tl__")] and model.tokenizer.src_lang == "en"


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
