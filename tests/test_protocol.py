import pytest

from babelfish import languages
from babelfish.protocol import CLOSE_TOO_BIG, EndUtterance, Join, Ping, ProtocolError, parse_client_message


def parse(raw: str, limit: int = 4096):
    return parse_client_message(raw, limit)


def test_join_defaults():
    msg = parse('{"type": "join", "name": " Dan ", "language": "de"}')
    assert isinstance(msg, Join)
    assert (msg.name, msg.language, msg.room, msg.sample_rate, msg.audio) == ("Dan", "de", "main", 16000, True)


def test_other_messages():
    assert isinstance(parse('{"type": "end_utterance"}'), EndUtterance)
    assert parse('{"type": "ping", "id": 3}') == Ping(type="ping", id=3)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"name": "x"}', "bad_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "join", "name": "", "language": "de"}', "invalid_message"),
        ('{"type": "join", "name": "a", "language": "de", "room": "../etc"}', "invalid_message"),
        ('{"type": "join", "name": "a", "language": "de", "sample_rate": "fast"}', "invalid_message"),
        ('{"type": "end_utterance", "extra": 1}', "invalid_message"),
    ],
)
def test_bad_messages_have_codes(raw, code):
    with pytest.raises(ProtocolError) as info:
        parse(raw)
    assert info.value.code == code
    assert info.value.message


def test_oversized_message_closes():
    with pytest.raises(ProtocolError) as info:
        parse('{"type": "ping", "id": "' + "x" * 5000 + '"}')
    assert (info.value.code, info.value.close_code) == ("message_too_large", CLOSE_TOO_BIG)


@pytest.mark.parametrize(
    ("tag", "code"), [("pt-BR", "pt"), ("por", "pt"), ("de", "de"), ("deu", "de"), ("AUTO", "auto")]
)
def test_language_tags(tag, code):
    assert languages.canonical(tag) == code


@pytest.mark.parametrize("tag", ["xx", "123", "mul", "und", "qaa", "a_b_c_d"])
def test_tags_that_name_no_language(tag):
    with pytest.raises(languages.UnknownLanguage):
        languages.canonical(tag)
    assert languages.try_canonical(tag) is None


def test_language_resolve_rejects_unknown():
    with pytest.raises(languages.UnknownLanguage):
        languages.resolve("xx", {"en", "de"})
    with pytest.raises(languages.UnknownLanguage):
        languages.resolve("", {"en"})
    assert languages.resolve("en-GB", {"en"}) == "en"


def test_language_table_says_what_a_listener_gets():
    from babelfish.engines.base import LanguageSupport

    rows = languages.table(
        [
            LanguageSupport("de", True, False, True, {"asr": "faster-whisper", "mt": "phrasebook", "tts": "pico"}),
            LanguageSupport("it", True, True, True, {"mt": "apertium", "tts": "pico"}),
            LanguageSupport("ca", False, True, False, {"mt": "apertium"}),
            LanguageSupport("la", True, False, False, {"asr": "faster-whisper"}),
        ]
    )
    said = {r["code"]: r["listener"] for r in rows}
    assert said["la"].startswith("No translation into it")
    # German with the cascade's phrasebook and no route into it: set phrases only.
    assert said["de"].startswith("Only set phrases (greetings, thanks, yes and no) are translated into it")
    assert said["it"] == "Translations as text (apertium), spoken by pico."
    assert said["ca"] == "Translations as text (apertium), not spoken (no voice for it)."


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("[" * 1000 + "]" * 1000, "bad_json"),  # a depth bomb: a clear error, not a RecursionError
        ('{"type": "ping", "id": ' + "[" * 500 + "]" * 500 + "}", "invalid_message"),
        ('{"type": "join", "name": "a", "language": "de", "sample_rate": "16000"}', "invalid_message"),
        ('{"type": "join", "name": "a", "language": "de", "sample_rate": 16000.0}', "invalid_message"),
        ('{"type": "join", "name": "a", "language": "de", "audio": "yes"}', "invalid_message"),
        ('{"type": "join", "name": "a", "language": "de", "audio": 1}', "invalid_message"),
        ('{"type": "join", "name": 7, "language": "de"}', "invalid_message"),
        ('{"type": "join", "name": "\\ud800", "language": "de"}', "invalid_message"),
        ('{"type": "ping", "id": true}', "invalid_message"),
        ('{"type": ["ping"]}', "invalid_message"),
        ('{"type": 5}', "unknown_type"),
    ],
    ids=lambda v: v[:40],
)
def test_strict_edge(raw, code):
    with pytest.raises(ProtocolError) as info:
        parse(raw)
    assert info.value.code == code and info.value.close_code is None
    assert len(info.value.message) < 200
