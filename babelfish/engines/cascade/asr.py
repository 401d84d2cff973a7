"""Speech recognition: faster-whisper's CTranslate2 model, driven directly so short clips are not padded to 30 s.

A first pass (the fresh transcription of an utterance) decodes with a beam search when it is `careful` (nothing else
waited for the engine as it started: babelfish/inference.py), greedily otherwise; partials decode greedily. A revision
(a finished turn re-decoded: babelfish/revisions.py) is decoded with a beam on the same short window (a short one at
three positions in it, the best-scored words kept); the standard
30 s window (faster-whisper's own `transcribe`) matches the bench's reference better but costs 3-4 times the engine
time, for about the same words against what was said (docs/benchmarks.md, "How a revision decodes")."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from babelfish.engines.base import SAMPLE_RATE
from babelfish.engines.cascade.loops import repair_loop
from babelfish.engines.identity_cache import IdentityLRU
from babelfish.languages import try_canonical
from babelfish.repeats import doubled, doubled_at_end, words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recognized:
    text: str
    language: str
    avg_logprob: float
    no_speech_prob: float
    looped: bool = False  # the decoder looped (loops.py); `text` keeps the phrase once
    beam: bool = False  # decoded with a beam search


@dataclass(frozen=True)
class Decoded:
    text: str
    avg_logprob: float
    no_speech_prob: float
    looped: bool
    beam: bool = False


class Asr(Protocol):
    def languages(self) -> Collection[str]:
        """Languages it can recognise (canonical codes)."""
        ...

    def recognize(
        self,
        audio: np.ndarray,
        language: str | None,
        candidates: Collection[str] = (),
        voiced_seconds: float | None = None,
        revision: bool = False,
        careful: bool = False,
        halt: Callable[[], bool] | None = None,
    ) -> Recognized | None:
        """Text of 16 kHz float32 audio with the decoder's statistics; None for silence or no words (whether the
        words are speech is decided with the segmenter's view too: nonspeech.py). `candidates`: likely languages
        when `language` is None (a hint, not a limit). `voiced_seconds`: how much of the audio the segmenter heard
        as speech, which tells a phrase said three times from a decoder loop (loops.py). `revision`: a finished turn
        decoded again, off the fresh path: accuracy over speed. `careful`: a first pass the engine has time for (nothing
        else waits): a little more time for better words. `halt`: once true, a revision's extra tries stop."""
        ...


# A clip quieter than this (RMS of float audio, about -70 dBFS) is silence; not worth a model call.
SILENCE_RMS = 3e-4
# Language id on the short encoding is less sure than on a 30 s one; below this we redo it the standard way (or,
# given candidates, settle it by decoding, below).
LID_CONFIDENT = 0.8
# With a room hint, an unsure language id is settled by decoding: the likeliest candidates (at most this many) and
# Whisper's own top pick each transcribe the clip, and the best average log-probability per token wins. Measured on
# espeak clips this beats Whisper's language probabilities, which favour English and Thai on synthetic speech.
HINT_MAX_CANDIDATES = 3
# Whisper's pick, when the room does not speak it, must beat the best candidate by this much (nats per token): the
# hint is a prior, not a limit, so a visitor is still recognised when the audio clearly fits their language better.
HINT_MARGIN = 0.2
# Zero audio appended before the shortened encoding: without it the decoder never sees an end and repeats itself.
TAIL_PAD_SECONDS = 2.0
# The shortest window encoded. A short turn plus the tail (~3 s) is too little context: Whisper base loops on it
# ("Good morning. Good morning. ..." for 5 of 12 short Pico turns, docs/benchmarks.md); from 10 s on it ends like
# the standard 30 s window does. Costs ~67 ms of encoder against ~25 ms for 3 s (2 cores, int8).
MIN_WINDOW_SECONDS = 10.0
# A revision's beam: faster-whisper's default, and the bench's reference (docs/benchmarks.md).
REVISION_BEAM = 5
# A revision of a clip this short is also decoded with this much silence before it, and the best-scored text is kept.
# Whisper base's words for a short turn hang on where the speech sits in the window ("Où est la gare?" came out as
# "Willagah ?", "Willaga ?" and "Où est la gars ?" at leads 0, 0.1 and 0.25 s): on 40 one-piece turns (Pico, espeak)
# the best-scored of the three cut the WER against what was said from 24.3% to 18.9% (docs/benchmarks.md, "A second
# look at one-piece turns"). Two more decodes of a short clip; longer clips were not measured and decode once.
REVISION_LEADS = (0.1, 0.25)
REVISION_LEADS_MAX_SECONDS = 4.0
REVISION_KEEP_WORDS = 0.6  # a lead's decode with fewer words than this share of another's stopped early
# A careful first pass's beam (`asr_beam_size`): +8% engine CPU (one thread per worker) for 20.1% → 17.0% WER
# against what was said (docs/benchmarks.md, "A beam on the first pass").
FIRST_PASS_BEAM = 5


