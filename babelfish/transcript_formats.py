"""A room's transcript as a download: plain text, SubRip (SRT), WebVTT or JSON.

Subtitle times count from the room's start. Each cue is one utterance: "Name: original" then one line per translation
("de: …"). SRT is composed by the `srt` library; WebVTT is the same cues with its own header, time format and
escaping (cue text is markup there).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Literal, get_args

import srt

from babelfish.transcripts import Entry, RoomTranscript, iso

Format = Literal["txt", "srt", "vtt", "json"]
FORMATS: tuple[Format, ...] = get_args(Format)
MEDIA_TYPES: dict[Format, str] = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
}
MIN_CUE_SECONDS = 0.5  # a cue shorter than this flashes by unread


def render(transcript: RoomTranscript, fmt: Format) -> str:
    entries = transcript.entries()
    if fmt == "json":
        return to_json(transcript, entries)
    if fmt == "srt":
        return to_srt(transcript, entries)
    if fmt == "vtt":
        return to_vtt(transcript, entries)
    return to_txt(transcript, entries)


def _lines(e: Entry) -> list[str]:
    return [f"{e.speaker_name}: {e.text}"] + [f"{lang}: {text}" for lang, text in sorted(e.translations.items())]


def _times(e: Entry, since: float) -> tuple[timedelta, timedelta]:
    start = max(0.0, e.start - since)
    end = max(start + MIN_CUE_SECONDS, e.end - since)
    return timedelta(seconds=start), timedelta(seconds=end)


def to_json(transcript: RoomTranscript, entries: list[Entry]) -> str:
    return json.dumps(
        {
            "room": transcript.room,
            "started": iso(transcript.started),
            "dropped": transcript.dropped,
            "utterances": [e.as_json(transcript.started) for e in entries],
        },
        ensure_ascii=False,
        indent=1,
    )


def to_srt(transcript: RoomTranscript, entries: list[Entry]) -> str:
    subs = [srt.Subtitle(i, *_times(e, transcript.started), "\n".join(_lines(e))) for i, e in enumerate(entries, 1)]
    return srt.compose(subs, reindex=False)


def _vtt_time(t: timedelta) -> str:
    ms = round(t.total_seconds() * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _vtt_text(line: str) -> str:
    # Cue text is markup: escape it; "-->" may not appear in a cue at all.
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("--&gt;", "→")


def to_vtt(transcript: RoomTranscript, entries: list[Entry]) -> str:
    out = [f"WEBVTT - BabbleFish room {_vtt_text(transcript.room)}, started {iso(transcript.started)}", ""]
    for e in entries:
        start, end = _times(e, transcript.started)
        out += [e.utterance_id, f"{_vtt_time(start)} --> {_vtt_time(end)}"]
        out += [_vtt_text(" ".join(line.split())) for line in _lines(e)] + [""]
    return "\n".join(out)


def to_txt(transcript: RoomTranscript, entries: list[Entry]) -> str:
    out = [f"BabbleFish transcript, room {transcript.room!r}, started {iso(transcript.started)}"]
    if transcript.dropped:
        out.append(f"({transcript.dropped} earlier utterances are no longer kept)")
    out.append("")
    for e in entries:
        seconds = round(max(0.0, e.start - transcript.started))
        stamp = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        out.append(f"[{stamp}] {e.speaker_name} ({e.language}): {e.text}")
        out += [f"    {lang}: {text}" for lang, text in sorted(e.translations.items())]
    return "\n".join(out) + "\n"
