"""The cluster's wire format on Redis: one binary frame per event, audio carried as raw bytes.

A frame is a 4-byte big-endian header length, a compact JSON header, then the payload (PCM for audio, else empty).
The header of a relayed result holds the client message already encoded; a receiving server checks it once (one of
the messages servers relay: babelfish/cluster/inbound.py) and hands its own encoding to every listener: nothing is
parsed or re-serialised per listener, and speech is never base64-encoded.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Literal

from babelfish.cluster.inbound import MAX_FRAME_BYTES, MAX_HEAD_BYTES, MAX_ID_CHARS

Kind = Literal["join", "leave", "result", "entry", "all", "echo"]
KINDS = ("join", "leave", "result", "entry", "all", "echo")
_LEN = struct.Struct(">I")


@dataclass(frozen=True)
class Envelope:
    kind: Kind
    origin: str  # server id of the sender: a server ignores its own frames
    room: str
    # join/leave: the participant; result: {"text": ..., "language": ...}; entry: a finished utterance for the room's
    # transcript (translations included); all: {"text": ...} for every client of every server (room "");
    # echo: one phone per voice across servers (babelfish/echoes.py: an "op" and its fields; a copy's envelopes in
    # the payload)
    body: dict[str, Any]
    payload: bytes = b""

    def pack(self) -> bytes:
        head = json.dumps({"k": self.kind, "o": self.origin, "r": self.room, "b": self.body}, separators=(",", ":"))
        raw = head.encode()
        return _LEN.pack(len(raw)) + raw + self.payload


class BadFrame(ValueError):
    def __init__(self, detail: str, too_large: bool = False) -> None:
        super().__init__(detail)
        self.too_large = too_large


def unpack(frame: bytes) -> Envelope:
    """Parse a frame; BadFrame if it is not one of ours (another program on the same channel, a newer version) or
    is over the size limits (babelfish/cluster/inbound.py), checked before its header is parsed."""
    if len(frame) > MAX_FRAME_BYTES:
        raise BadFrame(f"a frame of {len(frame)} bytes", too_large=True)
    try:
        (size,) = _LEN.unpack_from(frame)
        if size > MAX_HEAD_BYTES:
            raise BadFrame(f"a header of {size} bytes", too_large=True)
        if size > len(frame) - _LEN.size:
            raise BadFrame(f"a header of {size} bytes in a frame of {len(frame)}")
        head = json.loads(frame[_LEN.size : _LEN.size + size])
        kind, origin, room, body = head["k"], head["o"], head["r"], head["b"]
    except BadFrame:
        raise
    except (struct.error, ValueError, KeyError, TypeError, RecursionError) as exc:  # RecursionError: deep nesting
        raise BadFrame(f"{type(exc).__name__}: {exc}") from None
    if kind not in KINDS or not isinstance(body, dict):
        raise BadFrame(f"unknown frame kind {str(kind)[:40]!r}")
    if not isinstance(origin, str) or not isinstance(room, str) or max(len(origin), len(room)) > MAX_ID_CHARS:
        raise BadFrame("origin or room is not a short string")
    return Envelope(kind, origin, room, body, bytes(frame[_LEN.size + size :]))
