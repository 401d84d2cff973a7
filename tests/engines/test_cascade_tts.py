"""espeak-ng voices: every `language` line of a voice file counts, so `zh` and `no` (Whisper's codes) get speech."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from babelfish.engines.cascade.tts import Espeak, _voice_files


@pytest.fixture(scope="module")
def espeak() -> Iterator[Espeak]:
    tts = Espeak()
    yield tts
    tts.close()


def test_chinese_and_norwegian_have_a_voice(espeak: Espeak):
    langs = set(espeak.languages())
    assert {"zh", "no", "en", "pt"} <= langs
    assert not {"cmn", "nb"} & langs  # folded into zh / no: no duplicate rows in the language table
    pcm, rate = espeak.synthesize("你好，世界", "zh")
    assert rate > 0 and len(pcm) > rate  # well over half a second of 16-bit audio
    assert espeak.synthesize("God morgen", "no")[0]


def test_voice_choice_follows_espeak_priorities(tmp_path: Path):
    voices = {
        "cmn": "language cmn\nlanguage zh-cmn\nlanguage zh\n",
        "yue": "language yue\nlanguage zh-yue\nlanguage zh 8\n",
        "nb": "language nb\nlanguage no\n",
        "en-US": "language en-us 2\nlanguage en 3\n",
        "en": "language en-gb  2\nlanguage en 2\n",
        "ru": "language ru\n",
        "ru-LV": "language ru-lv 2\n",
        "hr": "language hr\nlanguage hbs\n",
        "sr": "language sr\n",
        "piqd": "name Klingon\nlanguage\n",  # a malformed line is skipped, not fatal
    }
    for name, text in voices.items():
        (tmp_path / name).write_text(f"name {name}\n{text}")
    got = _voice_files(tmp_path)
    assert got["zh"] == "cmn" and got["yue"] == "yue" and got["no"] == "nb"
    assert got["en"] == "en" and got["ru"] == "ru" and got["sr"] == "sr" and got["hr"] == "hr"
    assert "cmn" not in got and "nb" not in got
