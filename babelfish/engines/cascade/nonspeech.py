"""Is a recognised text speech? The segmenter's view of the audio and the decoder's statistics together.

Whisper alone cannot tell: on noise it writes fluent sentences, and its scores for them differ between CPUs
(CTranslate2's int8 kernels). The segmenter (Silero VAD) has already looked at every 32 ms of the utterance; how
confidently it heard speech separates people from crowd babble that Silero half believes (docs/benchmarks.md):

    voiced confidence (mean probability of the windows at or above 0.5): speech 0.93–1.00, babble 0.51–0.92
    Whisper's no-speech probability: speech 0.00–0.17 (one espeak clip 0.64), babble 0.24–0.84

Babble is rejected only when both agree, so neither signal alone can drop a real turn (laughter, below, is judged by
its text). Babble of a few voices (8) can fool Silero (voiced confidence up to 0.96); what gives it away then is how
little Whisper found in it: a few words ("I'm sorry.") for seconds of voice, with Whisper itself doubting speech:

    syllables per voiced second, at 1.5 s voiced or more: speech 3.6–8 (espeak, LibriVox, Pico), 8-voice babble
    that passed the rule above 0.8–3.0; Whisper's no-speech probability on them 0.43–0.64

That rule judges only text whose syllables are counted by its script's rules (loops.counts_script): a guess from
word length would take calm speech in an unsupported script for babble.

Babble of six voices or so passes the rules above: fluent sentences, Silero sure of speech, Whisper doubting it but
under its own bar. What gives a crowd away there is its loudness: many voices fill each other's pauses, so it hardly
moves. One person's speech dips between syllables and words, even in noise (docs/benchmarks.md, "A crowd's steady
loudness"):

    spread of the loudness (p90 - p10 of 25 ms frames, in dB): babble of 6-16 voices 3.5-11.9, the babble passing
    the rules above 5.9-9.6 (held out: 6.7-10.4); speech clean 12.8-38, in pink noise or six-voice babble at 5 dB SNR
    10.9 and up (3 dB: 11.4); Whisper's no-speech probability on the babble passing the rules above 0.25-0.60

Alone it would drop a person in a loud crowd (0 dB SNR: 7.0-12.5 dB), so it needs Whisper's doubt too. It judges
the audio decoded, without any context before it: the segmenter's cut, a revision's joined turn, or an open
segment's partial.

A short reply said over a crowd looks like babble to the first two rules: the segmenter counts the crowd around it as
voice, so the segment seems weakly voiced, or holds few words for its voiced time, and Whisper is unsure of it. What
tells it apart is its loud part, the 32 ms windows within 6 dB of the loud end (the 95th percentile): the voice
nearest the microphone is louder than the crowd behind it, so those windows are the reply, brief against the voiced
time and sure speech. A crowd's loudest windows are spread through it (docs/benchmarks.md, "A near voice over a
crowd"):

    loud windows per voiced window: replies over 3, 6 or 10 voices at 0-10 dB SNR that those rules dropped
    0.08-0.40; babble alone (every segment with words) of 2-4 voices 0.41 and up, of 6-16 voices 0.67 and up
    mean speech probability of those loud windows: the replies 0.92-1.00

Those two rules leave such a near voice alone, and the log-probability floor takes its loud part's confidence for
the segment's; Whisper's own rule and the steady level still judge it. The rule does not ask whether a crowd is there:
clean speech often has a brief loud part too (its share 0.21-1.0, median 0.50), and none of it was rejected before. A
lone sound (a cough, a slam) is loud for most of its voiced windows, so it is not a near voice. Vocal sounds that are
not words are judged below (measured in a quiet room, and beside short replies over a crowd).

Sounds people make that are not words, recorded (tests/audio.py's HUMAN_SOUNDS; docs/benchmarks.md, "Coughs,
sneezes and laughs"): the segmenter hears no speech in most of them (coughs, most screams, a baby crying, footsteps). A
sneeze or a scream that it half believes, Whisper may hear as a word ("Bye!", "No!") and be fairly sure of it (no-speech
0.13-0.18, but log-probability -1.1 to -1.8). What gives them away is where Silero doubts: their loudest windows. A
voice is loudest where it is surely speech:

    mean speech probability of the loud part, weakly voiced segments (under 0.9) that passed the rules above:
    speech (every measured set, clean and in noise) 0.81 and up; the sneezes and screams 0.30-0.64

Whisper sure of speech (no-speech 0.1 or less, log-probability -1 or more) overrules it, as the segmenter's confidence
overrules Whisper's doubt above: neither view alone drops a turn the other is sure of.

Laughter Silero takes for a voice (its loud part up to 0.97 sure) Whisper writes as laughter: "Hahaha.", "Jajaja". It
is not words to translate, and everyone near heard it: a turn of nothing else is not sent, and laughter before a
turn's first word or after its last is left out ("Hahaha! Natürlich." → "Natürlich."). So is a sneeze Whisper writes
as one ("Tchou!", "Achoo!"): a French sneeze whose loud part the segmenter was as sure of as a voice's (0.81) got
through as "Tchou!" that way.

A sound just before a short reply ("Achoo — Okay.") can share its segment: the segment then looks weakly voiced and
is rejected with the reply in it. Where the loudness spreads farther than six or more voices' ever do (a quiet room,
or a loud sound over a crowd), `sure_part` finds the windows the segmenter is sure of; the engine decodes them alone
and judges them again by every rule. Over a crowd that is the stretch it is surest of: the crowd around a reply is
voiced too, so the reply does not stand apart as a run of its own. Only after a rejection for how the segment sounds:
reading again what Whisper doubted in a voice would be a second throw of the dice (babble of three or four voices
passed that way, measured).

A looped decode is not a sign of noise: the ASR keeps the phrase once and the turn goes out.

Set on greedy decodes, and measured again on beam-5 first passes (docs/benchmarks.md, "A beam on the first pass"): the
no-speech probability does not change, the log-probability rises for babble more than for speech; every speech turn
was kept, and one babble mix more of 117 passed. The thresholds hold for both; the near-voice rule was measured both
ways too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from babelfish.engines.base import SAMPLE_RATE
from babelfish.engines.cascade.asr import Recognized
from babelfish.engines.cascade.loops import counts_script, syllables

SEGMENTER_WINDOW = 512  # samples per speech probability: Silero's 32 ms window (babelfish/segmenter.py)
VOICED = 0.5  # a window at or above this counts as voiced for the statistics (Silero's own default threshold)
# Babble: the segmenter was unsure and Whisper too.
WEAK_VOICING = 0.9
NO_SPEECH_WITH_WEAK_VOICING = 0.2
# Babble Silero believes: seconds of voice, few words in it, and Whisper doubting it is speech. Only for voiced time
# this long: a one-word turn ("Yes.") has few syllables for its voiced time too (2.2 a second, measured).
SPARSE_MIN_VOICED_SECONDS = 1.5
SPARSE_SYLLABLES_PER_SECOND = 3.5
NO_SPEECH_WITH_SPARSE_WORDS = 0.35
# One voice near the microphone over a crowd: the segmenter counts the crowd around a short reply as voice too, so
# the reply seems weakly voiced or sparse in words. Its loud part gives it away: brief (replies kept 0.08-0.40 of the
# voiced windows, babble of 2-4 voices 0.41 and up, of 6-16 voices 0.67 and up), and surely speech (those replies
# 0.92-1.00: a loud sound Silero doubts gets no exemption).
NEAR_VOICE_SHARE = 0.4
NEAR_VOICE_CONFIDENCE = 0.9
LOUD_DB = 6.0  # the loud part: windows this close to the loud end (the 95th percentile)
# A crowd: a steady level over seconds of voice, with Whisper doubting speech.
STEADY_MIN_VOICED_SECONDS = 1.5
STEADY_LEVEL_DB = 8.5
# A LibriVox sentence read over six voices at 0 dB SNR measured 7.7 dB at no-speech 0.26; the babble caught, 0.45
# and up.
NO_SPEECH_WITH_STEADY_LEVEL = 0.4
# A sound, not a voice: weakly voiced, and the segmenter doubts its loudest windows most (speech that passed with weak
# voicing 0.81 and up; sneezes and screams that passed 0.30-0.64), unless Whisper is sure of speech.
LOUD_DOUBT = 0.7
WHISPER_SURE_NO_SPEECH = 0.1
WHISPER_SURE_LOGPROB = -1.0
# A segment whose loudness spreads this far is no crowd's of six or more voices alone (3.5-11.9 dB measured; two to
# four voices spread up to 26 dB, one voice in a quiet room 12.8-38; a cough, sneeze, laugh or scream beside a reply
# over six voices, rejected for how it sounds: 5-30, 80% of them 15 or more at 10 dB SNR, half at 5 dB): only then is
# a rejected segment's sure part tried.
QUIET_ROOM_SPREAD_DB = 15.0
# The rejections a sound beside a reply can cause: the reply may be read alone (`sure_part`).
WEAK_VOICING_RULE = "weak voicing"
SOUND_RULE = "a sound, not a voice"
SOUNDED = (WEAK_VOICING_RULE, SOUND_RULE)
# The sure part: at least this many voiced windows, or sure ones where the voice runs together (160 ms: the
# segmenter's shortest speech, `vad_min_speech_ms`); as many must be left out where it runs together.
SURE_MIN_WINDOWS = 5
SURE_BRIDGE = 3  # windows: a dip this short within a word does not split its run of voiced windows
# Windows of the audio kept on each side of the sure part. In a quiet room the pad stops before any voiced window left
# out; where the voice runs together, every window around it is voiced, so the full pad is kept.
SURE_PAD = 4
# Laughter as Whisper writes it: one syllable repeated, the same vowel each time ("hahaha", "hihi", "хаха", "哈哈"; not
# German "hohe", "high"). "jaja" only where Spanish spells laughter so (in German "jaja" is "yeah, yeah"); "ha", "hah",
# "heh" only as a whole turn (in Spanish and Italian "ha" is "has"); "huhu" is a German call.
_LAUGH = re.compile(
    r"a?h([aeio])(?:h\1)+h?|х([аеи])(?:х\2)+|(?:χα){2,}"  # Latin, Cyrillic, Greek
    r"|[哈呵嘿]{2,}|[はハへヘふフ]{2,}|[하허히]{2,}|ㅋ{2,}"  # Chinese, Japanese, Korean
)
_LAUGH_J = re.compile(r"a?j([aei])(?:j\1)+")
_LAUGH_J_LANGUAGES = ("es", "ca", "gl")
_LAUGH_ALONE = re.compile(r"hah?|heh")
# A sneeze as Whisper may write it (one got through so: a French "Tchou!", docs/benchmarks.md): en "achoo",
# "atishoo", fr "atchoum", de "hatschi", es "achís", "achús", it "etciù", pt "atchim", ca "atxim". Not "chou" (cabbage),
# "chi" (who), "ach", nor Mexican "achis" (an interjection: the sneeze takes the accent). "Ah… ah…" before it winds up.
_SNEEZE = re.compile(r"a+h?t?choo+|atishoo+|a?tchoum?|hatsch(?:i+e?|u+)|at?ch(?:ís|úd?s?)|e[tc]ci[ùu]|atchi[mn]|atxim")
_WIND_UP = re.compile(r"a+h*")
_MARKS = re.compile(r"[!.?…,;:¡¿]")  # a written sneeze stands apart from words: "Atchoum ! Pardon.", not "fait tchou"
_WORD = re.compile(r"\w+(?:-\w+)*")  # "ha-ha" is one laugh
_SEPARATORS = " \t,;:、，-–—"  # between a turn's words and the laughter left out
# Whisper's own fallback rules (openai/whisper transcribe.py), for when the segmenter's view is missing or agrees.
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
LOGPROB_FLOOR = -2.0


@dataclass(frozen=True)
class LoudPart:
    """The windows within LOUD_DB of an utterance's loud end: where the voice nearest the microphone is."""

    share: float  # loud windows (voiced or not) per voiced window: over 1 when much of the loud part is unvoiced
    confidence: float  # mean speech probability over the loud windows


