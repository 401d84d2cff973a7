"""Speech recognition: faster-whisper's CTranslate2 model, driven directly so short clips are not padded to 30 s.

A first pass (the fresh transcription of an utterance) decodes with a beam search when it is `careful` (nothing else
waited for the engine as it started: babelfish/inference.py), greedily otherwise; partials decode greedily. A revision
(a finished turn re-decoded: babelfish/revisions.py) is decoded with a beam on the same short window (a short one at
three positions in it, the best-scored words kept), as the continuation of the speaker's own previous words when
they are known (their audio before it in the window, their text as the decoder's prefix: `Utterance.context`); the
standard 30 s window (faster-whisper's own `transcribe`) matches the bench's reference better but costs 3-4 times the
engine time, for about the same words against what was said (docs/benchmarks.md, "How a revision decodes"). A
one-piece turn's revision and its first pass are often near-equal readings of the same audio: the revision's words
replace the ones listeners hold (`Utterance.held`) only when the model, in the window and after the prefix it decoded
them with, finds them clearly likelier (HELD_MARGIN; on the short window, not the bench-only standard one)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from babelfish.engines.base import SAMPLE_RATE, Context
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
    held: bool = False  # a revision that kept the held words (`text`): its own were not clearly likelier
    outweighed: bool = False  # a revision whose words were weighed against the held ones and found clearly likelier


@dataclass(frozen=True)
class Decoded:
    text: str
    avg_logprob: float
    no_speech_prob: float
    looped: bool
    beam: bool = False
    held: bool = False  # a revision that kept the held words: its own were not clearly likelier
    outweighed: bool = False  # a revision weighed against the held words and found clearly likelier


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
        context: Context | None = None,
        held: str | None = None,
    ) -> Recognized | None:
        """Text of 16 kHz float32 audio with the decoder's statistics; None for silence or no words (whether the
        words are speech is decided with the segmenter's view too: nonspeech.py). `candidates`: likely languages
        when `language` is None (a hint, not a limit). `voiced_seconds`: how much of the audio the segmenter heard
        as speech, which tells a phrase said three times from a decoder loop (loops.py). `revision`: a finished turn
        decoded again, off the fresh path: accuracy over speed. `careful`: a first pass the engine has time for (nothing
        else waits): a little more time for better words. `halt`: once true, a revision's extra tries stop.
        `context`: what the speaker said just before; a revision decodes the audio as its continuation. `held`: a
        revision's turn as listeners read it now; its words are returned unless the new ones are clearly likelier."""
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
# A revision with the speaker's context (babelfish/recent.py): their audio before the turn in the window, their text as
# the decoder's prefix, and the turn's words as its continuation. The prefix is bounded (~12 s of speech); the decoder
# has 448 positions, of which a decode uses the 3 start tokens and at most half of max_length (CTranslate2 4.8).
CONTEXT_MAX_TOKENS = 120
DECODER_POSITIONS = 448
# A continuation whose first words (up to this many) are words of the context in a row says them again: not the turn's
# own start (a wrong prefix's right words are not caught: the reviser refuses a revision far longer than its pieces
# unless they are a word or two and the turn's voice could hold the new words).
CONTEXT_ECHO_WORDS = 3
# Punctuation that closes the context's last sentence, which a continuation may start with: not part of the turn.
CLOSING = ".,;:!?…)]}"
# Scripts written without spaces between words: a continuation's first token there is always "glued" (below), so their
# speakers' revisions are decoded alone (Whisper's codes, canonical).
UNSPACED = frozenset({"zh", "ja", "th", "lo", "my", "km", "bo", "yue"})
# A one-piece revision replaces the words listeners hold only when the model, in the same window and after the same
# prefix, finds its own words likelier than them by this much (mean log-probability per text token, CTranslate2's
# alignment pass). Chosen on the one-piece revisions of bench_fidelity runs, no held-out check (docs/benchmarks.md,
# "Held words"). The pass scores no end of text, so a reading that stops where the other reads on cannot be judged by
# it, and readings far apart in length are compared only when the held one is a word or two (a short turn misheard):
# those are left to the reviser's rules.
HELD_MARGIN = 0.2
HELD_MAX_WORDS_APART = 1
HELD_FEW_WORDS = 2
# A careful first pass's beam (`asr_beam_size`): +8% engine CPU (one thread per worker) for 20.1% → 17.0% WER
# against what was said (docs/benchmarks.md, "A beam on the first pass").
FIRST_PASS_BEAM = 5


