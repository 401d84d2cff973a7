"""The pyannote backend, through the same `Model.from_pretrained` path production uses, with random weights.

The real models (`pyannote/wespeaker-voxceleb-resnet34-LM`, `pyannote/embedding`) are gated on the hub; here each
architecture is built with random weights, saved as the checkpoint file a hub snapshot holds, and loaded from that
folder by `load_embedder` with `speaker_embedder=auto` (which must pick pyannote because weights are present).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from babelfish.config import Settings
from babelfish.speakers.embedder import PYANNOTE_CHECKPOINT, choose, expected, load_embedder
from tests.voices import voices


def save_random_model(architecture: str, folder: Path) -> Path:
    import lightning
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="(?s).*torchcodec")
        from pyannote.audio.core.task import Problem, Resolution, Specifications
        from pyannote.audio.models import embedding

    torch.manual_seed(0)
    model = getattr(embedding, architecture)()
    model.specifications = Specifications(problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=3.0)
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)  # adds what pyannote's loader checks: version, architecture, specifications
    folder.mkdir(parents=True)
    torch.save(checkpoint, folder / PYANNOTE_CHECKPOINT)
    return folder


@pytest.mark.parametrize(("architecture", "dim"), [("WeSpeakerResNet34", 256), ("XVectorSincNet", 512)])
def test_pyannote_model_from_a_local_folder(architecture: str, dim: int, tmp_path: Path) -> None:
    folder = save_random_model(architecture, tmp_path / f"tiny-{architecture}")
    settings = Settings(data_dir=tmp_path, speaker_embedder="auto", speaker_model=str(folder))
    assert choose(settings)[0] == "pyannote"
    embedder = load_embedder(settings)
    assert embedder is not None and embedder.name == f"pyannote:{folder.name}" and embedder.dim == dim
    clip = voices()["librivox"][1]
    a, b = embedder.embed(clip), embedder.embed(clip[: len(clip) // 2])
    assert a.shape == (dim,) and a.dtype == np.float32
    assert abs(float(np.linalg.norm(a)) - 1) < 1e-5 and np.all(np.isfinite(b))
    assert expected(settings) == (embedder.name, 0)  # an unknown folder: size learnt from the model itself


def test_auto_without_pyannote_weights_uses_resemblyzer(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, speaker_embedder="auto", speaker_model=str(tmp_path / "nothing-here"))
    assert choose(settings)[0] == "resemblyzer"
    assert choose(Settings(data_dir=tmp_path, speaker_embedder="off"))[0] == "off"
