"""Wire protocol of `/ws/client`: typed messages, validated at the edge.

Client → server JSON messages are parsed into a pydantic discriminated union on `type`; anything
else becomes a `ProtocolError` carrying an error code and the WebSocket close code (if any) to use.
Server → client messages are built here too, so their shape lives in one file (docs/protocol.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1
AUDIO_ENCODING = "pcm_s16le"

# WebSocket close codes (RFC 6455 §7.4.1) used by the server.
CLOSE_NORMAL = 1000
CLOSE_SERVICE_RESTART = 1012  # server draining for a restart
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013  # room/server full, or the client cannot keep up


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Join(_Message):
    type: Literal["join"]
    name: str = Field(min_length=1)
    language: str = Field(min_length=1, max_length=35)
    room: str = Field("main", min_length=1, max_length=64, pattern=r"^[\w.\- ]+$")
    sample_rate: int = 16_000
    audio: bool = True  # False: a text-only listener, no synthesized speech is sent (or computed) for it


class EndUtterance(_Message):
    type: Literal["end_utterance"]


class Ping(_Message):
    type: Literal["ping"]
    id: str | int | None = None


ClientMessage = Annotated[Join | EndUtterance | Ping, Field(discriminator="type")]
_client_adapter: TypeAdapter[Join | EndUtterance | Ping] = TypeAdapter(ClientMessage)


@dataclass(frozen=True)
class ProtocolError(Exception):
    """A client mistake: the error code and message sent back, and the close code if it ends the session."""

    code: str
    message: str
    close_code: int | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def parse_client_message(raw: str, max_bytes: int) -> Join | EndUtterance | Ping:
    if len(raw.encode()) > max_bytes:
        raise ProtocolError("message_too_large", f"control messages are limited to {max_bytes} bytes", CLOSE_TOO_BIG)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProtocolError("bad_json", f"not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(data, dict) or "type" not in data:
        raise ProtocolError("bad_message", 'a control message is a JSON object with a "type" field')
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "union_tag_invalid":
            raise ProtocolError(
                "unknown_type", f"unknown message type {data.get('type')!r}; expected join, end_utterance or ping"
            ) from None
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise ProtocolError("invalid_message", f"{data.get('type')}: {where}: {first['msg']}") from None


# --- server → client -------------------------------------------------------------------------


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, **extra}


def speaker(client_id: str, name: str) -> dict[str, str]:
    return {"id": client_id, "name": name}
