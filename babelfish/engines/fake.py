"""The `test` engine: deterministic, instant, and honest about the audio it was given.

Its transcript is derived from the audio itself (length, loudness and a checksum of the samples, then one counting
word per half second, so that longer audio has more words, as speech does), so tests can tell utterances apart and
check routing and order without any model. Translations are the
transcript tagged with the target language; speech is a short tone whose pitch depends on the language.
Latin (`la`) is known but cannot be translated into, to exercise the "untranslatable" path.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

from babelfish.engines.base import (
    SAMPLE_RATE,
    EngineInfo,
    LanguageSupport,
    RenderResult,
    SpeechResult,
    TextResult,
    Transcript,
    Utterance,
)
from babelfish.languages import english_name

LANGUAGES = ("en", "de", "fr", "es", "pt", "it", "ja")
TEXT_ONLY = ("la",)
TTS_RATE = 22_050


def transcript_of(audio: np.ndarray) -> str:
    """The transcript the test engine gives for `audio`."""
    pcm = np.clip(audio * 32767, -32768, 32767).astype("<i2")
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if len(audio) else 0.0
    dbfs = 20 * np.log10(max(rms, 1e-9))
    seconds = len(audio) / SAMPLE_RATE
    words = " ".join(f"w{i}" for i in range(1, round(seconds * 2) + 1))
    return f"utterance {seconds:.2f}s {dbfs:.0f}dBFS #{zlib.crc32(pcm.tobytes()):08x} {words}".rstrip()


class FakeEngine:
    def __init__(
        self,
        delay_seconds: float = 0.0,
        default_language: str = "en",
        tone_seconds: float = 0.25,
        reason: str = "selected with --engine test: no models, deterministic output",
        speech_delay_seconds: float | None = None,  # each language's speech; None: delay_seconds
    ) -> None:
        # Its revisions may differ from the first pass (tests script them), whatever the turn's length.
        self.info = EngineInfo(name="test", reason=reason, single_revision_seconds=float("inf"))
        self._delay = delay_seconds
        self._speech_delay = delay_seconds if speech_delay_seconds is None else speech_delay_seconds
        self._default = default_language
        self._tone_seconds = tone_seconds

    def languages(self) -> Sequence[LanguageSupport]:
        rows = [
            LanguageSupport(code, True, True, True, {"asr": "test", "mt": "test", "tts": "test"}) for code in LANGUAGES
        ]
        rows += [LanguageSupport(code, True, False, False, {"asr": "test"}) for code in TEXT_ONLY]
        return rows

    def transcribe(self, utterance: Utterance) -> Transcript | None:
        self._sleep()
        if not len(utterance.audio) or float(np.max(np.abs(utterance.audio))) < 1e-3:
            return None  # digital silence: nothing was said
        # A careful first pass is reported as a beam search, as the cascade does with its default `asr_beam_size`.
        return Transcript(transcript_of(utterance.audio), utterance.language or self._default, beam=utterance.careful)

    def render(
        self, utterance: Utterance, transcript: Transcript, targets: Sequence[str], speech: bool = True
    ) -> Iterator[RenderResult]:
        texts = []
        for target in targets:
            self._sleep()
            if target in TEXT_ONLY:
                text = TextResult(target, None, notice=f"The test engine cannot translate into {english_name(target)}.")
            else:
                text = TextResult(target, f"[{target}] {transcript.text}", via="test")
            texts.append(text)
            yield text
        if speech:
            yield from self.speak(utterance, texts)

    def speak(self, utterance: Utterance, texts: Sequence[TextResult]) -> Iterator[SpeechResult]:
        for text in texts:
            if text.text is not None and text.language not in TEXT_ONLY:
                self._sleep(self._speech_delay)
                yield SpeechResult(text.language, tone(text.language, self._tone_seconds), TTS_RATE, via="test")

    def translate_text(self, text: str, source: str, targets: Sequence[str]) -> list[TextResult]:
        return [TextResult(t, None if t in TEXT_ONLY else f"[{t}] {text}", via="test") for t in targets]

    def close(self) -> None:
        pass

    def _sleep(self, seconds: float | None = None) -> None:
        seconds = self._delay if seconds is None else seconds
        if seconds:
            time.sleep(seconds)


def tone(language: str, seconds: float = 0.25) -> bytes:
    freq = 200 + 40 * (zlib.crc32(language.encode()) % 16)
    t = np.arange(int(TTS_RATE * seconds)) / TTS_RATE
    return (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()
