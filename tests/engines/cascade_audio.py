"""Cascade engine test and benchmark material: espeak-ng speech and word error counts (LibriVox: tests/audio.py)."""

from __future__ import annotations

import subprocess
import unicodedata
from pathlib import Path

import numpy as np
from rapidfuzz.distance import Levenshtein

from tests.audio import read_wav

# Sentences per language for synthetic speech; espeak's formant voice is hard for Whisper base, so these are plain.
ESPEAK_SENTENCES = {
    "de": ["Ich habe gestern einen langen Spaziergang im Park gemacht.", "Guten Morgen, wie geht es dir heute?"],
    "es": ["Buenos días, quiero hablar hoy sobre el tiempo en Madrid.", "Mi hermano trabaja en un hospital."],
    "fr": ["Bonjour, je voudrais parler aujourd'hui du temps à Paris.", "Nous allons au cinéma ce soir."],
    "pt": ["Bom dia, eu gostaria de falar hoje sobre o tempo em Lisboa.", "O meu irmão trabalha num hospital."],
    "it": ["Buongiorno, oggi vorrei parlare del tempo a Roma.", "Mio fratello lavora in un ospedale."],
}


def espeak_clip(text: str, language: str, folder: Path) -> np.ndarray:
    out = folder / f"espeak-{language}-{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-v", language, "-w", str(out), text], check=True, capture_output=True)
    return read_wav(out)


_NUMBERS = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


def normalize(text: str) -> list[str]:
    """Lower-case words, punctuation gone; letters, marks and digits of every script kept ("weiß", "días", "à", Hindi's
    vowel signs stay in their words: an ASCII-only rule split "días" in two and dropped "à"), ’ read as '."""
    text = unicodedata.normalize("NFC", text.lower()).replace("-", " ").replace("\u2019", "'")
    words = "".join(ch if ch == "'" or unicodedata.category(ch)[0] in "LMN" else " " for ch in text).split()
    return [_NUMBERS.get(w, w) for w in words]


def word_errors(hyp: str, ref: str) -> tuple[int, int]:
    """(edit distance in words, reference length) after normalisation."""
    h, r = normalize(hyp), normalize(ref)
    return Levenshtein.distance(h, r), len(r)