def _max_length(seconds: float, prefix: int = 0) -> int:
    """CTranslate2's max_length for `seconds` of new audio after `prefix` tokens: ~3 words/s speech never needs more,
    and a runaway loop stops early. It ends a decode at half of it, prefix included (measured), so the prefix counts
    twice."""
    return int(20 + 12 * seconds) + 2 * prefix


def has_alignment_heads(folder: Path) -> bool:
    """Whether a CTranslate2 Whisper conversion can run the alignment pass (its config.json names the heads)."""
    try:
        return bool(json.loads((folder / "config.json").read_text()).get("alignment_heads"))
    except (OSError, ValueError, AttributeError):
        return False


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), np.float32)


def _best(tries: list[tuple[Decoded, Any]]) -> tuple[Decoded, Any]:
    """The best-scored try. A mean log-probability favours a decode that stopped early or looped, so those go last:
    a loop, a phrase said twice (the reviser would reject it), or far fewer words than another."""
    most = max(len(words(d.text)) for d, _ in tries)

    def rank(candidate: tuple[Decoded, Any]) -> tuple[bool, int, bool, float]:
        d = candidate[0]
        said = words(d.text)
        return not d.looped, -doubled(said), len(said) >= REVISION_KEEP_WORDS * most, d.avg_logprob

    return max(tries, key=rank)


