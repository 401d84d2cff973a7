"""The seamless engine, run end to end on a tiny random SeamlessM4Tv2 built here (real weights cannot be downloaded).

The tiny model is saved to a folder and loaded through the same `SeamlessEngine.load(settings)` path production uses.
Random weights give random text and noise, but every stage really runs: feature extraction, the speech encoder, the
batched text decode, the text-to-unit model and the vocoder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from babelfish.config import Settings
from babelfish.engines.base import SpeechResult, TextResult, Transcript, Utterance
from babelfish.engines.factory import choose, load_engine
from babelfish.engines.seamless import LanguageMap, SeamlessEngine, cpu_has_bf16, pick_dtype
from tests.engines.tiny_seamless import build_tiny_seamless

TARGETS = ["de", "pt", "es", "fr"]  # fr: text only in the tiny model


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_seamless(tmp_path_factory.mktemp("seamless") / "tiny-seamless-m4t-v2")


@pytest.fixture(scope="module")
def engine(tiny_folder: Path):
    engine = SeamlessEngine.load(Settings(seamless_model=str(tiny_folder), threads=2, device="cpu"), reason="test")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def audio(speech_pcm: bytes) -> np.ndarray:
    """2 s of real English speech, float32 at 16 kHz."""
    return (np.frombuffer(speech_pcm, dtype="<i2")[:32000] / 32768).astype(np.float32)


class EncoderCalls:
    """Counts calls of the real speech encoder with a forward hook."""

    def __init__(self, engine: SeamlessEngine) -> None:
        self.count = 0
        self._handle = engine.model.speech_encoder.register_forward_hook(self._hook)

    def _hook(self, *_args: object) -> None:
        self.count += 1

    def close(self) -> None:
        self._handle.remove()


def test_import_is_cheap():
    code = "import sys, babelfish.engines.seamless as s; assert not {'torch', 'transformers'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_load_reports_what_runs(engine: SeamlessEngine, tiny_folder: Path):
    import torch

    assert engine.info.name == "seamless" and engine.info.reason == "test"
    details = engine.info.details
    assert details["weights"] == str(tiny_folder)
    assert details["device"] == "cpu"
    assert details["dtype"] == str(pick_dtype("cpu")).removeprefix("torch.")
    assert next(engine.model.parameters()).dtype == engine.dtype
    assert torch.get_num_threads() == 2


def test_dtype_choice():
    import torch

    assert pick_dtype("cuda") == torch.float16
    assert pick_dtype("cpu") == (torch.bfloat16 if cpu_has_bf16() else torch.float32)


def test_languages_come_from_the_model_tables(engine: SeamlessEngine):
    rows = {r.code: r for r in engine.languages()}
    assert set(rows) == {"en", "de", "pt", "es", "fr"}
    assert all(r.speech_in and r.text_out for r in rows.values())
    assert {c for c, r in rows.items() if r.speech_out} == {"en", "de", "pt", "es"}
    assert rows["fr"].via == {"asr": "seamless", "mt": "seamless"}
    assert engine.map.to_canonical["deu"] == "de" and engine.map.to_canonical["por"] == "pt"
    assert engine.map.seamless("pt-BR") == "por" and engine.map.seamless("por") == "por"
    assert engine.map.seamless("de") == "deu" and engine.map.seamless("ja") is None


def test_language_map_prefers_macrolanguages_and_plain_codes():
    m = LanguageMap(["cmn_Hant", "cmn", "arb", "ary", "yue", "pes", "swh", "zsm", "deu"])
    assert m.to_seamless["zh"] == "cmn"  # not the Traditional-script variant
    assert m.to_canonical["cmn_Hant"] == "zh"
    assert (m.to_seamless["ar"], m.to_seamless["ary"], m.to_seamless["yue"]) == ("arb", "ary", "yue")
    assert (m.to_seamless["fa"], m.to_seamless["sw"], m.to_seamless["ms"]) == ("pes", "swh", "zsm")
    assert m.seamless("zh-TW") == "cmn" and m.seamless("cmn") == "cmn" and m.seamless("de-AT") == "deu"


def test_transcribe_decodes_like_transformers_own_generate(engine: SeamlessEngine, tiny_folder: Path, audio):
    import torch
    from transformers import AutoProcessor, SeamlessM4Tv2Model

    transcript = engine.transcribe(Utterance(audio, "en"))
    assert isinstance(transcript, Transcript) and transcript.language == "en"
    assert isinstance(transcript.text, str) and transcript.text

    # The reference: transformers' own S2TT generate on a separately loaded copy (it re-encodes, we do not).
    reference = SeamlessM4Tv2Model.from_pretrained(str(tiny_folder), dtype=engine.dtype).eval()
    processor = AutoProcessor.from_pretrained(str(tiny_folder))
    inputs = processor(audio=audio, sampling_rate=16000, return_tensors="pt")
    inputs["input_features"] = inputs["input_features"].to(engine.dtype)
    with torch.inference_mode():
        out = reference.generate(**inputs, tgt_lang="eng", generate_speech=False, num_beams=1, do_sample=False)
    expected = processor.decode(out.sequences[0], skip_special_tokens=True).strip()
    assert transcript.text == expected


def test_render_gives_all_texts_then_speech(engine: SeamlessEngine, audio):
    utt = Utterance(audio, "en")
    transcript = engine.transcribe(utt)
    assert transcript is not None
    results = list(engine.render(utt, transcript, TARGETS))
    texts = [r for r in results if isinstance(r, TextResult)]
    speech = [r for r in results if isinstance(r, SpeechResult)]
    assert results[: len(texts)] == texts  # every text before any speech
    assert [t.language for t in texts] == TARGETS
    assert all(isinstance(t.text, str) and t.text and t.via == "seamless" for t in texts)
    assert [s.language for s in speech] == ["de", "pt", "es"]  # fr has no speech output in this model
    for s in speech:
        assert s.sample_rate == 16000 and s.pcm and len(s.pcm) % 2 == 0
        pcm = np.frombuffer(s.pcm, dtype="<i2")
        assert len(pcm) > 1600 and np.any(pcm != 0)
    assert not any(isinstance(r, SpeechResult) for r in engine.render(utt, transcript, TARGETS, speech=False))


def test_encoder_runs_once_per_utterance(engine: SeamlessEngine, audio):
    calls = EncoderCalls(engine)
    try:
        utt = Utterance(audio, "en")
        transcript = engine.transcribe(utt)
        assert transcript is not None
        results = list(engine.render(utt, transcript, TARGETS))
        assert sum(isinstance(r, SpeechResult) for r in results) == 3
        assert calls.count == 1
        other = Utterance(audio.copy(), None, candidates=("de", "pt"))  # equal audio, another utterance
        transcript = engine.transcribe(other)
        assert transcript is not None
        list(engine.render(other, transcript, ["en", "es"]))
        assert calls.count == 2
    finally:
        calls.close()


def test_speech_asked_for_after_the_texts_reuses_the_encoder(engine: SeamlessEngine, audio):
    """As the server asks (text first): render's texts, then their speech apart, from one encoder pass."""
    calls = EncoderCalls(engine)
    try:
        utt = Utterance(audio, "en")
        transcript = engine.transcribe(utt)
        assert transcript is not None
        texts = [r for r in engine.render(utt, transcript, TARGETS, speech=False) if isinstance(r, TextResult)]
        speech = list(engine.speak(utt, texts))
        assert [s.language for s in speech] == ["de", "pt", "es"]  # fr has no speech output in this model
        assert all(s.pcm and len(s.pcm) % 2 == 0 for s in speech)
        assert calls.count == 1
    finally:
        calls.close()


