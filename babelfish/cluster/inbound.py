"""What this server accepts from the other servers of its cluster: the limits, the checks, and the tally of what it
ignored.

Redis is an edge like a client's socket: another server may run an older or newer version, or be buggy. Every frame
is checked before it changes anything here. One that fails is ignored, counted in /metrics by reason
(`babelfish_cluster_frames_ignored{reason}`), logged sparingly (`Tally`), and never raised into the listener (an
exception there would cut this server off the cluster). The limits all live here, with why each is what it is; the
transcript entry's own bounds are `babelfish.transcripts.MAX_WIRE_*`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeGuard, TypeVar, get_args

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from babelfish import protocol as proto
from babelfish.rooms import RemoteMember

log = logging.getLogger(__name__)

# --- limits -----------------------------------------------------------------------------------------------------

# Redis' default pub/sub client output buffer hard limit: nothing larger reaches a subscriber anyway.
MAX_FRAME_BYTES = 32 * 2**20
# The JSON header, parsed before anything else: a transcript entry with every translation (MAX_WIRE_*) fits.
MAX_HEAD_BYTES = 8 * 2**20
MAX_ID_CHARS = 200  # a participant, server, copy or utterance id (transcripts.MAX_WIRE_SHORT)
MAX_MEMBER_BYTES = 4096  # a participant's entry in a room's table in Redis (JSON)
MAX_NAME_CHARS = 200  # a participant's name (settings.max_name_chars is at most this)
MAX_LANGUAGE_CHARS = 35  # a language code (as a client's join)
MAX_RESULT_CHARS = 256_000  # one relayed client message, encoded (a long revised turn, JSON-escaped)
MAX_AUDIO_BYTES = 16 * 2**20  # the PCM of one relayed result (minutes of speech at 48 kHz)
MAX_HEARD = 10_000  # presence changes remembered between heartbeats, all rooms (beyond: not remembered)
MAX_ARCHIVE_PENDING = 256  # relayed utterances waiting to be written to the transcript archive
# One phone per voice (babelfish/echoes.py). Remote phones open at once per room: settings.max_clients_per_room.
MAX_ECHO_FRAMES = 12_000  # envelopes of one remote copy: 120 s, the longest max_utterance_seconds
MAX_ECHO_ROOM_FRAMES = 36_000  # envelopes of remote copies kept per room (~1.2 MB); beyond, the oldest go
ECHO_PAST = 150.0  # seconds a time told by a peer may lie in the past (an utterance is 120 s at most, plus lag)
ECHO_FUTURE = 5.0  # seconds it may lie ahead of our clock (skew; the filter itself needs NTP's milliseconds)
MAX_QUALITY = 1000.0  # |dB| of a copy's quality figures (its speech-to-noise is capped at 60, its level is dBFS)
MAX_OUTCOME_CHARS = 32  # a kept copy's outcome: ok, shed, none, error, gone

# --- what was ignored, and why ----------------------------------------------------------------------------------

Reason = Literal[
    "not_ours",  # not a frame of ours: no length, no JSON header, no known kind (another program, a newer version)
    "too_large",  # over MAX_FRAME_BYTES / MAX_HEAD_BYTES
    "wrong_channel",  # a room's frame on another room's channel, or a message for everyone on a room's channel
    "result",  # a relayed result that is not one of the client messages a server relays, or out of bounds
    "member",  # a join, leave or room table entry that is not a plausible participant
    "room_full",  # a participant beyond the room's capacity (max_clients_per_room)
    "entry",  # a transcript entry out of bounds (transcripts.MAX_WIRE_*)
    "all",  # a message for everyone that is not a speaker_renamed
    "echo",  # a one-phone-per-voice frame that makes no sense: types, non-finite or far-off times, sizes, local ops
    "echo_limit",  # one that would go over a bound (remote phones open in a room)
    "echo_foreign",  # one about a phone (or a copy's verdict, outcome) of this server or another than its sender
    "failed",  # handling it raised (a bug here): logged with its traceback, the listener goes on
]
REASONS: tuple[Reason, ...] = get_args(Reason)


@dataclass(frozen=True)
class Ignored:
    """Why a frame was ignored: a reason for /metrics, a detail for the log."""

    reason: Reason
    detail: str


LOG_EVERY = 60.0  # seconds between two log lines for one (peer, reason)
MAX_LOG_KEYS = 64  # (peer, reason) pairs logged separately; the rest share one per reason


class Tally:
    """Frames ignored: counted by reason, and logged the first time per (peer, reason), then at most once a
    LOG_EVERY with how many were ignored since. Peers are named by the frame (peer data): at most MAX_LOG_KEYS
    pairs are told apart, so a flood of invented server ids costs a bounded number of lines too."""

    def __init__(self, count: Callable[[Reason], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._count, self._clock = count, clock
        self.counts: dict[Reason, int] = dict.fromkeys(REASONS, 0)
        self._last: dict[tuple[str, Reason], float] = {}
        self._quiet: dict[tuple[str, Reason], int] = {}  # ignored and not logged since the last line

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def ignore(self, why: Ignored, peer: str) -> None:
        self.counts[why.reason] += 1
        self._count(why.reason)
        key = (peer[:MAX_ID_CHARS], why.reason)
        if key not in self._last and len(self._last) >= MAX_LOG_KEYS:
            key = ("(others)", why.reason)
        now, last = self._clock(), self._last.get(key)
        if last is not None and now - last < LOG_EVERY:
            self._quiet[key] = self._quiet.get(key, 0) + 1
            return
        self._last[key] = now
        more = self._quiet.pop(key, 0)
        since = f" ({more} more since the last line)" if more else ""
        if why.reason == "failed":
            log.exception("cluster: a frame from server %r failed: %s%s", key[0], why.detail[:200], since)
        else:
            log.warning("cluster: ignoring a frame from server %r (%s): %s%s", key[0], why.reason, why.detail[:200],
                        since)  # fmt: skip


# --- checks -----------------------------------------------------------------------------------------------------


def short(value: object, limit: int = MAX_ID_CHARS) -> TypeGuard[str]:
    """A non-empty string of at most `limit` characters."""
    return isinstance(value, str) and 0 < len(value) <= limit


def number(value: object) -> float | None:
    """A finite JSON number (not a bool), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        x = float(value)
    except OverflowError:  # an integer beyond any float (JSON allows 10**400)
        return None
    return x if math.isfinite(x) else None