class WhisperAsr:
    """Whisper through CTranslate2, encoding only the clip (plus a short tail) instead of a 30 s window.

    CTranslate2's Whisper encoder accepts fewer than 3000 mel frames, and the encoder is most of the cost:
    on 2 cores a 30 s window takes ~0.5 s, a 5 s clip + 2 s tail ~0.1 s (see docs/benchmarks.md). The encoder
    output is kept for a few utterances so Whisper's translate task (X→en) reuses it and costs only a decode.
    """

    _aligns = True  # the model can score given words: its alignment pass needs the conversion's alignment heads

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
        self._aligns = has_alignment_heads(folder)
        if not self._aligns:
            log.info("%s has no alignment heads: revisions are not compared with the words listeners hold", folder)
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
    def _encode(self, audio: np.ndarray, full_window: bool = False, before: np.ndarray | None = None) -> Any:
        import ctranslate2
        from faster_whisper.audio import pad_or_trim

        if full_window:  # the standard 30 s window, only for a language id that the short one was unsure of
            feats = pad_or_trim(self._features(audio))
        else:
            if before is not None:
                audio = np.concatenate([before, audio])
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

    def _decode(
        self,
        encoded: Any,
        language: str,
        task: str,
        seconds: float,
        voiced: float,
        beam: int = 1,
        prefix: list[int] | None = None,
    ) -> Decoded:
        """`prefix`: tokens the decoder is given as already said (a context's text); the text returned is what
        follows them."""
        prefix = prefix or []
        prompt = [*self._start(language, task), self._no_ts, *prefix]
        max_length = _max_length(seconds, len(prefix))
        (res,) = self._model.generate(
            encoded,
            [prompt],
            beam_size=beam,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
        )
        sequence = list(res.sequences_ids[0])
        score = float(res.scores[0])
        if prefix:
            if sequence[: len(prefix)] != prefix:  # not the continuation (another CTranslate2?): no words from it
                log.warning("the decoder did not keep the context's prefix; the turn is decoded alone")
                return Decoded("", score, float(res.no_speech_prob), False, beam > 1)
            # The forced prefix scores 0 but counts in the length CTranslate2 divides by: the continuation's mean.
            score = score * len(sequence) / max(1, len(sequence) - len(prefix))
        ids = [t for t in sequence[len(prefix) :] if t < self._eot]
        first = self._tok.decode(ids[:1])[:1] if prefix and ids else " "
        if first.isalnum() or first in "'’":
            # Glued to the context's last word ("station" + "s", "'s"): not where the turn starts (scripts written
            # without spaces never have a context: UNSPACED).
            return Decoded("", score, float(res.no_speech_prob), False, beam > 1)
        # CTranslate2's Whisper stops a decode at half of max_length, prefix included (measured, 4.8, greedy and
        # beam 5): reaching that is never ending.
        capped = len(sequence) >= max_length // 2
        text = self._tok.decode(ids).strip()
        if prefix:
            text = text.lstrip(CLOSING + " ")  # the context's sentence closed: ". Where shall we meet?"
        text, looped = repair_loop(text, voiced, capped)
        return Decoded(text, score, float(res.no_speech_prob), looped, beam > 1)

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
        too (until `halt` says someone needs the engine), and the best-scored words kept."""

        def encode(lead: float) -> Any:
            return encoded if not lead else self._encode(np.concatenate([_silence(lead), audio]))

        return _best(self._tries(encode, [], language, seconds, voiced, halt))

    def _in_context(
        self,
        audio: np.ndarray,
        language: str,
        seconds: float,
        voiced: float,
        halt: Callable[[], bool] | None,
        context: Context | None,
        prefix: list[int],
    ) -> tuple[Decoded, Any] | None:
        """A revision decoded as the continuation of the speaker's `context` (its audio before the clip in the window,
        its text as the decoder's prefix), a short clip at each lead too; None when no try found words of the turn's
        own (the caller then decodes the clip alone): one with none (Whisper took the turn for the context's end: "Ja."
        → ""), or one that opens with words of the context in a row (saying them again). Its no-speech probability is
        read over the whole window, the context's speech in it, so the noise rules (nonspeech.py) let it through: the
        turn's pieces passed them already."""
        assert context is not None and prefix
        before = context.audio()
        said_before = words(context.text)

        def encode(lead: float) -> Any:
            return self._encode(audio, before=np.concatenate([before, _silence(lead)]) if lead else before)

        def own(decoded: Decoded) -> bool:
            said = words(decoded.text)
            head = said[:CONTEXT_ECHO_WORDS]
            echoed = any(said_before[i : i + len(head)] == head for i in range(len(said_before) - len(head) + 1))
            return bool(said) and not echoed

        found = [t for t in self._tries(encode, prefix, language, seconds, voiced, halt) if own(t[0])]
        return _best(found) if found else None

    def _start(self, language: str, task: str) -> list[int]:
        """What a decode starts with before <|notimestamps|>: start of transcript, language, task."""
        return [self._sot, self._tok.token_to_id(f"<|{self._from_canon[language]}|>"), self._task[task]]

    def _likelihood(self, encoded: Any, language: str, prefix: list[int], text: str) -> float:
        """Mean log-probability of `text`'s tokens in `encoded`, read after `prefix` as a decode reads them:
        CTranslate2's alignment pass, one decoder run over given tokens, no search. It puts <|notimestamps|> after the
        start itself, normalises over text tokens only and scores no end of text."""
        ids = self._text_tokens(text)
        if not ids:
            return float("-inf")
        start = self._start(language, "transcribe")
        (res,) = self._model.align(encoded, start, [[*prefix, *ids]], self._frames(encoded))
        probs = np.asarray(res.text_token_probs[len(prefix) : len(prefix) + len(ids)], np.float64)
        return float(np.mean(np.log(np.maximum(probs, 1e-10))))

    def _text_tokens(self, text: str) -> list[int]:
        """`text`'s tokens as a decode writes them (a space before the first word), text tokens only: a special one
        ("<|en|>" typed in a transcript) would end a prompt early."""
        ids: list[int] = self._tok.encode(" " + text.strip(), add_special_tokens=False).ids
        return [t for t in ids if t < self._eot]

    def _frames(self, encoded: Any) -> int:
        """The mel frames behind an encoding (two per encoder position): the alignment pass crops the attention it
        times words with to them; the token probabilities do not depend on it."""
        return int(encoded.shape[1]) * 2

    def _against_held(
        self, decoded: Decoded, encoded: Any, language: str, prefix: list[int], held: str | None
    ) -> Decoded:
        """The revision's words, or the held ones when the model does not find its own clearly likelier in the window
        and after the prefix it decoded them with (a beam's pick between near-equal readings is a coin toss, and
        listeners already read the held words). Not compared, the revision kept: one reading goes on where the other
        stops, or they are far apart in length while the held one is more than a word or two (HELD_MARGIN's comment)."""
        said, before = words(decoded.text), words(held or "")
        if held is None or not self._aligns or not said or not before or said == before:
            return decoded
        joined, held_joined = "".join(said), "".join(before)  # unspaced scripts are one "word" a sentence
        if joined != held_joined and (joined.startswith(held_joined) or held_joined.startswith(joined)):
            return decoded
        if len(before) > HELD_FEW_WORDS and abs(len(said) - len(before)) > HELD_MAX_WORDS_APART:
            return decoded
        try:
            margin = self._likelihood(encoded, language, prefix, decoded.text)
            margin -= self._likelihood(encoded, language, prefix, held)
        except RuntimeError:  # the revision stands: it is what would have been sent without this check
            log.warning("scoring a revision's words against the held ones failed", exc_info=True)
            return decoded
        log.debug("revision against the held words: %+.2f (%r for %r)", margin, decoded.text, held)
        if margin >= HELD_MARGIN:
            return replace(decoded, outweighed=True)
        return Decoded(held.strip(), decoded.avg_logprob, decoded.no_speech_prob, False, decoded.beam, held=True)

    def _prefix(self, context: Context | None, language: str | None, seconds: float) -> list[int]:
        """The context's text as the decoder's prefix, when it fits: the clip's language, and room for both in
        Whisper's window and in the decoder; [] when not."""
        if context is None or language is None or context.language != language or not context.text.strip():
            return []
        if language in UNSPACED:
            return []
        longest = seconds + max(REVISION_LEADS)
        if context.seconds + longest + TAIL_PAD_SECONDS > 30:
            return []
        prefix = self._text_tokens(context.text)
        if len(prefix) > CONTEXT_MAX_TOKENS or 3 + _max_length(longest, len(prefix)) // 2 > DECODER_POSITIONS:
            return []
        return prefix

    def _tries(
        self,
        encode: Callable[[float], Any],
        prefix: list[int],
        language: str,
        seconds: float,
        voiced: float,
        halt: Callable[[], bool] | None,
    ) -> list[tuple[Decoded, Any]]:
        """A beam decode of the clip as `encode(lead)` places it (lead: seconds of silence before it); a short clip's
        at every lead of REVISION_LEADS too, until `halt` says someone needs the engine."""
        leads = [0.0, *REVISION_LEADS] if seconds <= REVISION_LEADS_MAX_SECONDS else [0.0]
        found: list[tuple[Decoded, Any]] = []
        for lead in leads:
            if found and halt is not None and halt():
                log.debug("revision halted after %d of %d tries", len(found), len(leads))
                break
            encoded = encode(lead)
            decoded = self._decode(encoded, language, "transcribe", seconds + lead, voiced, self.revision_beam, prefix)
            log.debug("revision try: lead %.2f s, %s, %.2f: %r", lead, "in context" if prefix else "alone",
                      decoded.avg_logprob, decoded.text)  # fmt: skip
            found.append((decoded, encoded))
        return found

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
        context: Context | None = None,
        held: str | None = None,
    ) -> Recognized | None:
        audio = np.asarray(audio, np.float32)
        seconds = len(audio) / SAMPLE_RATE
        if seconds < 0.1 or float(np.sqrt(np.mean(audio**2))) < SILENCE_RMS:
            return None
        voiced = seconds if voiced_seconds is None else min(voiced_seconds, seconds)
        if revision and language is not None and language in self._langs and self.revision_window == "standard":
            return self._recognized(self._standard(audio, language, voiced), language, seconds)
        prefix = self._prefix(context, language, seconds) if revision and language in self._langs else []
        if prefix:
            assert language is not None
            continued = self._in_context(audio, language, seconds, voiced, halt, context, prefix)
            if continued is not None:  # no encoding is kept: Whisper's translate task encodes the clip alone
                return self._recognized(self._against_held(*continued, language, prefix, held), language, seconds)
            if halt is not None and halt():
                return None  # someone needs the engine: the turn's first pass stands, no second decode now
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
            decoded = self._against_held(decoded, encoded, language, [], held)
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
            decoded.text, language, decoded.avg_logprob, decoded.no_speech_prob, decoded.looped, decoded.beam,
            decoded.held, decoded.outweighed,
        )  # fmt: skip

    def translate_to_english(self, audio: np.ndarray, language: str) -> str:
        """Whisper's translate task on the same audio, reusing the encoding `recognize` made when it can."""
        seconds = len(audio) / SAMPLE_RATE
        encoded, voiced = self._encodings.get(audio) or (self._encode(np.asarray(audio, np.float32)), seconds)
        return self._decode(encoded, language, "translate", seconds, voiced).text
