"""Voice embedders: one utterance in, one L2-normalised vector out.

Two backends: the GE2E encoder shipped inside `resemblyzer` (the offline default, 256 dims) and a
pyannote.audio embedding model (`pyannote/wespeaker-voxceleb-resnet34-LM`, `pyannote/embedding`) for users
who have its gated weights. Both run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from babelfish import model_store
from babelfish.config import Settings

log = logging.getLogger(__name__)
SAMPLE_RATE = 16_000
RESEMBLYZER = "resemblyzer-ge2e"
RESEMBLYZER_DIM = 256
# Embedding sizes of the pyannote models we know, so an import can be checked without loading a model.
PYANNOTE_DIMS = {"pyannote/wespeaker-voxceleb-resnet34-LM": 256, "pyannote/embedding": 512}
PYANNOTE_CHECKPOINT = "pytorch_model.bin"


class Embedder(Protocol):
    name: str  # what made the vectors: vectors of different embedders are never compared
    dim: int

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """16 kHz mono float32 → unit vector of `dim` float32."""
        ...


def normalise(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("embedding is zero or not finite")
    return v / norm


class ResemblyzerEmbedder:
    """GE2E d-vector (Resemblyzer's `pretrained.pt`, shipped in the wheel)."""

    name = RESEMBLYZER
    dim = RESEMBLYZER_DIM

    def __init__(self) -> None:
        from resemblyzer import VoiceEncoder

        self._encoder = VoiceEncoder("cpu", verbose=False)
        self.embed(_warmup_audio())  # the first call loads librosa's kernels: pay that at start-up, not mid-talk

    def embed(self, audio: np.ndarray) -> np.ndarray:
        wav = np.asarray(audio, dtype=np.float32)
        if not wav.size or float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) < 1e-4:
            raise ValueError("too quiet to embed")
        # Our VAD already cut the speech, so resemblyzer's own silence trimming (webrtcvad) is skipped; only its
        # volume normalisation is applied, as preprocess_wav would.
        from resemblyzer.audio import normalize_volume

        wav = normalize_volume(wav, -30, increase_only=True)
        return normalise(self._encoder.embed_utterance(wav))


class PyannoteEmbedder:
    """A pyannote.audio embedding model, loaded through `Model.from_pretrained` (a hub id or a local folder)."""

    def __init__(self, model: str, label: str, token: str | None = None) -> None:
        os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")  # pyannote sends telemetry unless told not to
        with warnings.catch_warnings():
            # torchcodec (file decoding) does not load beside CPU torch 2.13; we only pass in-memory waveforms.
            warnings.filterwarnings("ignore", message="(?s).*torchcodec")
            from pyannote.audio import Inference, Model

        loaded = Model.from_pretrained(model, token=token)
        if loaded is None:
            raise RuntimeError(f"pyannote could not load {model!r} (gated: accept its terms and set HF_TOKEN)")
        loaded.eval()
        self._inference = Inference(loaded, window="whole", device=_torch_device("cpu"))
        self.name = f"pyannote:{label}"
        self.dim = int(np.asarray(self._embed_raw(_warmup_audio())).size)

    def _embed_raw(self, audio: np.ndarray) -> Any:
        import torch

        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
        with torch.inference_mode():
            return self._inference({"waveform": waveform, "sample_rate": SAMPLE_RATE})

    def embed(self, audio: np.ndarray) -> np.ndarray:
        return normalise(np.asarray(self._embed_raw(audio)))


def _warmup_audio() -> np.ndarray:
    return (np.random.default_rng(0).standard_normal(SAMPLE_RATE) * 0.05).astype(np.float32)


def _torch_device(name: str) -> Any:
    import torch

    return torch.device(name)


def _model_label(model: str) -> str:
    """A stable name for a model: the hub id, or the folder's name for a local path."""
    path = Path(model).expanduser()
    return path.name if path.exists() else model


def pyannote_weights(settings: Settings) -> Path | None:
    """The local pyannote checkpoint for `speaker_model`, if any: a folder or file, one fetched into the data dir
    (`python -m babelfish fetch-models pyannote`), or a copy in the HF cache."""
    candidate = Path(settings.speaker_model).expanduser()
    if candidate.is_file():
        return candidate
    fetched = model_store.find(settings.data_dir, "speaker", settings.speaker_model)
    for folder in (candidate, fetched.folder if fetched else None):
        if folder is not None and (folder / PYANNOTE_CHECKPOINT).is_file():
            return folder / PYANNOTE_CHECKPOINT
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(settings.speaker_model, PYANNOTE_CHECKPOINT)
    except (ImportError, ValueError):
        return None
    return Path(found) if isinstance(found, str) else None


def choose(settings: Settings) -> tuple[str, str]:
    """The embedder backend to run ("pyannote", "resemblyzer" or "off") and why."""
    if settings.speaker_embedder != "auto":
        return settings.speaker_embedder, f"selected with --speaker-embedder {settings.speaker_embedder}"
    weights = pyannote_weights(settings)
    if weights is None:
        return "resemblyzer", f"auto: no local pyannote weights for {settings.speaker_model!r}, using resemblyzer"
    return "pyannote", f"auto: pyannote weights found at {weights}"


def expected(settings: Settings) -> tuple[str, int] | None:
    """Name and size of the vectors the configured embedder makes, without loading it (None: recognition off)."""
    backend, _ = choose(settings)
    if backend == "off":
        return None
    if backend == "resemblyzer":
        return RESEMBLYZER, RESEMBLYZER_DIM
    label = _model_label(settings.speaker_model)
    return f"pyannote:{label}", PYANNOTE_DIMS.get(label, PYANNOTE_DIMS.get(settings.speaker_model, 0))


def load_embedder(settings: Settings) -> Embedder | None:
    """Load the configured embedder (seconds: call it from a worker thread); None when recognition is off."""
    backend, reason = choose(settings)
    log.info("speaker embedder: %s (%s)", backend, reason)
    if backend == "off":
        return None
    if backend == "pyannote":
        weights = pyannote_weights(settings)
        source = str(weights.parent if weights is not None and weights.name == PYANNOTE_CHECKPOINT else weights)
        label = _model_label(settings.speaker_model)
        return PyannoteEmbedder(source if weights is not None else settings.speaker_model, label)
    return ResemblyzerEmbedder()