def test_transcribe_decodes_the_room_languages_in_the_same_batch(engine: SeamlessEngine, audio):
    decoder_calls = []
    handle = engine.model.text_decoder.register_forward_hook(lambda *_: decoder_calls.append(1))
    try:
        utt = Utterance(audio, "en", candidates=("de", "en", "pt"))  # the pipeline passes the room's languages
        transcript = engine.transcribe(utt)
        assert transcript is not None and decoder_calls
        decoder_calls.clear()
        texts = list(engine.render(utt, transcript, ["de", "pt"], speech=False))
        assert [r.language for r in texts] == ["de", "pt"] and all(r.text for r in texts)
        assert not decoder_calls  # the translations were ready: render decoded nothing
    finally:
        handle.remove()


def test_batched_decode_matches_each_target_alone(engine: SeamlessEngine, audio):
    transcript = Transcript("ignored", "en")
    batched = {r.language: r.text for r in engine.render(Utterance(audio, "en"), transcript, TARGETS, speech=False)}
    alone = {}
    for tgt in TARGETS:
        (result,) = engine.render(Utterance(audio, "en"), transcript, [tgt], speech=False)
        alone[tgt] = result.text
    assert batched == alone
    assert len(set(batched.values())) > 1  # the target language really steers the decoder


def test_unsupported_targets_get_a_notice(engine: SeamlessEngine, audio):
    utt = Utterance(audio, "en")
    results = list(engine.render(utt, Transcript("x", "en"), ["la", "de", "ja"]))
    texts = {r.language: r for r in results if isinstance(r, TextResult)}
    assert texts["de"].text
    for lang, name in (("la", "Latin"), ("ja", "Japanese")):
        assert texts[lang].text is None and name in (texts[lang].notice or "")
    assert [r.language for r in results if isinstance(r, SpeechResult)] == ["de"]


def test_language_from_candidates_or_english(engine: SeamlessEngine, audio):
    guessed = engine.transcribe(Utterance(audio, None, candidates=("la", "de", "pt")))
    assert guessed is not None and guessed.language in {"de", "pt"}
    fallback = engine.transcribe(Utterance(audio, None))
    assert fallback is not None and fallback.language == "en"
    assert engine.transcribe(Utterance(audio[:800], "en")) is None  # 50 ms: nothing to transcribe


def test_auto_engine_picks_seamless_for_local_weights(tiny_folder: Path):
    settings = Settings(seamless_model=str(tiny_folder), threads=2)
    name, reason = choose(settings)
    assert name == "seamless" and str(tiny_folder) in reason
    engine = load_engine(settings)
    try:
        assert isinstance(engine, SeamlessEngine) and engine.info.name == "seamless"
    finally:
        engine.close()


def test_a_model_that_is_not_seamless_is_refused(tmp_path: Path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="runs SeamlessM4T"):
        SeamlessEngine.load(Settings(seamless_model=str(tmp_path)))
