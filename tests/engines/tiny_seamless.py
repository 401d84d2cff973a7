"""Build a tiny, randomly initialised SeamlessM4Tv2 folder that loads like facebook/seamless-m4t-v2-large (and a v1
one, `build_tiny_seamless_v1`, that loads like facebook/hf-seamless-m4t-medium).

Real Seamless weights cannot be downloaded here, so tests and the GPU check build this instead: a few layers, small
hidden sizes, a ~120-piece sentencepiece tokenizer in the NLLB id layout, and a generation config carrying the
language tables. Random weights produce random text and noise, but every stage of the real code path runs.
See ../shared/offline-models.md ("Known install traps") for why each odd step below is there.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Seamless codes for text out; the first three also have speech out (t2u + vocoder); "fra" has text only.
TEXT_LANGS = ("eng", "deu", "por", "spa", "fra")
SPEECH_LANGS = ("eng", "deu", "por", "spa")

SENTENCES = [
    "hello world how are you today",
    "the weather is nice in berlin this morning",
    "guten morgen wie geht es dir heute",
    "ich habe einen hund und eine katze",
    "bom dia como vai você",
    "buenos días cómo estás hoy",
    "bonjour tout le monde",
]


def _tiny_tokenizer(work: Path, text_langs: Sequence[str]) -> tuple[Any, dict[str, int], list[str]]:
    """A ~120-piece sentencepiece tokenizer trained in `work`, in NLLB's id layout, with a `__code__` token per
    language: (tokenizer, vocab, language tokens)."""
    import sentencepiece as spm
    from transformers import SeamlessM4TTokenizer

    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES * 10))
    # NLLB's sentencepiece layout: unk=0, bos=1, eos=2, no pad; the tokenizer shifts ids by one for <pad>=0.
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(work / "sentencepiece.bpe"), vocab_size=120, model_type="bpe",
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0, minloglevel=2,
    )  # fmt: skip
    tok_dir = work / "tok"
    tok_dir.mkdir(exist_ok=True)
    (tok_dir / "sentencepiece.bpe.model").write_bytes((work / "sentencepiece.bpe.model").read_bytes())
    lang_tokens = [f"__{code}__" for code in text_langs]
    tokenizer = SeamlessM4TTokenizer.from_pretrained(
        str(tok_dir), additional_special_tokens=lang_tokens, src_lang="eng", tgt_lang="deu"
    )
    return tokenizer, tokenizer.get_vocab(), lang_tokens


def _pin_heads(model: Any, vocab: dict[str, int], lang_tokens: list[str], controls: list[int], device: str) -> None:
    """Steer the random heads (under no_grad): the unit head never emits the control ids `controls` (pin
    channel 0 of the t2u decoder's last layer norm to 1 and give those rows a -1e4 weight on it, or some seeds hand
    the vocoder a negative unit id, or it stops at once); large language-token embeddings in the text decoder make
    each language decode to its own text; the text head is kept off pad/unk/bos and the language tokens with the
    same pinned channel (the text would decode to nothing otherwise) and off ids past the tokenizer."""
    import torch

    norm = model.t2u_model.model.decoder.layer_norm
    norm.weight[0], norm.bias[0] = 0.0, 1.0
    head = model.t2u_model.lm_head.weight
    head[:, 0] = 0.0
    head[controls, 0] = -1e4
    lang_ids = [vocab[token] for token in lang_tokens]
    hidden = model.config.hidden_size
    model.text_decoder.embed_tokens.weight[lang_ids] = torch.randn(len(lang_ids), hidden, device=device)
    norm = model.text_decoder.layer_norm
    norm.weight[0], norm.bias[0] = 0.0, 1.0
    model.lm_head.weight[:, 0] = 0.0
    model.lm_head.weight[[0, 1, 2, *lang_ids], 0] = -1e4
    model.lm_head.weight[len(vocab) :, 0] = -1e4


def _tiny_shapes(vocab_size: int, t2u_vocab: int, vocoder_offset: int, speech_langs: int) -> dict[str, Any]:
    """The tiny shapes v1 and v2 configs share: one layer and a couple of heads everywhere, a small vocoder."""
    return dict(
        vocab_size=vocab_size, t2u_vocab_size=t2u_vocab, hidden_size=16,
        encoder_layers=1, decoder_layers=1, encoder_ffn_dim=32, decoder_ffn_dim=32,
        encoder_attention_heads=2, decoder_attention_heads=2,
        speech_encoder_layers=1, speech_encoder_attention_heads=2, speech_encoder_intermediate_size=32,
        t2u_encoder_layers=1, t2u_decoder_layers=1, t2u_encoder_ffn_dim=32, t2u_decoder_ffn_dim=32,
        t2u_encoder_attention_heads=2, t2u_decoder_attention_heads=2,
        max_position_embeddings=256, t2u_max_position_embeddings=512,
        upsample_initial_channel=64, upsample_rates=(5, 4, 4, 2, 2), upsample_kernel_sizes=(11, 8, 8, 4, 4),
        resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),),
        unit_hifi_gan_vocab_size=t2u_vocab - vocoder_offset, unit_embed_dim=16, lang_embed_dim=4, spkr_embed_dim=4,
        vocoder_num_langs=speech_langs, vocoder_num_spkrs=2, vocoder_offset=vocoder_offset,
        variance_predictor_kernel_size=3, max_new_tokens=24, tie_word_embeddings=False,
    )  # fmt: skip


def build_tiny_seamless(
    folder: Path,
    seed: int = 0,
    text_langs: Sequence[str] = TEXT_LANGS,
    speech_langs: Sequence[str] = SPEECH_LANGS,
    size: str = "tiny",
    device: str = "cpu",
) -> Path:
    """Write a random SeamlessM4Tv2 model + tokenizer + feature extractor into `folder`; returns `folder`.

    `size="large"` keeps the tiny tokenizer but gives the model facebook/seamless-m4t-v2-large's shapes (2.3B
    parameters, saved in fp16) so benchmarks time real-sized compute; build it on `device="cuda"` where there is one.
    """
    import torch
    from transformers import (
        GenerationConfig,
        SeamlessM4TFeatureExtractor,
        SeamlessM4TProcessor,
        SeamlessM4Tv2Config,
        SeamlessM4Tv2Model,
    )

    folder.mkdir(parents=True, exist_ok=True)
    work = folder / "_spm"
    tokenizer, vocab, lang_tokens = _tiny_tokenizer(work, text_langs)
    vocab_size = max(vocab.values()) + 1

    chars = sorted({ch for piece in vocab for ch in piece})
    char_to_id = {ch: i + 4 for i, ch in enumerate(chars)}  # 0-3 like the real table: pad/unk/bos/eos
    if size == "large":  # the config defaults are seamless-m4t-v2-large's shapes
        config = SeamlessM4Tv2Config(tie_word_embeddings=False, vocoder_num_langs=max(36, len(speech_langs)))
        t2u_vocab, vocoder_offset = config.t2u_vocab_size, config.vocoder_offset
    else:
        t2u_vocab, vocoder_offset = 40, 4
        config = SeamlessM4Tv2Config(
            **_tiny_shapes(vocab_size, t2u_vocab, vocoder_offset, len(speech_langs)),
            char_vocab_size=len(chars) + 4,
            t2u_variance_predictor_embed_dim=16, t2u_variance_predictor_hidden_dim=16,
            left_max_position_embeddings=16, right_max_position_embeddings=4,
        )  # fmt: skip
    torch.manual_seed(seed)
    with torch.device(device):
        model = SeamlessM4Tv2Model(config).eval()
    with torch.no_grad():
        _pin_heads(model, vocab, lang_tokens, [0, 2, 3], device)  # bos/eos/unk

    # A fresh GenerationConfig: one derived from the model config silently drops these tables on reload.
    generation = GenerationConfig(
        decoder_start_token_id=3, bos_token_id=2, eos_token_id=3, pad_token_id=0,
        max_new_tokens=256 if size == "large" else 24,
        text_decoder_lang_to_code_id={code: vocab[f"__{code}__"] for code in text_langs},
        t2u_lang_code_to_id={code: i for i, code in enumerate(speech_langs)},
        vocoder_lang_code_to_id={code: i for i, code in enumerate(speech_langs)},
        id_to_text={str(i): piece for piece, i in vocab.items()},
        char_to_id=char_to_id,
    )  # fmt: skip
    model.generation_config = generation
    if size == "large":
        model = model.half()  # half the disk and the load time; the engine picks its own dtype anyway
    model.save_pretrained(folder)
    generation.save_pretrained(folder)
    processor = SeamlessM4TProcessor(feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=tokenizer)
    processor.save_pretrained(folder)
    shutil.rmtree(work)
    return folder


def build_tiny_seamless_v1(
    folder: Path,
    seed: int = 0,
    text_langs: Sequence[str] = TEXT_LANGS,
    speech_langs: Sequence[str] = SPEECH_LANGS,
    size: str = "tiny",
) -> Path:
    """Write a random SeamlessM4T v1 model (the `SeamlessM4TModel` class: an autoregressive text-to-unit decoder and a
    vocoder with a duration predictor) + tokenizer + feature extractor into `folder`; returns `folder`."""
    model, processor = make_tiny_seamless_v1(folder / "_spm", seed, text_langs, speech_langs, size)
    model.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    processor.save_pretrained(folder)
    shutil.rmtree(folder / "_spm")
    return folder


def make_tiny_seamless_v1(
    work: Path,
    seed: int = 0,
    text_langs: Sequence[str] = TEXT_LANGS,
    speech_langs: Sequence[str] = SPEECH_LANGS,
    size: str = "tiny",
) -> tuple[Any, Any]:
    """The random v1 model and its processor, in memory (`work` holds the tokenizer's training files).

    `size="medium"` gives the model facebook/hf-seamless-m4t-medium's text shapes (hidden 1024, 12+12 layers, FFN 4096;
    speech encoder 12 layers, unit model 4+4) with the tiny tokenizer, so benchmarks time real-sized compute.
    """
    import torch
    from transformers import (
        GenerationConfig,
        SeamlessM4TConfig,
        SeamlessM4TFeatureExtractor,
        SeamlessM4TModel,
        SeamlessM4TProcessor,
    )

    tokenizer, vocab, lang_tokens = _tiny_tokenizer(work, text_langs)
    vocab_size = max(vocab.values()) + 1
    t2u_vocab, vocoder_offset = 40, 4
    if size == "medium":
        config = SeamlessM4TConfig(
            encoder_layers=12, decoder_layers=12, encoder_ffn_dim=4096, decoder_ffn_dim=4096,
            speech_encoder_layers=12, t2u_encoder_layers=4, t2u_decoder_layers=4,
            vocoder_num_langs=max(36, len(speech_langs)), max_new_tokens=256, tie_word_embeddings=False,
        )  # fmt: skip
        t2u_vocab, vocoder_offset = config.t2u_vocab_size, config.vocoder_offset
    else:
        config = SeamlessM4TConfig(
            **_tiny_shapes(vocab_size, t2u_vocab, vocoder_offset, len(speech_langs)), t2u_max_new_tokens=32
        )
    torch.manual_seed(seed)
    model = SeamlessM4TModel(config).eval()
    with torch.no_grad():
        # As v2, and the unit decoder also never emits pad (1): it speaks until its cap instead of stopping at once.
        _pin_heads(model, vocab, lang_tokens, [0, 1, 2, 3], "cpu")

    generation = GenerationConfig(
        decoder_start_token_id=3, bos_token_id=2, eos_token_id=3, pad_token_id=0,
        max_new_tokens=256 if size == "medium" else 24,
        text_decoder_lang_to_code_id={code: vocab[f"__{code}__"] for code in text_langs},
        t2u_lang_code_to_id={code: t2u_vocab - len(speech_langs) + i for i, code in enumerate(speech_langs)},
        vocoder_lang_code_to_id={code: i for i, code in enumerate(speech_langs)},
    )  # fmt: skip
    model.generation_config = generation
    return model, SeamlessM4TProcessor(feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=tokenizer)


if __name__ == "__main__":
    import sys
    import tempfile

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "tiny-seamless"
    print(build_tiny_seamless(out))
