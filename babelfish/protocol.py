"""Wire protocol of `/ws/client`: typed messages, validated at the edge.

Client → server JSON messages are parsed into a pydantic discriminated union on `type`; anything
else becomes a `ProtocolError` carrying an error code and the WebSocket close code (if any) to use.
Server → client messages are models here too, one per `type`, so each shape is written once; docs/protocol.md
describes both directions and a test holds it to these types.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1
AUDIO_ENCODING: Final = "pcm_s16le"

# WebSocket close codes (RFC 6455 §7.4.1) used by the server.
CLOSE_NORMAL = 1000
CLOSE_SERVICE_RESTART = 1012  # server draining for a restart
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013  # room/server full, or the client cannot keep up


class _Message(BaseModel):
    # strict: "16000" is not a sample rate and "yes" is not a boolean; a client that sends them has a bug to see.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


class Join(_Message):
    type: Literal["join"]
    name: str = Field(min_length=1)
    language: str = Field(min_length=1, max_length=35)
    room: str = Field("main", min_length=1, max_length=64, pattern=r"^[\w.\- ]+$")
    sample_rate: int = 16_000
    audio: bool = True  # False: a text-only listener, no synthesized speech is sent (or computed) for it
    passcode: str | None = Field(None, min_length=1, max_length=128)  # the room's; whoever creates the room sets it


class EndUtterance(_Message):
    type: Literal["end_utterance"]


class Ping(_Message):
    type: Literal["ping"]
    id: str | int | None = None


class RenameSpeaker(_Message):
    """Name a voice: `id` is a result's `speaker.id`."""

    type: Literal["rename_speaker"]
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1)


ClientMessage = Annotated[Join | EndUtterance | Ping | RenameSpeaker, Field(discriminator="type")]
_client_adapter: TypeAdapter[Join | EndUtterance | Ping | RenameSpeaker] = TypeAdapter(ClientMessage)


# Every `error` code the server sends (docs/protocol.md §5 has a row for each).
ErrorCode = Literal[
    "not_joined",
    "bad_json",
    "bad_message",
    "invalid_message",
    "unknown_type",
    "message_too_large",
    "already_joined",
    "invalid_name",
    "unsupported_language",
    "unsupported_sample_rate",
    "bad_audio",
    "audio_too_fast",
    "control_too_fast",
    "frame_too_large",
    "room_full",
    "too_many_rooms",
    "passcode_required",
    "bad_passcode",
    "token_revoked",
    "join_timeout",
    "draining",
    "internal_error",
    "unknown_speaker",
]


@dataclass(frozen=True)
class ProtocolError(Exception):
    """A client mistake: the error code and message sent back, and the close code if it ends the session."""

    code: ErrorCode
    message: str
    close_code: int | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def parse_client_message(raw: str, max_bytes: int) -> Join | EndUtterance | Ping | RenameSpeaker:
    if len(raw.encode()) > max_bytes:
        raise ProtocolError("message_too_large", f"control messages are limited to {max_bytes} bytes", CLOSE_TOO_BIG)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProtocolError("bad_json", f"not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:  # "[[[[…]]]]": the C decoder gives up on deep nesting with a RecursionError
        raise ProtocolError("bad_json", "not valid JSON: nested too deeply") from None
    if not isinstance(data, dict) or "type" not in data:
        raise ProtocolError("bad_message", 'a control message is a JSON object with a "type" field')
    kind = data["type"] if isinstance(data["type"], str) else "message"
    nested = next((k for k, v in data.items() if isinstance(v, dict | list)), None)
    if nested is not None:  # no field is a list or an object: deep values never reach pydantic or an error message
        raise ProtocolError("invalid_message", f"{kind}: {nested}: a plain value is expected, not a list or object")
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "union_tag_invalid":
            raise ProtocolError(
                "unknown_type", f"unknown message type {kind!r}; expected join, end_utterance, ping or rename_speaker"
            ) from None
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise ProtocolError("invalid_message", f"{kind}: {where}: {first['msg']}") from None


# --- server → client -------------------------------------------------------------------------
# One model per message, in the order docs/protocol.md describes them; tests/test_docs.py keeps the two in
# step. Fields that only some messages of a type carry are left out of the JSON when unset (None).


def _omit() -> Any:
    return Field(None, exclude_if=lambda value: value is None)


# The integers of the messages servers relay to each other are bounded, so that one out of bounds is refused whether
# this server builds the message or another server relays it (babelfish/cluster/inbound.py). JSON integers have no
# limit (10**30 is read whole) but a page's numbers lose digits beyond 2**53: a count or duration is 0 to that.
MAX_SAFE_INT = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER
MAX_SAMPLE_RATE = 768_000  # the highest rate browsers' Web Audio takes; voices give 16-48 kHz
MAX_CHANNELS = 32  # the channels Web Audio must support in a buffer; the server sends mono
Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]  # milliseconds, bytes


