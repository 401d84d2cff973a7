"""What a neural translation model is handed and what comes back (babelfish/engines/cascade/sentence_form.py), with
a model that answers from a table and records what it was given."""

from __future__ import annotations

import pytest

from babelfish.engines.cascade.sentence_form import padded, said_twice, translate_sentence, without_new_repeats


class Model:
    """Answers from a table (the text it is given → its translation) and keeps what it was given."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.given: list[str] = []

    def __call__(self, text: str) -> str:
        self.given.append(text)
        return self.answers[text]


@pytest.mark.parametrize(
    ("text", "given", "answer", "back"),
    [
        ("sí", "Sí.", "Yes.", "Yes"),  # a bare turn as Whisper writes it: a sentence in, no full stop added back
        ("Sí.", "Sí.", "Yes.", "Yes."),
        ("Bom dia,", "Bom dia.", "Good morning.", "Good morning,"),  # a partial's prefix cut at a comma
        ("Bom dia.,", "Bom dia.", "Good morning.", "Good morning.,"),
        ("Good morning. How", "Good morning. How.", "Bom dia. Como.", "Bom dia. Como"),
        ("¿de verdad?", "¿De verdad?", "Really?", "Really?"),  # the capital goes on the first letter
        ("«oui»", "«Oui».", "“Yes”.", "“Yes”"),
        ("et cetera", "Et cetera.", "Etc...", "Etc..."),  # an ellipsis is the model's own, not the full stop
        ("Sim, sim", "Sim, sim.", "Yes, yes.", "Yes, yes"),  # repeated by the speaker: kept
    ],
)
def test_a_sentence_goes_in_and_the_added_stop_comes_off(text: str, given: str, answer: str, back: str):
    model = Model({given: answer})
    assert translate_sentence(model, text) == back
    assert model.given == [given]


@pytest.mark.parametrize(
    ("text", "given", "answer", "back"),
    [
        ("sim", "Sim.", "Yes Yes.", "Yes"),
        ("Me.", "Me.", "Me. Me.", "Me."),
        ("Bom dia,", "Bom dia.", "Good morning, good morning.", "Good morning,"),
        ("Sim, sim", "Sim, sim.", "Yes, yes, yes.", "Yes, yes"),  # said twice, made thrice: once is dropped
        ("Um café com leite,", "Um café com leite.", "A coffee a coffee with milk.", "A coffee with milk,"),
        ("Sí, sí. Me.", "Sí, sí. Me.", "Yes, yes. Me. Me.", "Yes, yes. Me."),  # the loop goes, not the speaker's
    ],
)
def test_a_repeat_the_model_made_up_is_kept_once(text: str, given: str, answer: str, back: str):
    assert translate_sentence(Model({given: answer}), text) == back


@pytest.mark.parametrize("text", ["", "  ", ",", " ... "])
def test_text_without_words_is_not_translated(text: str):
    model = Model({})
    assert translate_sentence(model, text) == text.strip()
    assert model.given == []


def test_an_answer_without_words_is_nothing():
    assert translate_sentence(Model({"Hmm.": "."}), "hmm,") == ""


@pytest.mark.parametrize(
    "text",
    [
        "O que ela disse? Ela disse que não.",  # a phrase ending one sentence and beginning the next
        "I think so. So do I.",
        "It was so-so, a pisca-pisca.",  # one word each
        "Room 10 10.",
    ],
)
def test_what_is_not_a_repeat(text: str):
    assert said_twice(text) == []
    assert without_new_repeats(text, "x") == text


def test_repeats_are_counted_against_the_source():
    assert len(said_twice("Me. Me.")) == 1  # whole sentences
    assert without_new_repeats("Nous nous voyons", "Nos nos vemos") == "Nous nous voyons"  # the source has one too
    assert without_new_repeats("Yes, yes", "Sí, sí") == "Yes, yes"
    assert without_new_repeats("Thanks a thousand thousand times", "Grazie mille") == "Thanks a thousand times"
    assert without_new_repeats("a b a b a b", "x") == "a b"
    # The price: a repeat that is grammar in the target but not in the source goes too (the tense, not the sense).
    assert without_new_repeats("We had had enough.", "Tínhamos tido o bastante.") == "We had enough."


@pytest.mark.parametrize(
    ("text", "out", "is_padded"),
    [
        ("Graças.", "Thanks for the s.", True),
        ("Thank you.", "Obrigado por enviar uma edição.", True),
        ("Bem-vindo.", "Welcome to the blog.", True),  # a hyphenated word is one
        ("Quiçá.", "I wanted to do it.", True),
        ("Não sei.", "I do not know.", False),  # English's own extra words
        ("Onde vives?", "Where do you live?", False),
        ("Boa sorte.", "Good luck to you.", False),
        ("Sim.", "Yes, of course.", False),
        ("Muito obrigado, Ana.", "Thank you very much, Ana, for everything.", False),  # three words: a sentence
        ("", "Something made up here.", False),
        ("Às 14h30.", "At 2:30 p.m.", False),  # a time is written with more words, not made up
    ],
)
def test_a_short_text_padded_into_a_sentence(text: str, out: str, is_padded: bool):
    assert padded(text, out) is is_padded