def member(body: dict[str, Any], origin: str) -> RemoteMember | Ignored:
    """A participant announced by another server (a join frame, or its entry in the room's table)."""
    pid, name, language = body.get("id"), body.get("name"), body.get("language")
    audio, server = body.get("audio", True), body.get("server", origin)
    if not (short(pid) and short(name, MAX_NAME_CHARS) and short(language, MAX_LANGUAGE_CHARS) and short(server)):
        return Ignored("member", "not a participant (id, name, language, server)")
    if not isinstance(audio, bool):
        return Ignored("member", "audio is not true or false")
    return RemoteMember(id=pid, name=name, language=language, wants_audio=audio, server=server)


# The client messages a server relays to the others (babelfish/pipeline.py, partials.py, revisions.py, echoes.py).
Relayed = (
    proto.Transcript | proto.Translation | proto.Partial | proto.PartialEnd | proto.AudioHeader | proto.HeardBy
    | proto.Notice | proto.Revision
)  # fmt: skip
RELAYED: TypeAdapter[Relayed] = TypeAdapter(Annotated[Relayed, Field(discriminator="type")])
RENAMED: TypeAdapter[proto.SpeakerRenamed] = TypeAdapter(proto.SpeakerRenamed)  # the one message for everyone

M = TypeVar("M", bound=BaseModel)


def client_message(text: str, adapter: TypeAdapter[M]) -> M | Ignored:
    """A server → client message another server encoded, as `adapter`'s type. Rolling upgrades: a newer server may add
    fields, at any depth, which this one does not know and leaves out of its own encoding (pydantic's `extra="ignore"`
    for this validation only), rather than refuse every result that server renders. Unknown or missing types, known
    fields with wrong types or values, NaN and infinities (`allow_inf_nan=False`: a client would get null) and integers
    out of their bounds (`proto.MAX_SAFE_INT`: 10**30 would be read whole) are still refused. (What a client sends
    stays strict: babelfish/protocol.py.)"""
    try:
        message = adapter.validate_json(text, extra="ignore")
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        return Ignored("result", f"not a valid message ({exc.error_count()} errors; {where}: {first['type']})")
    if "type" not in message.model_fields_set:  # a model's `type` has a default: only a discriminated union needs it
        return Ignored("result", "a message without a type")
    return message


@dataclass(frozen=True)
class Result:
    """A relayed result, checked: the message in this server's own encoding, for whom, and its PCM."""

    text: str
    language: str | None
    audio: bool
    audio_only: bool
    pcm: bytes


def result(body: dict[str, Any], payload: bytes) -> Result | Ignored:
    """A result (or streaming partial) rendered on another server. Its client message must be one a server relays:
    what reaches clients is this server's own encoding of it, so nothing else written to the channel reaches them."""
    text, language = body.get("text"), body.get("language")
    audio, audio_only = body.get("audio", False), body.get("audio_only", False)
    if not isinstance(text, str) or len(text) > MAX_RESULT_CHARS:
        return Ignored("result", "no message, or one over MAX_RESULT_CHARS")
    if language is not None and not short(language, MAX_LANGUAGE_CHARS):
        return Ignored("result", "language is not a language code")
    if not isinstance(audio, bool) or not isinstance(audio_only, bool):
        return Ignored("result", "audio flags are not true or false")
    message = client_message(text, RELAYED)
    if isinstance(message, Ignored):
        return message
    if isinstance(message, proto.AudioHeader) != audio:
        return Ignored("result", "audio flag and message disagree")
    if audio:
        assert isinstance(message, proto.AudioHeader)
        if len(payload) > MAX_AUDIO_BYTES or len(payload) % 2 or message.bytes != len(payload):
            return Ignored("result", f"{len(payload)} bytes of audio (header says {message.bytes})")
    elif payload:
        return Ignored("result", "a payload on a text result")
    return Result(message.encode(), language, audio, audio_only, payload)