class _Out(BaseModel):
    # allow_inf_nan: JSON has no NaN or infinity (a client would get null where a number is promised), so a message
    # with one is refused, whether this server builds it or another server relays it (babelfish/cluster/inbound.py).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def encode(self) -> str:
        """Compact UTF-8 JSON, the text frame sent to the client."""
        return self.model_dump_json()


class Speaker(_Out):
    id: str
    name: str


class ParticipantInfo(_Out):
    id: str
    name: str
    language: str


class EngineSummary(_Out):
    name: str
    reason: str


class Limits(_Out):
    max_frame_bytes: int
    max_text_bytes: int
    max_utterance_seconds: float


class Welcome(_Out):
    type: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL_VERSION
    client_id: str
    room: str
    name: str
    language: str
    sample_rate: int
    participants: list[ParticipantInfo]
    languages: list[dict[str, Any]]  # languages.table(): the same rows GET /languages serves
    engine: EngineSummary
    limits: Limits
    transcript_key: str  # proves membership to GET /rooms/{room}/transcript (docs/protocol.md §6)


class Transcript(_Out):
    type: Literal["transcript"] = "transcript"
    utterance_id: str
    speaker: Speaker
    client_id: str  # the connection the audio came from (`speaker` is the voice): a page marks its own cards by it
    text: str
    language: str
    audio_seconds: float
    latency_ms: Count


class Translation(_Out):
    type: Literal["translation"] = "translation"
    utterance_id: str
    speaker: Speaker
    text: str
    language: str
    source_language: str
    via: str
    latency_ms: Count


class Partial(_Out):
    """Streaming text of an utterance still being spoken (babelfish/partials.py): `stable` no longer changes (it only
    grows), `tail` is the recogniser's current guess at the rest. The final `transcript`/`translation` with the same
    `utterance_id` replaces it; `partial_end` says none will come."""

    type: Literal["partial"] = "partial"
    utterance_id: str
    speaker: Speaker
    client_id: str
    kind: Literal["transcript", "translation"]
    language: str
    source_language: str
    stable: str
    tail: str
    # counts this utterance's partials from 1; a page ignores one older than what it shows
    seq: Annotated[int, Field(ge=1, le=MAX_SAFE_INT)]
    audio_seconds: float  # how much of the utterance the text covers
    elapsed_ms: Count  # since the speech started


class PartialEnd(_Out):
    """No more partials for this utterance: what is still tentative is dropped (the final has replaced it, or the
    utterance gave no text: noise, skipped)."""

    type: Literal["partial_end"] = "partial_end"
    utterance_id: str


class AudioHeader(_Out):
    """Announces the binary frame that follows it at once: `bytes` bytes of PCM."""

    type: Literal["audio"] = "audio"
    utterance_id: str
    speaker: Speaker
    language: str
    sample_rate: Annotated[int, Field(ge=1, le=MAX_SAMPLE_RATE)]
    encoding: Literal["pcm_s16le"] = AUDIO_ENCODING
    channels: Annotated[int, Field(ge=1, le=MAX_CHANNELS)] = 1
    bytes: Count
    latency_ms: Count


class Revision(_Out):
    """A speaker's turn, cut into pieces at breath pauses, re-decoded whole once it ended (babelfish/revisions.py).

    `of: "transcript"` goes to everyone in the room and replaces the transcripts of every id in `replaces` (in order;
    the first is `utterance_id`, the card that stays). `of: "translation"` then goes to the listeners of `language`
    and replaces those utterances' translations into it. Text only: no new speech is sent."""

    type: Literal["revision"] = "revision"
    of: Literal["transcript", "translation"]
    utterance_id: str  # the first replaced utterance: the revised text belongs to it from now on
    replaces: list[str]
    speaker: Speaker
    client_id: str  # the connection the audio came from, as in `transcript`
    text: str
    language: str
    source_language: str | None = _omit()  # translation: the revised transcript's language
    via: str | None = _omit()  # translation: which backend produced it
    latency_ms: Count  # from the turn's last voiced audio


