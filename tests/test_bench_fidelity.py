"""bench_fidelity's scoring: phrases received again that were said once (what it must see to say "repeated 0"), and
which clips differ from the reference only in spelling."""

from __future__ import annotations

import pytest

from bench.bench_fidelity import repeats, spelled_alike, spoken
from tests.engines.cascade_audio import word_errors

SENTENCE = (  # a LibriVox sentence of 7 s
    "And Mr. John Dashwood had then leisure to consider how much there might be prudently in his power to do for them"
)


@pytest.mark.parametrize(
    ("received", "reference", "count"),
    [
        (SENTENCE, SENTENCE, 0),
        ("Good morning. Good morning.", "Good morning.", 1),  # a short phrase twice in a row
        ("No matter. No matter.", "No matter. No matter.", 0),  # said twice
        (f"{SENTENCE}. {SENTENCE[:-5]}", SENTENCE, 1),  # read, started over and cut off (dnnl-avx2, lv0870)
        (f"{SENTENCE}. {SENTENCE}.", f"{SENTENCE}. {SENTENCE}.", 0),
        ("Where shall we meet tomorrow at the station? Where shall we meet tomorrow at the",
         "Where shall we meet tomorrow at the station?", 1),
        ("Where shall we meet? Tomorrow at the station. Where shall", "Where shall we meet? Tomorrow at the station.",
         0),  # fewer than seven words again: a sentence may begin as another did
    ],
)  # fmt: skip
def test_repeats_counts_each_phrase_received_again(received: str, reference: str, count: int) -> None:
    assert repeats(received, reference) == count


@pytest.mark.parametrize(
    ("held", "reference", "alike"),
    [
        ("Dankeschön.", "Danke schön!", True),
        ("sì!", "si", True),
        ("A plus tard.", "à plus tard.", True),
        ("ofame", "o fame", True),
        ("Good morning to you two.", "Good morning to you too.", False),
        ("Hallu", "Hallo!", False),
        ("Danke.", "Danke schön!", False),  # a word missing is not spelling
        ("", "", True),
    ],
)
def test_spelled_alike_forgives_accents_and_spaces_only(held: str, reference: str, alike: bool) -> None:
    assert spelled_alike(held, reference) is alike


@pytest.mark.parametrize(
    ("text", "language", "said"),
    [
        ("10 of clothes", "en", "ten of clothes"),
        ("Go forward 10 meters.", "en", "go forward ten meters"),
        ("5, 5.", "en", "five five"),
        ("Wir treffen uns morgen um 9 Uhr am Bahnhof.", "de", "wir treffen uns morgen um neun uhr am bahnhof"),
        ("I will see you at the station at 5.", "en", "i will see you at the station at five"),
        ("Seven of clubs.", "en", "seven of clubs"),
    ],
)
def test_numbers_are_scored_as_the_words_said(text: str, language: str, said: str) -> None:
    assert word_errors(spoken(text, language), said) == (0, len(said.split()))


def test_a_number_said_twice_in_digits_is_no_repeat_of_its_words() -> None:
    assert repeats(spoken("5, 5.", "en"), spoken("Five five", "en")) == 0
    assert repeats(spoken("5, 5.", "en"), spoken("Five", "en")) == 1


def test_numbers_no_one_can_spell_keep_their_digits() -> None:
    assert spoken("12 of clubs", "auto") == "12 of clubs"  # no language num2words knows
    long = spoken("1" * 30, "es")  # a decoder loop's digits: spelled in runs num2words can say, no error
    assert long.strip() and not any(ch.isdigit() for ch in long)
