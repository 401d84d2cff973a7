"""Decoder loops: is a repeated phrase something the speaker said, or Whisper repeating itself?

A repetition alone proves nothing: people do say "No, no, no!" and "Yes yes yes." A decoder loop shows in the
length: the text holds more syllables than the voiced audio could carry at any human speech rate, or the decoder
never ended and ran to its length cap. Only then is the phrase cut to one copy (and counted in /metrics); a repetition
that fits the audio is kept as said.

Measured (docs/benchmarks.md, "Repetitions said vs decoder loops"): real speech, Pico and LibriVox, short turns and
read sentences, comes out at 2–8 syllables per voiced second; the loops Whisper base made on short clips at 20–50.
A beam search stops at the same cap, but rarely loops to it: it ends after a second copy ("Good morning. Good
morning."), which the ASR checks against a greedy decode instead (asr.py, `WhisperAsr._careful`).
"""

from __future__ import annotations

import re
import unicodedata

# Syllables per voiced second that no speaker reaches: fast read speech measures ~7 here (the VAD's voiced time
# includes its own hangover, which lowers the figure); loops measure 20 and more.
MAX_SYLLABLES_PER_SECOND = 12.0
# Words of a second copy, cut off by the length cap, that show a decoder started over: fewer could be a sentence
# ending as an earlier phrase began ("… the house of the king and the end of the").
ONCE_CUT = 3