class HeardBy(_Out):
    """Another phone heard this utterance too; its copy was not translated (one phone per voice, babelfish/echoes.py).

    Sent to the room, possibly before the utterance's transcript: a page keeps it until the card comes."""

    type: Literal["heard_by"] = "heard_by"
    utterance_id: str  # the utterance delivered (from another phone's copy)
    client_id: str  # the phone that also heard it
    name: str  # that phone's participant name


class Participants(_Out):
    """Someone joined or left: sent to the others in the room."""

    type: Literal["participants"] = "participants"
    room: str
    event: Literal["join", "leave"]
    who: ParticipantInfo
    count: int


NoticeCode = Literal["untranslatable", "dropped_utterance", "speech_skipped", "loud_room"]
# the speaker's own queue overflowed / the shared engine is behind / a voice failed or hung (speech_skipped)
DropReason = Literal["too_fast", "server_busy", "voice_failed"]
SpeechSkip = Literal["server_busy", "voice_failed"]  # why a `speech_skipped` notice came
SPEECH_SKIPPED: dict[SpeechSkip, str] = {
    "server_busy": "Not read aloud: the server was too busy.",
    "voice_failed": "Not read aloud: the voice failed.",
}


class Notice(_Out):
    type: Literal["notice"] = "notice"
    code: NoticeCode
    utterance_id: str | None = _omit()
    speaker: Speaker | None = _omit()
    language: str | None = _omit()
    reason: DropReason | None = _omit()  # dropped_utterance, speech_skipped: why
    message: str

    @classmethod
    def untranslatable(cls, utterance_id: str, speaker: Speaker, language: str, message: str) -> Notice:
        return cls(
            code="untranslatable", utterance_id=utterance_id, speaker=speaker, language=language, message=message
        )

    @classmethod
    def dropped_utterance(cls) -> Notice:
        return cls(
            code="dropped_utterance",
            reason="too_fast",
            message="You spoke faster than the server could keep up; an earlier utterance was skipped.",
        )

    @classmethod
    def speech_skipped(cls, utterance_id: str, speaker: Speaker, language: str, reason: SpeechSkip) -> Notice:
        return cls(
            code="speech_skipped",
            utterance_id=utterance_id,
            speaker=speaker,
            language=language,
            reason=reason,
            message=SPEECH_SKIPPED[reason],
        )

    @classmethod
    def loud_room(cls) -> Notice:
        """To a speaker whose phone hears a crowd: there, hands-free turns end late and carry the crowd's words,
        while push-to-talk ends each at the release (docs/benchmarks.md, "The browser's noise suppression, push-to-talk
        in a crowd")."""
        return cls(
            code="loud_room",
            message="It is loud around your phone. Push-to-talk gets your words out sooner and cleaner here: "
            "hold the button while you speak.",
        )

    @classmethod
    def server_busy(cls) -> Notice:
        return cls(
            code="dropped_utterance",
            reason="server_busy",
            message="The server is overloaded: what you said a moment ago was skipped. Please say it again.",
        )


class SpeakerRenamed(_Out):
    """A voice got a new name (rename_speaker, or the admin CLI's rename seen at the next utterance): sent to every
    room, so cards already shown can be relabelled."""

    type: Literal["speaker_renamed"] = "speaker_renamed"
    speaker: Speaker


class Pong(_Out):
    type: Literal["pong"] = "pong"
    id: str | int | None  # echoes the ping's id; null when it had none


class Draining(_Out):
    type: Literal["draining"] = "draining"
    message: str = "The server is restarting."
    reconnect_after_ms: int


class Error(_Out):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    utterance_id: str | None = _omit()  # internal_error: which utterance failed


ServerMessage = (
    Welcome
    | Transcript
    | Translation
    | Partial
    | PartialEnd
    | AudioHeader
    | HeardBy
    | Participants
    | Notice
    | SpeakerRenamed
    | Pong
    | Draining
    | Error
    | Revision
)
