"""Test audio in one place: the LibriVox clips and their transcripts, WAV reading and writing, silence, noise,
frames."""

from __future__ import annotations

import re
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from babelfish.segmenter import Segment, SpeechDetector

# Real human English speech, 16 kHz mono (Debian's pocketsphinx-testdata, installed by scripts/setup.sh --test).
TESTDATA = Path("/usr/share/pocketsphinx/test/data")
LIBRIVOX = TESTDATA / "librivox"
SPEECH_CLIP = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0880.wav"  # about 3 s
# Real recordings of sounds people make that are not words (coughs, sneezes, laughs, screams; Scratch 1.4's sound
# library, CC-BY-SA-3.0), unpacked from Debian's `scratch` package by scripts/setup.sh --test.
HUMAN_SOUNDS = Path("/usr/local/share/babelfish-test/sounds/Human")


def read_wav(path: Path) -> np.ndarray:
    """16 kHz mono float32 from a PCM16 WAV (channels averaged, resampled with soxr when needed)."""
    with wave.open(str(path)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        assert w.getsampwidth() == 2, f"{path}: not 16-bit PCM"
        audio = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
    if channels > 1:
        audio = audio.reshape(-1, channels).mean(axis=1)
    if rate != 16000:
        import soxr

        audio = soxr.resample(audio, rate, 16000).astype(np.float32)
    return audio


def read_raw(path: Path) -> np.ndarray:
    """float32 from a headerless 16 kHz mono PCM16 file (pocketsphinx-testdata's `.raw` recordings)."""
    return np.frombuffer(path.read_bytes(), "<i2").astype(np.float32) / 32768


def read_sound(path: Path) -> np.ndarray:
    """16 kHz mono float32 from any audio file (WAV or MP3, any rate), through faster-whisper's decoder (PyAV)."""
    from faster_whisper import decode_audio

    return np.asarray(decode_audio(str(path), sampling_rate=16000), np.float32)


def at_peak(audio: np.ndarray, peak: float) -> np.ndarray:
    """`audio` scaled so that its loudest sample is `peak` (silence stays silence)."""
    return (audio / max(float(np.abs(audio).max(initial=0.0)), 1e-6) * peak).astype(np.float32)


def pcm16(audio: np.ndarray) -> bytes:
    """Float samples as the PCM16 LE bytes a client sends."""
    return (np.clip(audio, -1, 1 - 1 / 32768) * 32768).astype("<i2").tobytes()


def write_wav(path: Path, audio: np.ndarray, rate: int = 16000) -> None:
    """Float samples as a mono PCM16 WAV (what a client would send, for the reference client or Chromium's fake
    microphone)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16(audio))


def transcripts(path: Path) -> dict[str, str]:
    """Clip name → transcript, from a pocketsphinx-testdata transcription file (`<s> text </s> (name)` lines)."""
    refs = {}
    for line in path.read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
        if m:
            refs[m.group(2).strip()] = m.group(1).strip()
    return refs


def librivox_transcripts() -> dict[str, str]:
    """Clip name → reference transcript, from the LibriVox set's `transcription` file."""
    return transcripts(LIBRIVOX / "transcription")


def librivox_clips() -> list[tuple[str, np.ndarray, str]]:
    """(name, audio, reference transcript) for each LibriVox clip."""
    refs = librivox_transcripts()
    return [(p.stem, read_wav(p), refs[p.stem]) for p in sorted(LIBRIVOX.glob("*.wav")) if p.stem in refs]


def human_short_clips() -> list[tuple[str, np.ndarray, str]]:
    """(name, audio, what was said) for pocketsphinx-testdata's short human recordings, 1.1-3.5 s each: one AN4
    speaker's five playing cards ("ten of clubs"; their `cards.transcription`), and two other speakers' commands, whose
    words the package gives by their grammar (goforward.gram) and by TIDIGITS' file naming (2934z: "z" is zero).
    `numbers.raw` and `something.raw` are left out: the package states no transcript for them."""
    cards = TESTDATA / "cards"
    out = [(f"card{name}", read_wav(cards / f"{name}.wav"), said)
           for name, said in transcripts(cards / "cards.transcription").items()]  # fmt: skip
    out.append(("goforward", read_raw(TESTDATA / "goforward.raw"), "go forward ten meters"))
    out.append(("digits", read_raw(TESTDATA / "tidigits" / "dhd.2934z.raw"), "two nine three four zero"))
    return out


def silence(seconds: float, rate: int = 16000) -> bytes:
    return bytes(2 * int(seconds * rate))


def white_noise(seconds: float, level: float = 0.1, rate: int = 16000, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * rate)) * level * 32767).clip(-32768, 32767).astype("<i2").tobytes()


def segments(audio: np.ndarray, detector: SpeechDetector | None = None) -> list[Segment]:
    """`audio` streamed as a client sends it (20 ms frames, then 1 s of silence) and cut by the server's segmenter
    with the default settings (Silero unless `detector` is given)."""
    from babelfish.config import Settings
    from babelfish.segmenter import Segmenter, SegmenterConfig, silero_detector

    seg = Segmenter(detector or silero_detector(), SegmenterConfig.from_settings(Settings()))
    # 32767, not pcm16's 32768: the scale every figure measured with this helper was taken at.
    pcm = (np.clip(np.concatenate([audio, np.zeros(16000, np.float32)]), -1, 1) * 32767).astype("<i2").tobytes()
    out: list[Segment] = []
    for i, off in enumerate(range(0, len(pcm), 640)):
        out += seg.feed(pcm[off : off + 640], now=i * 0.02)
    return out


def frames(pcm: bytes, ms: int = 20, rate: int = 16000) -> Iterator[bytes]:
    step = rate * ms // 1000 * 2
    for i in range(0, len(pcm), step):
        yield pcm[i : i + step]