@dataclass(frozen=True)
class Voicing:
    """What the segmenter heard in one utterance."""

    confidence: float  # mean speech probability over the voiced windows
    voiced_seconds: float
    level_spread_db: float | None = None  # how far its loudness moves (`level_spread`); None: not measured
    loud: LoudPart | None = None  # its loudest windows (`loud_part`); None: not measured

    @classmethod
    def of(
        cls, speech_probs: np.ndarray | None, audio: np.ndarray | None = None, *, window: int = SEGMENTER_WINDOW
    ) -> Voicing | None:
        """`speech_probs`: one per `window` samples of `audio`, from its start (Utterance.speech_probs)."""
        if speech_probs is None or len(speech_probs) == 0:
            return None
        voiced = speech_probs[speech_probs >= VOICED]
        spread = level_spread(audio) if audio is not None else None
        loud = loud_part(audio, speech_probs, window) if audio is not None else None
        return cls(float(voiced.mean()) if len(voiced) else 0.0, len(voiced) * window / SAMPLE_RATE, spread, loud)


FRAME, HOP = 400, 160  # 25 ms frames every 10 ms, at 16 kHz
# Frames this far under the loud end (the 95th percentile) are left out: digital silence around a clip is no crowd's
# pause.
QUIET_DB = 40.0