class WhisperAsr:
    """Whisper through CTranslate2, encoding only the clip (plus a short tail) instead of a 30 s window.

    CTranslate2's Whisper encoder accepts fewer than 3000 mel frames, and the encoder is most of the cost:
    on 2 cores a 30 s window takes ~0.5 s, a 5 s clip + 2 s tail ~0.1 s (see docs/benchmarks.md). The encoder
    output is kept for a few utterances so Whisper's translate task (X→en) reuses it and costs only a decode.
    """

    def __init__(
        self,
        folder: Path,
        compute_type: str = "int8",
        threads: int = 2,
        device: str = "cpu",
        revision_beam: int = REVISION_BEAM,
        workers: int = 1,
        beam_size: int = FIRST_PASS_BEAM,
    ) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        # `workers` model replicas (CTranslate2's inter_threads), so that many calls from the inference workers run at
        # once: with one, concurrent calls queue inside CTranslate2 however many workers the server has.
        self._fw = WhisperModel(
            str(folder), device=device, compute_type=compute_type, cpu_threads=threads, num_workers=workers
        )
        # Its transcribe (revisions) logs every call's audio length at info level: noise in a server's log.
        self._fw.logger.setLevel(max(self._fw.logger.getEffectiveLevel(), logging.WARNING))
        self._model = self._fw.model
        self._tok = self._fw.hf_tokenizer
        self._features = self._fw.feature_extractor
        whisper_codes = tuple(_LANGUAGE_CODES) if self._model.is_multilingual else ("en",)
        # Whisper has its own few odd codes ("jw" for Javanese); the rest of BabbleFish speaks canonical codes.
        self._to_canon = {w: try_canonical(w) or w for w in whisper_codes}
        self._from_canon = {c: w for w, c in self._to_canon.items()}
        self._langs = tuple(self._from_canon)
        # (encoding, voiced seconds) for translate_to_english on the same audio
        self._encodings: IdentityLRU[np.ndarray, tuple[Any, float]] = IdentityLRU(8)
        self._sot = self._tok.token_to_id("<|startoftranscript|>")
        self._no_ts = self._tok.token_to_id("<|notimestamps|>")
        self._task = {t: self._tok.token_to_id(f"<|{t}|>") for t in ("transcribe", "translate")}
        self._eot = self._tok.token_to_id("<|endoftext|>")
        self.beam_size = beam_size  # a careful first pass's; a hurried one, partials and translate are greedy
        self.revision_beam = revision_beam
        # "short": the fresh path's window; "standard": faster-whisper's transcribe (bench_revisions compares them)
        self.revision_window = "short"

    def languages(self) -> Collection[str]:
        return self._langs

    @property
    def workers(self) -> int:
        """Calls that run at once (model replicas)."""
        return int(self._model.num_workers)

    # --- encoding ---
    def _encode(self, audio: np.ndarray, full_window: bool = False) -> Any:
        import ctranslate2
        from faster_whisper.audio import pad_or_trim

        if full_window:  # the standard 30 s window, only for a language id that the short one was unsure of
            feats = pad_or_trim(self._features(audio))
        else:
            audio = audio[: 30 * SAMPLE_RATE]
            size = max(len(audio) + int(TAIL_PAD_SECONDS * SAMPLE_RATE), int(MIN_WINDOW_SECONDS * SAMPLE_RATE))
            window = np.zeros(size, np.float32)
            window[: len(audio)] = audio
            feats = self._features(window, padding=0)
            feats = feats[:, : min(3000, feats.shape[-1] - feats.shape[-1] % 2)]  # the conv stride wants even
        return self._model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats[None])))

    def _detect(self, encoded: Any) -> list[tuple[str, float]]:
        """(language (canonical), probability), most likely first."""
        return [(self._to_canon.get(tok[2:-2], tok[2:-2]), p) for tok, p in self._model.detect_language(encoded)[0]]

    def _settle(self, encoded: Any, seconds: float, voiced: float, hints: list[str], top: str) -> tuple[str, Decoded]:
        """Language id by decoding: the hinted languages and Whisper's top pick each transcribe; best score wins.
        Greedy, as measured: scores of beam decodes were never compared across languages."""
        decoded = {c: self._decode(encoded, c, "transcribe", seconds, voiced) for c in dict.fromkeys([*hints, top])}
        best = max(decoded, key=lambda c: decoded[c].avg_logprob - (0.0 if c in hints else HINT_MARGIN))
        return best, decoded[best]

    def _decode(self, encoded: Any, language: str, task: str, seconds: float, voiced: float, beam: int = 1) -> Decoded:
        lang_token = self._tok.token_to_id(f"<|{self._from_canon[language]}|>")
        prompt = [self._sot, lang_token, self._task[task], self._no_ts]
        max_length = int(20 + 12 * seconds)  # ~3 words/s speech never needs more; stops runaway loops early
        (res,) = self._model.generate(
            encoded,
            [prompt],
            beam_size=beam,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
        )
        ids = [t for t in res.sequences_ids[0] if t < self._eot]
        # CTranslate2's Whisper stops a decode at half of max_length (measured, 4.8, greedy and beam 5): reaching
        # that is never ending.
        capped = len(res.sequences_ids[0]) >= max_length // 2
        text, looped = repair_loop(self._tok.decode(ids).strip(), voiced, capped)
        return Decoded(text, float(res.scores[0]), float(res.no_speech_prob), looped, beam > 1)

    def _careful(self, encoded: Any, language: str, seconds: float, voiced: float, greedy: Decoded | None) -> Decoded:
        """A careful first pass: the beam's words, unless they end by saying a phrase a second time where a greedy
        decode does not (beam 5 doubled a padded "Good morning." once, and "Guten Morgen." in 1 of 29 short turns,
        each as a second copy at the end: docs/benchmarks.md). The greedy decode (`greedy`, when language id already
        made one) runs only then (a loop in it is already cut to one copy: loops.py)."""
        beamed = self._decode(encoded, language, "transcribe", seconds, voiced, self.beam_size)
        if not doubled_at_end(words(beamed.text)):
            return beamed
        greedy = greedy or self._decode(encoded, language, "transcribe", seconds, voiced)
        return greedy if not doubled_at_end(words(greedy.text)) else beamed

    def _revised(
        self,
        audio: np.ndarray,
        encoded: Any,
        language: str,
        seconds: float,
        voiced: float,
        halt: Callable[[], bool] | None = None,
    ) -> tuple[Decoded, Any]:
        """A revision's beam decode and the encoding it came from; a short clip is decoded at each of REVISION_LEADS
        too (until `halt` says someone needs the engine), and the best-scored words kept. A mean log-probability
        favours a decode that stopped early or looped, so those go last: a loop, a phrase said twice (the reviser would
        reject it), or far fewer words than another."""
        candidates = [(self._decode(encoded, language, "transcribe", seconds, voiced, self.revision_beam), encoded)]
        if seconds <= REVISION_LEADS_MAX_SECONDS:
            for lead in REVISION_LEADS:
                if halt is not None and halt():
                    break
                shifted = self._encode(np.concatenate([np.zeros(round(lead * SAMPLE_RATE), np.float32), audio]))
                candidates.append(
                    (self._decode(shifted, language, "transcribe", seconds + lead, voiced, self.revision_beam), shifted)
                )
        most = max(len(words(d.text)) for d, _ in candidates)

        def rank(candidate: tuple[Decoded, Any]) -> tuple[bool, int, bool, float]:
            d = candidate[0]
            said = words(d.text)
            return not d.looped, -doubled(said), len(said) >= REVISION_KEEP_WORDS * most, d.avg_logprob

        return max(candidates, key=rank)

    def _standard(self, audio: np.ndarray, language: str, voiced: float) -> Decoded:
        """faster-whisper's own `transcribe`, as the bench's reference decodes a whole clip: the 30 s window, beam
        search, timestamps, its temperature fallback. Its statistics are the segments' own, weighted by tokens."""
        segments, _ = self._fw.transcribe(
            audio, language=self._from_canon[language], beam_size=self.revision_beam, vad_filter=False
        )
        segs = list(segments)  # lazy: decoded here, in the worker
        text = " ".join(s.text.strip() for s in segs).strip()
        weights = np.array([max(1, len(s.tokens)) for s in segs], float)
        logprob = float(np.average([s.avg_logprob for s in segs], weights=weights)) if segs else -10.0
        no_speech = float(np.average([s.no_speech_prob for s in segs], weights=weights)) if segs else 1.0
        text, looped = repair_loop(text, voiced, False)
        return Decoded(text, logprob, no_speech, looped)

    # --- public ---
    def recognize(
        self,
        audio: np.ndarray,
        language: str | None,
        candidates: Collection[str] = (),
        voiced_seconds: float | None = None,
        revision: bool = False,
        careful: bool = False,
        halt: Callable[[], bool] | None = None,
    ) -> Recognized | None:
        audio = np.asarray(audio, np.float32)
        seconds = len(audio) / SAMPLE_RATE
        if seconds < 0.1 or float(np.sqrt(np.mean(audio**2))) < SILENCE_RMS:
            return None
        voiced = seconds if voiced_seconds is None else min(voiced_seconds, seconds)
        if revision and language is not None and language in self._langs and self.revision_window == "standard":
            return self._recognized(self._standard(audio, language, voiced), language, seconds)
        encoded = self._encode(audio)
        decoded: Decoded | None = None
        if language is None or language not in self._langs:
            probs = self._detect(encoded)
            language, prob = probs[0]
            hints = [c for c, _ in probs if c in candidates][:HINT_MAX_CANDIDATES]
            if prob < LID_CONFIDENT and hints:
                language, decoded = self._settle(encoded, seconds, voiced, hints, language)
            elif prob < LID_CONFIDENT:
                language = self._detect(self._encode(audio, full_window=True))[0][0]
        if revision and self.revision_window == "standard":
            decoded = self._standard(audio, language, voiced)  # the language settled above, on the short window
        elif revision:
            decoded, encoded = self._revised(audio, encoded, language, seconds, voiced, halt)  # translate: same lead
        elif careful and self.beam_size > 1:
            decoded = self._careful(encoded, language, seconds, voiced, decoded)
        decoded = decoded or self._decode(encoded, language, "transcribe", seconds, voiced)
        self._encodings.put(audio, (encoded, voiced))
        return self._recognized(decoded, language, seconds)

    def _recognized(self, decoded: Decoded, language: str, seconds: float) -> Recognized | None:
        if not any(ch.isalnum() for ch in decoded.text):
            return None
        if decoded.looped:
            log.info("decoder loop on a %.1f s clip; kept the phrase once: %r", seconds, decoded.text)
        return Recognized(
            decoded.text, language, decoded.avg_logprob, decoded.no_speech_prob, decoded.looped, decoded.beam
        )

    def translate_to_english(self, audio: np.ndarray, language: str) -> str:
        """Whisper's translate task on the same audio, reusing the encoding `recognize` made when it can."""
        seconds = len(audio) / SAMPLE_RATE
        encoded, voiced = self._encodings.get(audio) or (self._encode(np.asarray(audio, np.float32)), seconds)
        return self._decode(encoded, language, "translate", seconds, voiced).text
