"""Conversational test and benchmark audio: short turns in Pico voices, and noises that must give no text.

Pico (SVOX, through py-nanotts) speaks en-US, en-GB, de-DE, es-ES, fr-FR and it-IT far more naturally than espeak-ng,
so Whisper hears it about as well as a person. Noises are generated here, seeded, so every run hears the same.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SR = 16_000

# Short turns people say in a conversation (0.4–1.5 s), with the Pico voice that says them.
SHORT_TURNS: list[tuple[str, str]] = [
    ("Good morning.", "en-US"),
    ("Yes.", "en-US"),
    ("No.", "en-GB"),
    ("Try again.", "en-GB"),
    ("No matter.", "en-US"),
    ("Ever tried.", "en-GB"),
    ("Thank you very much.", "en-GB"),
    ("Wo ist der Bahnhof?", "de-DE"),
    ("Buenos días.", "es-ES"),
    ("Merci beaucoup.", "fr-FR"),
]


def pico(text: str, voice: str = "en-US", speed: float | None = None, pitch: float | None = None) -> np.ndarray:
    """`text` spoken by a Pico voice: 16 kHz float32, the same samples whatever the process did before."""
    from py_nanotts import NanoTTS

    from babelfish.engines.cascade.tts import zeroed_mallocs

    with zeroed_mallocs():
        pcm = NanoTTS().speak(text, voice=voice, speed=speed, pitch=pitch)
    return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768


def _scaled(x: np.ndarray, peak: float) -> np.ndarray:
    return (peak * x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)


def at_snr(noise: np.ndarray, speech_power: float, snr_db: float) -> np.ndarray:
    """`noise` scaled so that its mean power lies `snr_db` under `speech_power` (a mean square)."""
    return noise * np.sqrt(speech_power / np.mean(noise**2) / 10 ** (snr_db / 10))


def white(seconds: float, peak: float, rng: np.random.Generator) -> np.ndarray:
    return _scaled(rng.standard_normal(int(seconds * SR)), peak)


def pink(seconds: float, peak: float, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * SR)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1
    return _scaled(np.fft.irfft(spectrum / np.sqrt(f), n), peak)


def door_slam(seconds: float, peak: float, rng: np.random.Generator) -> np.ndarray:
    """Two thuds: a low-passed noise burst and a 70 Hz body, each dying away in a few hundred ms."""
    x = np.zeros(int(seconds * SR))
    t = np.arange(int(0.4 * SR)) / SR
    for start in (0.3, 0.3 + seconds / 2):
        burst = np.convolve(rng.standard_normal(len(t)) * np.exp(-t / 0.06), np.ones(40) / 40, "same")
        thud = 3 * burst + np.sin(2 * np.pi * 70 * t) * np.exp(-t / 0.12)
        i = int(start * SR)
        x[i : i + len(t)] += thud[: len(x) - i]
    return _scaled(x, peak)


def keyboard(seconds: float, peak: float, rng: np.random.Generator) -> np.ndarray:
    """Typing: 8 ms clicks, 4–12 a second, of varying strength."""
    x = np.zeros(int(seconds * SR))
    click = np.exp(-np.arange(int(0.008 * SR)) / (0.002 * SR))
    t = 0.2
    while t < seconds - 0.05:
        i = int(t * SR)
        x[i : i + len(click)] += rng.standard_normal(len(click)) * click * rng.uniform(0.5, 1)
        t += rng.uniform(0.08, 0.25)
    return _scaled(x, peak)


def sweep(seconds: float, peak: float, rng: np.random.Generator) -> np.ndarray:
    """A sine sweeping 200 Hz → 4 kHz."""
    t = np.arange(int(seconds * SR)) / SR
    return _scaled(np.sin(2 * np.pi * (200 * t + (4000 - 200) * t**2 / (2 * seconds))), peak)


_BABBLE = [
    ("The weather is nice today and we should go outside.", "en-US"),
    ("I think the meeting starts at ten tomorrow.", "en-GB"),
    ("Wir fahren morgen mit dem Zug nach Berlin.", "de-DE"),
    ("El tren sale a las ocho de la mañana.", "es-ES"),
    ("Nous avons mangé au restaurant hier soir.", "fr-FR"),
    ("Il libro è sul tavolo della cucina.", "it-IT"),
    ("My brother lives in a small house near the river.", "en-US"),
    ("Der Kaffee ist heute besonders gut.", "de-DE"),
]


def babble(seconds: float, peak: float, rng: np.random.Generator, talkers: int = 16) -> np.ndarray:
    """A crowd: `talkers` voices (Pico, played backwards so no word can be heard) at once, at random offsets."""
    n = int(seconds * SR)
    x = np.zeros(n)
    for i in range(talkers):
        text, voice = _BABBLE[i % len(_BABBLE)]
        voice_audio = pico(text, voice, speed=rng.uniform(0.8, 1.3), pitch=rng.uniform(0.7, 1.5))[::-1]
        looped = np.tile(voice_audio, 1 + 2 * n // len(voice_audio))
        start = int(rng.integers(0, len(looped) - n))
        x += looped[start : start + n] * rng.uniform(0.5, 1.0)
    return _scaled(x, peak)


NOISES: dict[str, Callable[[float, float, np.random.Generator], np.ndarray]] = {
    "white": white,
    "pink": pink,
    "babble": babble,
    "door_slam": door_slam,
    "keyboard": keyboard,
    "sweep": sweep,
}