_VOWELS = re.compile(r"[aeiouyæøœɛɔəɪʊı]+|[аеёиоуыэюяіїєәөүұ]+|[αεηιουω]+")
# Scripts written a syllable per character: CJK ideographs (and 々, one repeated), kana, Hangul.
_SYLLABIC = re.compile(r"[\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
# Abugidas of South Asia, Devanagari to Sinhala: a letter is a consonant with its inherent vowel or a vowel of its own;
# vowel signs (marks) only change that vowel, and a virama takes it away.
_ABUGIDA = re.compile(r"[\u0900-\u0dff]")
_VIRAMA, _NUKTA = 9, 7  # canonical combining classes (a nukta sits between a consonant and its virama)
# Abjads: Hebrew and Arabic write consonants; short vowels are unwritten (or marks), long ones are these letters.
_ABJAD = re.compile(r"[\u0590-\u05ff\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff]")
# Long vowels (ة: a word's final -a; Persian and Urdu ی ے; Urdu's nasal ں), and a Hebrew final ה (below).
_VOWEL_LETTERS = frozenset("اىويةیےںאוי")
_ALPHABETS = frozenset({"LATIN", "CYRILLIC", "GREEK"})  # scripts _VOWELS covers


def _word(token: str) -> str:
    """Letters and digits of `token`, lower case, with their marks: Indic vowel signs and viramas are marks, and
    words differing only in them are different words ("हाँ हो है": yes, be, is)."""
    return "".join(ch for ch in token.lower() if ch.isalnum() or unicodedata.category(ch)[0] == "M")


def _abugida_syllables(word: str) -> int:
    """Letters of an Indic script not silenced by a virama (schwa dropped in speech still counts: generous)."""
    chars = [ch for ch in word if unicodedata.combining(ch) != _NUKTA]
    return sum(
        1
        for i, ch in enumerate(chars)
        if _ABUGIDA.match(ch)
        and unicodedata.category(ch) == "Lo"
        and not (i + 1 < len(chars) and unicodedata.combining(chars[i + 1]) == _VIRAMA)
    )


def _abjad_syllables(word: str) -> int:
    """Consonant letters of Arabic and Hebrew: each opens a syllable or closes one (generous). A vowel letter counts
    only first in a word, where it is a consonant (hamza, wa-, ya-)."""
    letters = [ch for ch in word if _ABJAD.match(ch) and unicodedata.category(ch) == "Lo"]  # not the tatweel (Lm)
    last = len(letters) - 1
    return sum(1 for i, ch in enumerate(letters) if i == 0 or not (ch in _VOWEL_LETTERS or (ch == "ה" and i == last)))


def syllables(text: str) -> int:
    """A rough syllable count, generous rather than short: vowel groups in alphabetic words (accents stripped),
    one per character in syllabic scripts, one per digit, letters not silenced by a virama in Indic scripts,
    consonant letters in Arabic and Hebrew, and about one per two letters in other scripts (`counts_script`)."""
    total = 0
    for token in text.split():
        word = _word(unicodedata.normalize("NFD", token))  # accents apart (é → e + a mark)
        bare = "".join(ch for ch in word if unicodedata.category(ch)[0] != "M")
        if not bare:
            continue
        # Syllabic characters are counted before NFD, which would split a Hangul syllable into its letters.
        count = (
            len(_SYLLABIC.findall(token))
            + len(_VOWELS.findall(bare))
            + sum(ch.isdigit() for ch in bare)
            + _abugida_syllables(word)
            + _abjad_syllables(bare)
        )
        total += count or max(1, len(bare) // 2)
    return total


def counts_script(text: str) -> bool:
    """Whether `syllables` counts every letter of `text` by its script's rules (not by word length): Latin,
    Cyrillic, Greek, CJK, kana, Hangul, the Indic abugidas, Arabic, Hebrew. Rules that take few syllables for
    babble must not judge other scripts (Thai, Georgian, Ethiopic...) on a guess."""
    for ch in text:  # precomposed letters are named for their script too ("LATIN SMALL LETTER E WITH ACUTE")
        if not ch.isalpha() or _SYLLABIC.match(ch) or _ABUGIDA.match(ch) or _ABJAD.match(ch):
            continue
        if unicodedata.name(ch, "").split(" ", 1)[0] not in _ALPHABETS:
            return False
    return True


def _cut_copy(rest: list[str], unit: list[str]) -> bool:
    """`rest` is the start of `unit`, its last word possibly cut short."""
    k = len(rest) - 1
    return rest[:k] == unit[:k] and unit[k].startswith(rest[k])


def collapse_loop(text: str, capped: bool = False) -> tuple[str, bool]:
    """`text` with a repeated phrase cut down to one copy, and whether there was one.

    A repeated phrase is one said three times or more in a row, or twice and then cut off inside a third copy (a
    decoder that hit its length cap mid-phrase). Words compare without case and punctuation. A phrase twice and
    ended cleanly ("Bye. Bye.") does not count. `capped` (the decoder ran to its length cap): a phrase of ONCE_CUT
    words or more said twice, or (where nothing else repeats) once and then cut off ONCE_CUT words or more into a
    second copy, counts too: the decoder started over and never ended (a 7 s sentence, beam 5, on an AMD CPU's
    kernels: "… to do for them. And Mr. John Dashwood … to do for"). Whether to cut is `repair_loop`'s decision.
    """
    tokens = text.split()
    words = [_word(t) for t in tokens]
    for once in (False, True) if capped else (False,):
        for start in range(len(words)):
            left = len(words) - start
            # Once and then ONCE_CUT words of its copy: a phrase up to all but ONCE_CUT of what is left.
            for size in range(1, (left - ONCE_CUT if once else left // 2) + 1):
                kept = _loop_at(tokens, words, start, size, capped, once)
                if kept is None:
                    continue
                if capped and not kept.endswith(_SENTENCE_END):
                    # Read a word or more later, the same loop may keep its copy to a sentence's end: the decoder
                    # started over there ("them. And … for them. And … for" is "And … for them." twice).
                    for later in range(start + 1, start + size):
                        other = _loop_at(tokens, words, later, size, capped, once)
                        if other is None:
                            break
                        if other.endswith(_SENTENCE_END):
                            return other, True
                return kept, True
    return text, False


_SENTENCE_END = tuple(".?!…。？！")


def _loop_at(tokens: list[str], words: list[str], start: int, size: int, capped: bool, once: bool) -> str | None:
    """The text kept if the phrase of `size` words at `start` repeats as a loop (`collapse_loop`'s rules; `once`:
    the rule for a capped phrase once and then cut off in its copy), else None."""
    unit = words[start : start + size]
    copies, end = 1, start + size
    while words[end : end + size] == unit:
        copies, end = copies + 1, end + size
    rest = words[end:]
    if once:
        looped = cut_inside = copies == 1 and ONCE_CUT <= len(rest) <= size and _cut_copy(rest, unit)
    else:
        cut_inside = copies >= 2 and 0 < len(rest) <= size and _cut_copy(rest, unit)
        # Capped right after a second whole copy of a longer phrase: a loop too.
        looped = copies >= 3 or cut_inside or (capped and copies == 2 and not rest and size >= ONCE_CUT)
    if not looped:
        return None
    # Drop what a cut-off copy left behind; keep any words after a clean run of copies.
    return " ".join(tokens[: start + size] + ([] if cut_inside else tokens[end:]))


def implausible(text: str, voiced_seconds: float) -> bool:
    """More syllables than `voiced_seconds` of speech can hold."""
    return syllables(text) > MAX_SYLLABLES_PER_SECOND * max(voiced_seconds, 0.0)


def repair_loop(text: str, voiced_seconds: float | None, capped: bool) -> tuple[str, bool]:
    """The text listeners get, and whether it was a decoder loop cut to one copy.

    `voiced_seconds`: how much of the audio was speech (the segmenter's voiced windows; the clip's length when
    unknown). `capped`: the decoder ran to its length cap instead of ending. A repeated phrase is a loop when the
    decode is capped or the text is implausible for the voiced time; otherwise it is what the speaker said.
    """
    collapsed, repeated = collapse_loop(text, capped)
    if not repeated:
        return text, False
    if capped or voiced_seconds is None or implausible(text, voiced_seconds):
        return collapsed, True
    return text, False
