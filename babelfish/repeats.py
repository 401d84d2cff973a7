"""Words as a listener compares two transcripts, and phrases said twice in a row.

A beam search may say a short phrase twice ("Good morning. Good morning." for a padded "Good morning."): revisions
(babelfish/revisions.py) and the cascade's first pass (engines/cascade/asr.py) both check for it.
"""

from __future__ import annotations

import re


def words(text: str) -> list[str]:
    """The words of `text`, lower-cased, without punctuation: what makes two transcripts differ for a listener."""
    return re.findall(r"\w+(?:['’]\w+)*", text.lower())


def doubled(ws: list[str]) -> int:
    """How many times a phrase (1 to 6 words) comes twice in a row in `ws`."""
    count, i = 0, 0
    while i < len(ws):
        for n in range(min(6, (len(ws) - i) // 2), 0, -1):
            if ws[i : i + n] == ws[i + n : i + 2 * n]:
                count, i = count + 1, i + n - 1
                break
        i += 1
    return count


def once(ws: list[str]) -> list[str]:
    """`ws` with every phrase (1 to 6 words) that comes twice in a row kept once (the phrases `doubled` counts)."""
    out, i = [], 0
    while i < len(ws):
        for n in range(min(6, (len(ws) - i) // 2), 0, -1):
            if ws[i : i + n] == ws[i + n : i + 2 * n]:
                i += n  # skip the first copy; the second is kept below
                break
        out.append(ws[i])
        i += 1
    return out


def doubled_at_end(ws: list[str]) -> bool:
    """Whether `ws` ends with a phrase (1 to 6 words) said twice in a row: how a beam's extra copy shows (a doubled
    phrase inside a sentence is language, "nous nous sommes", "had had")."""
    return any(ws[-2 * n : -n] == ws[-n:] for n in range(1, min(6, len(ws) // 2) + 1))
