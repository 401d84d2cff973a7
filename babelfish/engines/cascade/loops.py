"""Decoder loops: is a repeated phrase something the speaker said, or Whisper repeating itself?

A repetition alone proves nothing: people do say "No, no, no!" and "Yes yes yes." A decoder loop shows in the
length: the text holds more syllables than the voiced audio could carry at any human speech rate, or the decoder
never ended and ran to its length cap. Only then is the phrase cut to one copy (and counted in /metrics); a repetition
that fits the audio is kept as said.

Measured (docs/benchmarks.md, "Repetitions said vs decoder loops"): real speech, Pico and LibriVox, short turns and
read sentences, comes out at 2–8 syllables per voiced second; the loops Whisper base made on short clips at 20–50.
"""

from __future__ import annotations

import re
import unicodedata

# Syllables per voiced second that no speaker reaches: fast read speech measures ~7 here (the VAD's voiced time
# includes its own hangover, which lowers the figure); loops measure 20 and more.
MAX_SYLLABLES_PER_SECOND = 12.0

_VOWELS = re.compile(r"[aeiouyæøœɛɔəɪʊ]+|[аеёиоуыэюяіїє]+|[αεηιουω]+")
# Scripts written a syllable per character: CJK ideographs, kana, Hangul.
_SYLLABIC = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def _word(token: str) -> str:
    return "".join(ch for ch in token.lower() if ch.isalnum())


def syllables(text: str) -> int:
    """A rough syllable count, generous rather than short: vowel groups in alphabetic words (accents stripped),
    one per character in syllabic scripts, one per digit, and about one per two letters in scripts without written
    vowels (where none of the above applies)."""
    total = 0
    for token in text.split():
        word = _word(unicodedata.normalize("NFD", token))  # accents apart (é → e + a mark _word drops)
        if not word:
            continue
        # Syllabic characters are counted before NFD, which would split a Hangul syllable into its letters.
        count = len(_SYLLABIC.findall(token)) + len(_VOWELS.findall(word)) + sum(ch.isdigit() for ch in word)
        total += count or max(1, len(word) // 2)
    return total


def _cut_copy(rest: list[str], unit: list[str]) -> bool:
    """`rest` is the start of `unit`, its last word possibly cut short."""
    k = len(rest) - 1
    return rest[:k] == unit[:k] and unit[k].startswith(rest[k])


def collapse_loop(text: str) -> tuple[str, bool]:
    """`text` with a repeated phrase cut down to one copy, and whether there was one.

    A repeated phrase is one said three times or more in a row, or twice and then cut off inside a third copy (a
    decoder that hit its length cap mid-phrase). Words compare without case and punctuation. A phrase twice and
    ended cleanly ("Bye. Bye.") does not count. Whether to cut is `repair_loop`'s decision.
    """
    tokens = text.split()
    words = [_word(t) for t in tokens]
    n = len(words)
    for start in range(n):
        for size in range(1, (n - start) // 2 + 1):
            unit = words[start : start + size]
            copies, end = 1, start + size
            while words[end : end + size] == unit:
                copies, end = copies + 1, end + size
            rest = words[end:]
            cut_inside = copies >= 2 and 0 < len(rest) <= size and _cut_copy(rest, unit)
            if copies >= 3 or cut_inside:
                kept = tokens[: start + size]
                # Drop what a cut-off copy left behind; keep any words after a clean run of copies.
                return " ".join(kept + ([] if cut_inside else tokens[end:])), True
    return text, False


def implausible(text: str, voiced_seconds: float) -> bool:
    """More syllables than `voiced_seconds` of speech can hold."""
    return syllables(text) > MAX_SYLLABLES_PER_SECOND * max(voiced_seconds, 0.0)


def repair_loop(text: str, voiced_seconds: float | None, capped: bool) -> tuple[str, bool]:
    """The text listeners get, and whether it was a decoder loop cut to one copy.

    `voiced_seconds`: how much of the audio was speech (the segmenter's voiced windows; the clip's length when
    unknown). `capped`: the decoder ran to its length cap instead of ending. A repeated phrase is a loop when the
    decode is capped or the text is implausible for the voiced time; otherwise it is what the speaker said.
    """
    collapsed, repeated = collapse_loop(text)
    if not repeated:
        return text, False
    if capped or voiced_seconds is None or implausible(text, voiced_seconds):
        return collapsed, True
    return text, False
