"""Room transcripts: formats that parse, the memory cap, access for members only, and disk only with retention."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import jsonschema
import pytest
import srt
import webvtt

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.fake import FakeEngine
from babelfish.transcript_formats import FORMATS, render
from babelfish.transcripts import Entry, RoomTranscript, TranscriptArchive
from tests.test_ws import join, receive_until, speak
from tests.wsclient import BoundedClient

SCHEMA = {
    "type": "object",
    "required": ["room", "started", "dropped", "utterances"],
    "additionalProperties": False,
    "properties": {
        "room": {"type": "string"},
        "started": {"type": "string", "format": "date-time"},
        "dropped": {"type": "integer", "minimum": 0},
        "utterances": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "id", "speaker", "start", "end", "offset_seconds", "duration_seconds", "language", "text",
                    "translations",
                ],
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "speaker": {
                        "type": "object",
                        "required": ["id", "name"],
                        "additionalProperties": False,
                        "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
                    },
                    "start": {"type": "string", "format": "date-time"},
                    "end": {"type": "string", "format": "date-time"},
                    "offset_seconds": {"type": "number", "minimum": 0},
                    "duration_seconds": {"type": "number", "minimum": 0},
                    "language": {"type": "string", "minLength": 2},
                    "text": {"type": "string"},
                    "translations": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        },
    },
}  # fmt: skip


def validate_json(body: str) -> dict:
    doc = json.loads(body)
    jsonschema.validate(doc, SCHEMA, format_checker=jsonschema.FormatChecker())
    return doc


def sample(cap: int = 100) -> RoomTranscript:
    t = RoomTranscript("main hall", cap, started=1_800_000_000.0)
    t.add(Entry("u1", "a1", "Ana", t.started + 1.2, t.started + 2.9, "pt", "Bom dia", {"en": "Good morning"}))
    # Markup, an arrow and a second speaker overlapping the first: the formats must still parse.
    t.add(Entry("u2", "d2", "Dan <b>", t.started + 2.5, t.started + 2.6, "en", "a --> b & <i>c</i>", {}))
    bye = {"de": "Tschüss", "en": "Bye"}
    t.add(Entry("u3", "a1", "Ana", t.started + 3725.0, t.started + 3727.5, "pt", "Tchau", bye))
    return t


def test_srt_parses_with_two_libraries():
    body = render(sample(), "srt")
    subs = list(srt.parse(body))
    assert [s.index for s in subs] == [1, 2, 3]
    assert subs[0].start.total_seconds() == pytest.approx(1.2) and subs[0].content == "Ana: Bom dia\nen: Good morning"
    assert subs[1].end > subs[1].start  # a 0.1 s utterance still gets a readable cue
    assert subs[2].start.total_seconds() == pytest.approx(3725.0)
    captions = webvtt.from_buffer(io.StringIO(body), format="srt").captions
    assert len(captions) == 3 and "Tschüss" in captions[2].text


def test_vtt_parses():
    body = render(sample(), "vtt")
    captions = webvtt.from_string(body, strict=True).captions  # strict: no malformed block is skipped silently
    assert len(captions) == 3
    assert captions[0].start == "00:00:01.200" and captions[0].end == "00:00:02.900"
    assert captions[2].start == "01:02:05.000"
    assert captions[0].text.splitlines() == ["Ana: Bom dia", "en: Good morning"]
    assert "-->" not in captions[1].raw_text and "&lt;i&gt;" in captions[1].raw_text


def test_json_matches_its_schema_and_txt_reads():
    doc = validate_json(render(sample(), "json"))
    assert [u["id"] for u in doc["utterances"]] == ["u1", "u2", "u3"]
    assert doc["utterances"][2]["translations"] == {"de": "Tschüss", "en": "Bye"}
    assert doc["utterances"][0]["offset_seconds"] == pytest.approx(1.2)
    txt = render(sample(), "txt")
    assert "[00:00:01] Ana (pt): Bom dia\n    en: Good morning" in txt and "[01:02:05]" in txt


def test_memory_is_capped_oldest_first():
    t = sample(cap=2)
    assert [e.utterance_id for e in t.entries()] == ["u2", "u3"] and t.dropped == 1
    doc = validate_json(render(t, "json"))
    assert doc["dropped"] == 1 and len(doc["utterances"]) == 2
    assert "1 earlier utterances" in render(t, "txt")
    for fmt in FORMATS:
        assert "Bom dia" not in render(t, fmt)


def test_archive_expires_old_files(tmp_path: Path):
    archive = TranscriptArchive(tmp_path / "transcripts", retention_seconds=3600)
    t = sample()
    for e in t.entries():
        archive.append(t, e)
    (path,) = (tmp_path / "transcripts").iterdir()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["u1", "u2", "u3"] and lines[0]["room"] == "main hall"
    assert path.stat().st_mode & 0o077 == 0  # for the operator only
    assert archive.expire() == []  # written just now: kept
    old = time.time() - 3601
    os.utime(path, (old, old))
    assert archive.expire() == [path] and not path.exists()


# --- through the app -------------------------------------------------------------------------------


def _get(client: BoundedClient, room: str, key: str | None, fmt: str = "json"):
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return client.get(f"/rooms/{room}/transcript", params={"format": fmt}, headers=headers)


def test_members_download_outsiders_are_refused(client: BoundedClient, speech_pcm: bytes, tmp_path: Path):
    with (
        client.websocket_connect("/ws/client") as ana,
        client.websocket_connect("/ws/client") as dan,
        client.websocket_connect("/ws/client") as eve,
    ):
        w_ana = join(ana, "Ana", "en", room="hall", audio=False)
        w_dan = join(dan, "Dan", "de", room="hall", audio=False)
        w_eve = join(eve, "Eve", "de", room="elsewhere")
        speak(ana, speech_pcm)
        said = receive_until(dan, "translation")
        transcript = next(m for m in said if m["type"] == "transcript")
        translation = said[-1]

        r = _get(client, "hall", w_dan["transcript_key"])
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        assert "attachment" in r.headers["content-disposition"]
        (u,) = validate_json(r.text)["utterances"]
        assert (u["speaker"]["name"], u["language"], u["text"]) == ("Ana", "en", transcript["text"])
        assert u["translations"] == {"de": translation["text"]}
        assert 0 < u["duration_seconds"] < 10
        for fmt, check in (("srt", lambda b: list(srt.parse(b))), ("vtt", lambda b: webvtt.from_string(b).captions)):
            r = _get(client, "hall", w_ana["transcript_key"], fmt)
            assert r.status_code == 200 and len(check(r.text)) == 1 and translation["text"] in r.text
        assert _get(client, "hall", w_ana["transcript_key"], "txt").text.count("Ana (en):") == 1

        assert _get(client, "hall", None).status_code == 401
        assert _get(client, "hall", "not-a-key").status_code == 403
        assert _get(client, "hall", w_eve["transcript_key"]).status_code == 403  # in another room
        assert _get(client, "nowhere", w_dan["transcript_key"]).status_code == 403
        assert _get(client, "hall", w_dan["transcript_key"], "doc").status_code == 422
    # Everyone left: the room, its transcript and every key are gone; retention is off, so nothing is on disk.
    assert _get(client, "hall", w_dan["transcript_key"]).status_code == 403
    assert not (tmp_path / "transcripts").exists()
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json", ".txt")]


def test_retention_writes_and_expires(tmp_path: Path, speech_pcm: bytes):
    folder = tmp_path / "transcripts"
    folder.mkdir()
    stale = folder / "20200101T000000-old-0000000000.jsonl"
    stale.write_text("{}\n")
    old = time.time() - 2 * 86400
    os.utime(stale, (old, old))
    settings = Settings(data_dir=tmp_path, engine="test", transcript_retention=True, transcript_retention_days=1)
    with BoundedClient(create_app(settings, engine=FakeEngine())) as client:
        deadline = time.monotonic() + 10
        while stale.exists() and time.monotonic() < deadline:  # expired at start, off the event loop
            time.sleep(0.05)
        assert not stale.exists()
        with client.websocket_connect("/ws/client") as ana, client.websocket_connect("/ws/client") as dan:
            join(ana, "Ana", "en", room="hall")
            join(dan, "Dan", "de", room="hall", audio=False)
            speak(ana, speech_pcm)
            translation = receive_until(dan, "translation")[-1]
            files: list[Path] = []
            while not files and time.monotonic() < deadline + 20:  # written once the utterance is done
                files = list(folder.glob("*.jsonl"))
                time.sleep(0.05)
    (path,) = files
    (line,) = [json.loads(x) for x in path.read_text().splitlines()]
    assert line["room"] == "hall" and line["translations"] == {"de": translation["text"]}
