"""Fuzz the edge: ≥ 10 000 generated messages from one joined client, through the real app.

Every message has a known documented answer (an error code, a pong, or nothing); the fuzzer's connection stays open
throughout, the log has no traceback, and a speaker and a listener in the same room are served all along.
"""

from __future__ import annotations

import json
import logging
import random
import string
from collections.abc import Callable

import pytest

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.fake import FakeEngine
from tests.audio import silence
from tests.test_ws import join, receive_until, speak
from tests.wsclient import BoundedClient

MESSAGES = 10_000
BATCH = 250  # messages sent before their answers are read back
OPEN_ERRORS = {"bad_json", "bad_message", "invalid_message", "unknown_type", "already_joined", "bad_audio"}
Expect = str | None  # an error code, "pong:<id>", or None (no answer)


def _scalar(rng: random.Random) -> object:
    return rng.choice(
        [None, True, False, 0, -1, 2**70, 1.5, 1e308, "", "x" * rng.randint(1, 300), "16000", "\u00e9\u4e2d"]
    )


def _junk_text(rng: random.Random) -> str:
    alphabet = string.printable + '\u00e9\u4e2d\U0001f600\x00{}[]":,'
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))


def _generators() -> list[Callable[[random.Random, int], tuple[str | bytes, Expect]]]:
    def ping(rng: random.Random, i: int) -> tuple[str, Expect]:
        ident = rng.choice([i, f"p{i}", -i])
        return json.dumps({"type": "ping", "id": ident}), f"pong:{ident}"

    def truncated(rng: random.Random, i: int) -> tuple[str, Expect]:
        full = json.dumps({"type": "join", "name": "x" * rng.randint(1, 30), "language": "en"})
        return full[: rng.randint(1, len(full) - 1)], "bad_json"

    def junk(rng: random.Random, i: int) -> tuple[str, Expect]:
        text = _junk_text(rng)
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return text, "bad_json"
        if isinstance(value, dict) and "type" in value:  # vanishingly rare: fall back to a plain bad message
            return "[]", "bad_message"
        return text, "bad_message"

    def bomb(rng: random.Random, i: int) -> tuple[str, Expect]:
        if rng.random() < 0.5:
            n = rng.randint(1000, 2000)
            return "[" * n + "1" + "]" * n, "bad_json"  # deeper than the decoder goes
        n = rng.randint(2, 400)
        return '{"type":' * n + "1" + "}" * n, "invalid_message"  # "type" is an object

    def deep_field(rng: random.Random, i: int) -> tuple[str, Expect]:
        n = rng.randint(1, 400)
        return '{"type": "ping", "id": ' + "[" * n + "]" * n + "}", "invalid_message"

    def not_object(rng: random.Random, i: int) -> tuple[str, Expect]:
        return json.dumps(rng.choice([[1, 2], "join", 3, None, True, {"name": "x"}])), "bad_message"

    def unknown(rng: random.Random, i: int) -> tuple[str, Expect]:
        kind = rng.choice(["", "JOIN", " ping", "dance", "end-utterance", "x" * 100, 5, None, 1.5, False])
        return json.dumps({"type": kind}), "unknown_type"

    def wrong_field(rng: random.Random, i: int) -> tuple[str, Expect]:
        base: dict[str, object] = rng.choice(
            [
                {"type": "join", "name": "A", "language": "en"},
                {"type": "ping"},
                {"type": "end_utterance"},
            ]
        )
        field = rng.choice(["sample_rate", "audio", "name", "room", "language", "extra", "id"])
        value = _scalar(rng)
        message = {**base, field: value}
        return json.dumps(message), _expected(base["type"], field, value)

    def again(rng: random.Random, i: int) -> tuple[str, Expect]:
        return json.dumps({"type": "join", "name": "Again", "language": rng.choice(["en", "de"])}), "already_joined"

    def odd_audio(rng: random.Random, i: int) -> tuple[bytes, Expect]:
        return rng.randbytes(rng.randrange(1, 2000, 2)), "bad_audio"

    def quiet_audio(rng: random.Random, i: int) -> tuple[bytes, Expect]:
        return silence(rng.choice([0.01, 0.02, 0.04])), None

    def end(rng: random.Random, i: int) -> tuple[str, Expect]:
        return '{"type": "end_utterance"}', None

    return [
        ping,
        truncated,
        junk,
        bomb,
        deep_field,
        not_object,
        unknown,
        wrong_field,
        again,
        odd_audio,
        quiet_audio,
        end,
    ]


def _expected(kind: object, field: str, value: object) -> Expect:
    """The documented answer, after join, to a join/ping/end_utterance with `field` set to `value` (strict types)."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_text = isinstance(value, str) and value != ""
    if kind == "ping":
        valid = field == "id" and (value is None or is_int or isinstance(value, str))
        return f"pong:{value}" if valid else "invalid_message"
    if kind == "join":
        valid = {
            "sample_rate": is_int,  # any integer parses; the allowed rates are checked when joining
            "audio": isinstance(value, bool),
            "name": is_text,
            "language": is_text and len(str(value)) <= 35,
            "room": is_text and len(str(value)) <= 64,
        }.get(field, False)
        return "already_joined" if valid else "invalid_message"
    return "invalid_message"  # end_utterance takes no fields


def _answer(msg: dict[str, object]) -> str:
    return f"pong:{msg['id']}" if msg["type"] == "pong" else str(msg.get("code"))


@pytest.mark.timeout(300)
def test_fuzz_the_edge(tmp_path, speech_pcm, caplog):
    caplog.set_level(logging.WARNING)
    rng = random.Random(1234)
    gens = _generators()
    settings = Settings(data_dir=tmp_path, max_control_rate=1e6, control_burst=1e6)
    with (
        BoundedClient(create_app(settings, engine=FakeEngine())) as c,
        c.websocket_connect("/ws/client") as fuzzer,
        c.websocket_connect("/ws/client") as speaker,
        c.websocket_connect("/ws/client") as listener,
    ):
        join(fuzzer, "F", "en", audio=False)
        join(speaker, "S", "en")
        join(listener, "L", "de", audio=False)
        sent, answered, conversations = 0, 0, 0
        while sent < MESSAGES:
            expected: list[str] = []
            for _ in range(BATCH):
                raw, expect = rng.choice(gens)(rng, sent)
                fuzzer.send_bytes(raw) if isinstance(raw, bytes) else fuzzer.send_text(raw)
                sent += 1
                if expect is not None:
                    expected.append(expect)
            fuzzer.send_text(json.dumps({"type": "ping", "id": f"end{sent}"}))
            expected.append(f"pong:end{sent}")
            got = []
            while not got or got[-1] != f"pong:end{sent}":
                msg = fuzzer.receive_json()
                if msg["type"] in ("error", "pong"):
                    got.append(_answer(msg))
            assert got == expected
            answered += len(got)
            if sent % 2000 < BATCH:  # an honest conversation, served throughout
                speak(speaker, speech_pcm)
                mine = receive_until(speaker, "transcript")[-1]
                theirs = receive_until(listener, "translation")[-1]
                assert theirs["utterance_id"] == mine["utterance_id"] and theirs["language"] == "de"
                conversations += 1
    assert sent >= MESSAGES and conversations >= 5 and answered > MESSAGES // 2
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
