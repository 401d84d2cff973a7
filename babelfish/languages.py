"""Language codes: one canonical form for routing, names for people.

Clients may say `pt-BR`, `por` or `pt`; routing only cares about the base language, so all of
them become the shortest ISO 639 code (`pt`). `langcodes` does the parsing and the 639-3 mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict

import langcodes

from babelfish.engines.base import LanguageSupport

AUTO = "auto"
SKIP = frozenset({"piqd", "tlh", "qya", "sjn", "art"})  # constructed languages espeak-ng ships voices for


class UnknownLanguage(ValueError):
    pass


# Valid ISO 639 codes that name no single language (undetermined, several, none, missing); qaa-qtz are private use.
NOT_A_LANGUAGE = frozenset({"und", "mul", "zxx", "mis"})

# Codes the rest of the world writes differently from what macrolanguage folding gives: Whisper and most pickers
# say "no" for Norwegian (Bokmål), espeak-ng says "nb".
_ALIASES = {"nb": "no"}


def canonical(tag: str) -> str:
    """Return the canonical base-language code for a BCP-47 / ISO 639 tag; raise UnknownLanguage.

    Principal members fold into their macrolanguage (`cmn` → `zh`, `arb` → `ar`, `pes` → `fa`), so every engine and
    client agrees on one code per language.
    """
    raw = tag.strip().replace("_", "-")
    if not raw:
        raise UnknownLanguage("empty language tag")
    if raw.lower() == AUTO:
        return AUTO
    try:
        lang = langcodes.Language.get(raw).prefer_macrolanguage().language
    except (langcodes.tag_parser.LanguageTagError, ValueError) as exc:
        raise UnknownLanguage(f"{tag!r} is not a language tag") from exc
    if not lang or lang in NOT_A_LANGUAGE or "qaa" <= lang <= "qtz" or not langcodes.tag_is_valid(raw):
        raise UnknownLanguage(f"{tag!r} names no language")
    code = langcodes.standardize_tag(lang)
    return _ALIASES.get(code, code)


def try_canonical(tag: str) -> str | None:
    """`canonical`, or None for a tag that names no language (for engines reading model vocabularies)."""
    try:
        return canonical(tag)
    except (UnknownLanguage, LookupError):
        return None


def untranslatable(source: str, target: str, phrases: bool = False) -> str:
    """The notice a listener reads when no installed backend translates `source` into `target`; `phrases`: set
    phrases between them are translated all the same (the cascade engine's phrasebook)."""
    src, dst = english_name(source), english_name(target)
    only = ", only set phrases such as greetings and thanks" if phrases else ""
    return (
        f"This server cannot translate {src} into {dst}: no installed model covers it{only}. You see the original "
        "words; the server's administrator can add a model that does with "
        "`python -m babelfish fetch-models nllb-600m`."
    )


def nothing_translated(source: str, target: str) -> str:
    """The notice a listener reads when the translation of an utterance has no words (a lone clitic, "Ci")."""
    return f"These {english_name(source)} words have no {english_name(target)} translation on their own."


def english_name(code: str) -> str:
    if code == AUTO:
        return "Detect automatically"
    try:
        return langcodes.Language.get(code).display_name("en")
    except (langcodes.tag_parser.LanguageTagError, ValueError, LookupError):
        return code  # a name is for people; an odd code must never turn a notice into an error


def native_name(code: str) -> str:
    if code == AUTO:
        return "auto"
    try:
        return langcodes.Language.get(code).autonym()
    except LookupError:  # no autonym data for some rare languages
        return english_name(code)


def iso639_3(code: str) -> str | None:
    try:
        return langcodes.Language.get(code).to_alpha3()
    except LookupError:
        return None


def table(supports: Sequence[LanguageSupport]) -> list[dict[str, object]]:
    """The language table `/languages` and `welcome` serve, sorted by English name."""
    rows = []
    for s in supports:
        if not langcodes.tag_is_valid(s.code) or s.code in SKIP:
            continue  # e.g. espeak-ng's joke voices ("piqd", Klingon): not a language people pick
        row: dict[str, object] = asdict(s)
        row["name"] = english_name(s.code)
        row["native_name"] = native_name(s.code)
        row["iso639_3"] = iso639_3(s.code)
        row["listener"] = listener_gets(s)
        rows.append(row)
    rows.sort(key=lambda r: str(r["name"]))
    return rows


def listener_gets(s: LanguageSupport) -> str:
    """In plain words, what someone who picks this language receives from speakers of other languages."""
    if not s.text_out:
        if s.via.get("mt") == "phrasebook":
            return (
                "Only set phrases (greetings, thanks, yes and no) are translated into it on this server: anything "
                "else you get in the speaker's own words, with a notice."
            )
        return "No translation into it on this server: you get what others say in their own words, with a notice."
    via = f" ({s.via['mt']})" if s.via.get("mt") else ""
    if s.speech_out:
        voice = f", spoken by {s.via['tts']}" if s.via.get("tts") else ", spoken"
        return f"Translations as text{via}{voice}."
    return f"Translations as text{via}, not spoken (no voice for it)."


def resolve(tag: str, supported: Iterable[str]) -> str:
    """Canonicalise `tag` and check the engine knows it (auto is allowed when language id exists)."""
    code = canonical(tag)
    known = set(supported)
    if code not in known:
        raise UnknownLanguage(f"language {tag!r} is not supported by this server")
    return code