def level_spread(audio: np.ndarray) -> float | None:
    """How far the loudness of the audio's 25 ms frames spreads: their 90th minus 10th percentile, in dB (None when
    shorter than a frame, or not finite)."""
    if len(audio) < FRAME:
        return None
    power = np.concatenate([[0.0], np.cumsum(np.square(audio, dtype=np.float64))])
    if not np.isfinite(power[-1]):
        return None
    starts = np.arange(0, len(audio) - FRAME + 1, HOP)
    db = 10 * np.log10((power[starts + FRAME] - power[starts]) / FRAME + 1e-12)
    db = db[db > np.percentile(db, 95) - QUIET_DB]
    return float(np.percentile(db, 90) - np.percentile(db, 10))


def window_db(audio: np.ndarray, n: int, window: int = SEGMENTER_WINDOW) -> np.ndarray:
    """The level of each of the first `n` windows of `audio`, in dB (full scale 1)."""
    return 10 * np.log10(np.mean(np.square(audio[: n * window].reshape(n, window), dtype=np.float64), axis=1) + 1e-12)


def loud_part(audio: np.ndarray, speech_probs: np.ndarray, window: int = SEGMENTER_WINDOW) -> LoudPart | None:
    """The segmenter's windows whose level is within LOUD_DB of the 95th percentile, against the voiced windows
    (None when no window is voiced or the audio is not finite). A last partial window has no probability."""
    n = min(len(speech_probs), len(audio) // window)
    probs = speech_probs[:n]
    voiced = int(np.count_nonzero(probs >= VOICED))
    if not voiced:
        return None
    db = window_db(audio, n, window)
    if not np.isfinite(db).all():
        return None
    loud = db >= np.percentile(db, 95) - LOUD_DB
    return LoudPart(float(np.count_nonzero(loud)) / voiced, float(probs[loud].mean()))


def is_speech(rec: Recognized, voicing: Voicing | None) -> bool:
    """False when the words are most likely Whisper's reading of noise."""
    return rejection(rec, voicing) is None


def rejection(rec: Recognized, voicing: Voicing | None) -> str | None:
    """Which rule takes the words for noise (None: speech); for the log and bench_nonspeech. Laughter and sneezes,
    judged by their words, are asked last: a segment the other rules reject for how it sounds may hold a reply beside
    the laugh (`sure_part`)."""
    why = _noise(rec, voicing)
    if why is None and laughter(rec.text, rec.language):
        return "laughter"
    if why is None and sneeze(rec.text, rec.language):
        return "a sneeze"
    return why


def _noise(rec: Recognized, voicing: Voicing | None) -> str | None:
    if rec.no_speech_prob > NO_SPEECH_THRESHOLD and rec.avg_logprob < LOGPROB_THRESHOLD:
        return "whisper"
    if voicing is not None and _doubted_sound(rec, voicing):
        return SOUND_RULE
    near = voicing is not None and _near_voice(voicing)
    # Both read the whole segment: around a near voice, that is mostly the crowd behind it.
    if voicing is not None and not near:
        if voicing.confidence < WEAK_VOICING and rec.no_speech_prob > NO_SPEECH_WITH_WEAK_VOICING:
            return WEAK_VOICING_RULE
        if _sparse(rec.text, voicing) and rec.no_speech_prob > NO_SPEECH_WITH_SPARSE_WORDS:
            return "few words for the voice"
    if voicing is not None and _steady(voicing) and rec.no_speech_prob > NO_SPEECH_WITH_STEADY_LEVEL:
        return "steady level"
    if rec.avg_logprob > LOGPROB_FLOOR:
        return None
    # A low score alone drops nothing both views are sure is speech: short turns ("Sure.", "Fail again.") scored
    # under the floor in the server (-2.0 to -2.2, no-speech 0.01-0.04, voiced confidence 0.98-0.99), while every
    # babble segment under it had a no-speech probability of 0.36 or more (docs/benchmarks.md). A near voice is as sure
    # as its loud part.
    sure = voicing is not None and (voicing.confidence >= WEAK_VOICING or near)
    return None if sure and rec.no_speech_prob <= NO_SPEECH_WITH_WEAK_VOICING else "low log-probability"


def laughter(text: str, language: str | None) -> bool:
    """Nothing but laughter ("Hahaha.", "Ha ha!", "¡Jajaja!" in Spanish): no words to translate. Never a question
    ("Ha?")."""
    words = _WORD.findall(text)
    return not _question(text) and bool(words) and all(_laughs(w, language, alone=True) for w in words)


def sneeze(text: str, language: str | None = None) -> bool:
    """Nothing but a sneeze as Whisper writes it ("Tchou!", "Ah... Ah... Achoo!"), maybe with a laugh ("Haha!
    Achoo!"). Never a question."""
    words = _WORD.findall(text)
    others = [w for w in words if not _sneezes(w)]
    wound_up = all(_WIND_UP.fullmatch(_plain(w)) or _laughs(w, language, True) for w in others)
    return not _question(text) and len(others) < len(words) and wound_up


def without_laughter(text: str, language: str | None) -> str:
    """`text` without the laughter before its first word and after its last ("Hahaha! Natürlich." → "Natürlich.",
    "Vraiment ? Haha !" → "Vraiment ?"); between words it stays. So is a sneeze as Whisper writes one, where a mark
    sets it apart ("Atchoum ! Pardon." → "Pardon."; not "Le train fait tchou tchou.")."""
    every = list(_WORD.finditer(text))
    sneezes = [_sneezes(m.group()) for m in every]
    gone = [_laughs(m.group(), language, alone=False) or s for m, s in zip(every, sneezes, strict=True)]
    lo, hi = 0, len(every) - 1
    while lo <= hi and gone[lo]:
        lo += 1
    while hi >= lo and gone[hi]:
        hi -= 1
    if lo > hi:
        return text  # nothing but laughter or sneezes: the whole turn is judged by `laughter` and `sneeze`
    while lo > 0 and sneezes[lo - 1] and not _MARKS.search(text, every[lo - 1].end(), every[lo].start()):
        lo -= 1
    while hi < len(every) - 1 and sneezes[hi + 1] and not _MARKS.search(text, every[hi].end(), every[hi + 1].start()):
        hi += 1
    if lo == 0 and hi == len(every) - 1:
        return text
    start = every[lo].start()
    floor = every[lo - 1].end() if lo else 0
    while start > floor and not text[start - 1].isspace() and not text[start - 1].isalnum():  # "¿", "¡", a quote
        start -= 1
    end = every[hi + 1].start() if hi + 1 < len(every) else len(text)
    return text[start:end].strip(_SEPARATORS) or text


def _question(text: str) -> bool:
    return "?" in text or "？" in text


def _plain(word: str) -> str:
    """A word as the laughter and sneeze patterns read it: "Ha-ha" → "haha"."""
    return word.lower().replace("-", "")


def _sneezes(word: str) -> bool:
    return _SNEEZE.fullmatch(_plain(word)) is not None


def _laughs(word: str, language: str | None, alone: bool) -> bool:
    w = _plain(word)
    return bool(
        _LAUGH.fullmatch(w)
        or (language in _LAUGH_J_LANGUAGES and _LAUGH_J.fullmatch(w))
        or (alone and _LAUGH_ALONE.fullmatch(w))
    )


def sure_part(speech_probs: np.ndarray, voicing: Voicing | None, rejected: str) -> tuple[int, int] | None:
    """Windows [start, end) of a segment's sure speech, with a short pad, when the rest of its voiced windows is what
    the segmenter doubted: a sound beside a reply. None unless the segment was `rejected` for how it sounds (SOUNDED),
    in a crowd with nothing loud over it (the loudness spread too narrow), when nothing in it is sure, or when the
    sure part is all of the voice.

    When a run of voiced windows stands apart as sure on average (a quiet room), the sure part spans such runs,
    padded short of the voiced windows left out (the sound). When none does, whatever the room, the voiced windows
    have run together: over a crowd the segmenter half believes every window, so the crowd, the sound and the reply
    make one run that is not sure on average. Then the sure part is the one stretch of sure windows it is surest of
    (`surest_stretch`), padded, and only if voiced windows are still left out. Over sounds beside short replies, with
    a crowd of three or six voices at 5 or 10 dB, the surest stretch was the reply's in 184 of the 185 segments where
    one of the stretches was (docs/benchmarks.md, "A sound beside a reply over a crowd"). Only short replies were
    measured so: a longer turn whose segment was rejected whole may come back as its surest words alone."""
    if rejected not in SOUNDED or voicing is None or voicing.level_spread_db is None:
        return None
    if voicing.level_spread_db < QUIET_ROOM_SPREAD_DB:
        return None
    voiced = np.flatnonzero(speech_probs >= VOICED)
    if len(voiced) < SURE_MIN_WINDOWS:
        return None
    sure = sure_runs(speech_probs, voiced)
    if not sure:
        return _surest_padded(speech_probs, voiced)
    first, last = int(sure[0][0]), int(sure[-1][-1]) + 1
    left_out = voiced[(voiced < first) | (voiced >= last)]
    if not len(left_out):
        return None
    before, after = left_out[left_out < first], left_out[left_out >= last]
    start = max(first - SURE_PAD, int(before[-1]) + 1 if len(before) else 0)
    end = min(last + SURE_PAD, int(after[0]) if len(after) else len(speech_probs))
    return start, end


def sure_runs(speech_probs: np.ndarray, windows: np.ndarray) -> list[np.ndarray]:
    """Runs of `windows` (indices), bridging short dips, long enough and surely speech on average."""
    breaks = np.flatnonzero(np.diff(windows) > SURE_BRIDGE + 1)
    runs = np.split(windows, breaks + 1)
    return [r for r in runs if len(r) >= SURE_MIN_WINDOWS and float(speech_probs[r].mean()) >= WEAK_VOICING]


def sure_stretches(speech_probs: np.ndarray) -> list[np.ndarray]:
    """Runs of sure windows (WEAK_VOICING and up), bridging short dips, at least SURE_MIN_WINDOWS long."""
    return sure_runs(speech_probs, np.flatnonzero(speech_probs >= WEAK_VOICING))


def surest_stretch(speech_probs: np.ndarray, stretches: list[np.ndarray]) -> np.ndarray | None:
    """The stretch whose sure windows are surest speech on average (dips left out)."""
    return max(stretches, key=lambda r: float(speech_probs[r].mean()), default=None)


def _surest_padded(speech_probs: np.ndarray, voiced: np.ndarray) -> tuple[int, int] | None:
    """`sure_part` where the voiced windows run together."""
    stretches = sure_stretches(speech_probs)
    surest = surest_stretch(speech_probs, stretches)
    if surest is None:
        return None
    # The pad goes into the windows around it, mostly the crowd's: they are voiced too, so nothing marks where a sound
    # begins (one within SURE_PAD of the reply is read with it). It never reaches another sure stretch: those lie more
    # than SURE_BRIDGE windows away.
    start, end = max(int(surest[0]) - SURE_PAD, 0), min(int(surest[-1]) + 1 + SURE_PAD, len(speech_probs))
    # What is read again must leave something out, or it is the whole voice read twice.
    if np.count_nonzero((voiced < start) | (voiced >= end)) < SURE_MIN_WINDOWS:
        return None
    return start, end


def _doubted_sound(rec: Recognized, voicing: Voicing) -> bool:
    """Weakly voiced, and least surely speech where it is loudest: a sneeze or a scream, not a voice (unless Whisper
    is sure of speech)."""
    loud = voicing.loud
    if loud is None or voicing.confidence >= WEAK_VOICING or loud.confidence >= LOUD_DOUBT:
        return False
    return not (rec.no_speech_prob <= WHISPER_SURE_NO_SPEECH and rec.avg_logprob >= WHISPER_SURE_LOGPROB)


def _sparse(text: str, voicing: Voicing) -> bool:
    """Few words for a long stretch of voice (never said of a script whose syllables are only guessed)."""
    seconds = voicing.voiced_seconds
    if seconds < SPARSE_MIN_VOICED_SECONDS or not counts_script(text):
        return False
    return syllables(text) < SPARSE_SYLLABLES_PER_SECOND * seconds


def _steady(voicing: Voicing) -> bool:
    """A level that hardly moves over a long stretch of voice: many voices at once."""
    spread = voicing.level_spread_db
    return voicing.voiced_seconds >= STEADY_MIN_VOICED_SECONDS and spread is not None and spread < STEADY_LEVEL_DB


def _near_voice(voicing: Voicing) -> bool:
    """One voice near the microphone over others: its loud part is brief against the voiced time, and sure speech."""
    loud = voicing.loud
    return loud is not None and loud.share <= NEAR_VOICE_SHARE and loud.confidence >= NEAR_VOICE_CONFIDENCE
