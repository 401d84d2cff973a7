"""The seamless engine on a SeamlessM4T v1 model (the class facebook/hf-seamless-m4t-medium loads as), built tiny and
random here, saved, and loaded through the same `SeamlessEngine.load` / `from_pretrained` path production uses.

v1 shares v2's speech encoder and text decoder, so the encoder-once, batched text decode applies unchanged; its unit
model is autoregressive, run here once for all targets. The reference for every check is transformers' own
`SeamlessM4TModel.generate` for one target language.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from babelfish.config import Settings
from babelfish.engines.base import SpeechResult, TextResult, Transcript, Utterance
from babelfish.engines.factory import choose, load_engine
from babelfish.engines.seamless import SeamlessEngine
from babelfish.model_store import write_marker
from tests.engines.tiny_seamless import build_tiny_seamless_v1

TARGETS = ["de", "pt", "es", "fr"]  # fr: text only in the tiny model


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_seamless_v1(tmp_path_factory.mktemp("seamless-v1") / "tiny-seamless-m4t-medium")


@pytest.fixture(scope="module")
def engine(tiny_folder: Path):
    import torch

    # float32, so the comparisons with transformers' own generate are exact on any CPU
    engine = SeamlessEngine.load(Settings(seamless_model=str(tiny_folder), threads=2), "test", dtype=torch.float32)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def audio(speech_pcm: bytes) -> np.ndarray:
    return (np.frombuffer(speech_pcm, dtype="<i2")[:32000] / 32768).astype(np.float32)


def reference(tiny_folder: Path, audio: np.ndarray, code: str) -> tuple[str, np.ndarray]:
    """transformers' own v1 speech-to-speech generate for one target: (text, int16 PCM)."""
    import torch
    from transformers import AutoProcessor, SeamlessM4TModel

    model = SeamlessM4TModel.from_pretrained(str(tiny_folder), dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(str(tiny_folder))
    inputs = processor(audio=audio, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, tgt_lang=code, num_beams=1, do_sample=False, speech_do_sample=False,
                             return_intermediate_token_ids=True)  # fmt: skip
    n = int(out.waveform_lengths.reshape(-1)[0])
    pcm = np.round(out.waveform[0, :n].clamp(-1, 1).numpy() * 32767).astype(np.int16)
    return processor.decode(out.sequences[0], skip_special_tokens=True).strip(), pcm


def test_v1_loads_and_says_so(engine: SeamlessEngine):
    assert engine.version == 1 and engine.can_speak
    assert engine.info.details["version"] == "SeamlessM4T v1"
    rows = {row.code: row for row in engine.languages()}
    assert rows["de"].speech_out and rows["fr"].text_out and not rows["fr"].speech_out


def test_v1_speech_matches_transformers_own_generate(engine: SeamlessEngine, tiny_folder: Path, audio):
    transcript = Transcript("ignored", "en")
    for lang, code in (("de", "deu"), ("pt", "por")):
        text, pcm = reference(tiny_folder, audio, code)
        results = list(engine.render(Utterance(audio, "en"), transcript, [lang]))
        (text_result,) = [r for r in results if isinstance(r, TextResult)]
        (speech,) = [r for r in results if isinstance(r, SpeechResult)]
        assert text_result.text == text and text
        assert np.array_equal(np.frombuffer(speech.pcm, dtype="<i2"), pcm) and len(pcm) > 1600


def test_v1_encoder_once_and_all_targets_in_one_batch(engine: SeamlessEngine, audio):
    encoder_calls, unit_batches = [], []
    hooks = [
        engine.model.speech_encoder.register_forward_hook(lambda *_: encoder_calls.append(1)),
        engine.model.t2u_model.model.encoder.register_forward_hook(
            lambda _m, _a, out: unit_batches.append(out[0].shape[0])
        ),
    ]
    try:
        utt = Utterance(audio, "en")
        transcript = engine.transcribe(utt)
        assert transcript is not None and transcript.language == "en"
        results = list(engine.render(utt, transcript, TARGETS))
    finally:
        for hook in hooks:
            hook.remove()
    texts = [r for r in results if isinstance(r, TextResult)]
    speech = [r for r in results if isinstance(r, SpeechResult)]
    assert [t.language for t in texts] == TARGETS and all(t.text for t in texts)
    assert len({t.text for t in texts}) > 1  # the target language steers the decoder
    assert [s.language for s in speech] == ["de", "pt", "es"]
    assert encoder_calls == [1]  # the speech encoder ran once for the transcript and all four targets
    assert unit_batches == [3]  # one unit-model batch for the three spoken targets


def test_v1_batched_speech_matches_each_target_alone(engine: SeamlessEngine, audio):
    transcript = Transcript("ignored", "en")
    results = list(engine.render(Utterance(audio, "en"), transcript, TARGETS))
    batched = {r.language: r.pcm for r in results if isinstance(r, SpeechResult)}
    assert set(batched) == {"de", "pt", "es"}
    (alone,) = [r for r in engine.render(Utterance(audio, "en"), transcript, ["de"]) if isinstance(r, SpeechResult)]
    a = np.frombuffer(alone.pcm, dtype="<i2").astype(np.int32)
    b = np.frombuffer(batched["de"], dtype="<i2").astype(np.int32)
    # The same units; the batched vocoder's padding may move a sample by a rounding step.
    assert len(a) == len(b) and np.abs(a - b).max() <= 64


def test_fetched_v1_is_picked_by_auto_and_loads(tiny_folder: Path, tmp_path: Path):
    """`fetch-models seamless-medium` leaves a v1 folder in data_dir/models: the next start runs it, no flags."""
    import shutil

    folder = tmp_path / "models" / "seamless-m4t-medium"
    shutil.copytree(tiny_folder, folder)
    write_marker(folder, "seamless", "seamless-medium", "facebook/hf-seamless-m4t-medium", "0" * 40, 20, "CC-BY-NC")
    settings = Settings(data_dir=tmp_path, threads=2)
    name, reason = choose(settings)
    assert name == "seamless" and str(folder) in reason
    engine = load_engine(settings)
    try:
        assert isinstance(engine, SeamlessEngine) and engine.version == 1
    finally:
        engine.close()
