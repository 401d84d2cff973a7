"""What a neural translation model is handed and what comes back (babelfish/engines/cascade/sentence_form.py), with
a fake model that records what it was given."""

from __future__ import annotations

import pytest

from babelfish.engines.cascade.sentence_form import translate_sentence, without_new_repeats


class Model:
    """Answers from a table (the text it is given → its translation) and keeps what it was given."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers, self.given = answers, []

    def __call__(self, text: str) -> str:
        self.given.append(text)
        return self.answers[text]


@pytest.mark.parametrize(
    ("text", "given", "answer", "back"),
    [
        ("sí", "Sí.", "Yes.", "yes"),  # a bare turn as Whisper writes it: a sentence in, the bare form back
        ("Sí.", "Sí.", "Yes.", "Yes."),
        ("Bom dia,", "Bom dia.", "Good morning.", "Good morning,"),  # a partial's prefix cut at a comma
        ("Good morning. How", "Good morning. How.", "Bom dia. Como.", "Bom dia. Como"),
        ("¿De verdad?", "¿De verdad?", "Really?", "Really?"),
        ("«Oui»", "«Oui».", "“Yes”.", "“Yes”"),
        ("et cetera", "Et cetera.", "Etc...", "etc..."),  # an ellipsis is the model's own, not the full stop
        ("ich weiß", "Ich weiß.", "I know.", "I know"),  # "I" keeps its capital
        ("Sim, sim", "Sim, sim.", "Yes, yes.", "Yes, yes"),  # repeated by the speaker: kept
    ],
)
def test_a_sentence_goes_in_and_the_text_s_form_comes_back(text: str, given: str, answer: str, back: str):
    model = Model({given: answer})
    assert translate_sentence(model, text) == back
    assert model.given == [given]


@pytest.mark.parametrize(
    ("text", "answer", "back"),
    [
        ("sim", "Yes Yes.", "yes"),
        ("Me.", "Me. Me.", "Me."),
        ("Bom dia,", "Good morning, good morning.", "Good morning,"),
        ("Sim, sim", "Yes, yes, yes.", "Yes, yes"),  # said twice, made thrice: once is dropped
        ("Un café au lait,", "A coffee a coffee with milk.", "A coffee with milk,"),
    ],
)
def test_a_repeat_the_model_made_up_is_kept_once(text: str, answer: str, back: str):
    model = Model({translate_input(text): answer})
    assert translate_sentence(model, text) == back


def translate_input(text: str) -> str:
    """What translate_sentence hands the model for these cases (checked above)."""
    body = text.rstrip(",")
    return body[:1].upper() + body[1:] + ("" if body.endswith(".") else ".")


@pytest.mark.parametrize("text", ["", "  ", ",", " ... "])
def test_text_without_words_is_not_translated(text: str):
    model = Model({})
    assert translate_sentence(model, text) == text.strip()
    assert model.given == []


def test_repeats_are_counted_against_the_source():
    # The price: a repeat that is grammar in the target but not in the source goes too (the tense, not the sense).
    assert without_new_repeats("had had enough", "tinha tido o bastante") == "had enough"
    assert without_new_repeats("Nous nous voyons", "Nos nos vemos") == "Nous nous voyons"  # the source has it too
    assert without_new_repeats("Yes, yes", "Sí, sí") == "Yes, yes"
    assert without_new_repeats("Thanks a thousand thousand times", "Grazie mille") == "Thanks a thousand times"
    assert without_new_repeats("a b a b a b", "x") == "a b"
