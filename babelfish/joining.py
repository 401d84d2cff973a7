"""The joining phase of a connection: the `join` handshake, admission to a room, the welcome.

Its product is a `Member`: a client that has joined, with its participant and room, never None.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect

from babelfish import protocol as proto
from babelfish.gate import Caller
from babelfish.hub import Hub
from babelfish.languages import UnknownLanguage, resolve
from babelfish.protocol import ProtocolError
from babelfish.rooms import Outbox, Participant, Room, RoomFull, TooManyRooms, WrongPasscode

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Member:
    """A joined client. `leave` takes it out of its room and tells the others, once, however the session ends."""

    hub: Hub
    participant: Participant
    room: Room
    sample_rate: int  # of the PCM it sends
    _left: bool = False

    def leave(self) -> None:
        if self._left:
            return
        self._left = True
        me = self.participant
        room = self.hub.rooms.leave(me)
        if room is not None and room.members:
            room.broadcast(proto.Participants(room=room.name, event="leave", who=me.info(), count=room.count))
        if room is not None:
            self.hub.cluster.left(me)
        self.hub.population_changed()
        log.info("%s (%s) left room %r", me.name, me.id, me.room_name)

    def welcome(self) -> proto.Welcome:
        s, info, me = self.hub.settings, self.hub.engine.info, self.participant
        return proto.Welcome(
            client_id=me.id,
            room=self.room.name,
            name=me.name,
            language=me.language,
            sample_rate=self.sample_rate,
            participants=self.room.roster(),
            languages=self.hub.language_table,
            engine=proto.EngineSummary(name=info.name, reason=info.reason),
            limits=proto.Limits(
                max_frame_bytes=s.max_frame_bytes,
                max_text_bytes=s.max_text_bytes,
                max_utterance_seconds=s.max_utterance_seconds,
            ),
            transcript_key=me.key,
        )

    def announce(self) -> None:
        """Tell the others in the room, on this server and across the cluster, that this member arrived."""
        me = self.participant
        self.room.broadcast(
            proto.Participants(room=self.room.name, event="join", who=me.info(), count=self.room.count),
            self.room.listeners(me),
        )
        self.hub.cluster.entered(me)


async def receive_join(ws: WebSocket, max_text_bytes: int) -> proto.Join | ProtocolError:
    """The first message, which must be a valid `join`; any mistake here ends the connection (1008 by default)."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("text") is None:
        return ProtocolError("not_joined", "send a join message before any audio", proto.CLOSE_POLICY_VIOLATION)
    try:
        parsed = proto.parse_client_message(message["text"], max_text_bytes)
    except ProtocolError as exc:
        return ProtocolError(exc.code, exc.message, exc.close_code or proto.CLOSE_POLICY_VIOLATION)
    if not isinstance(parsed, proto.Join):
        return ProtocolError("not_joined", f"send join before {parsed.type}", proto.CLOSE_POLICY_VIOLATION)
    return parsed


def admit(hub: Hub, join: proto.Join, outbox: Outbox, caller: Caller | None = None) -> Member:
    """Check the join against the server's limits and put the client in its room; raise ProtocolError if refused.

    `caller`: who the gate let in (babelfish.gate), for the per-address limits; None when no gate ran."""
    s = hub.settings
    name = " ".join(join.name.split())
    if len(name) > s.max_name_chars:
        raise ProtocolError(
            "invalid_name", f"names are limited to {s.max_name_chars} characters", proto.CLOSE_POLICY_VIOLATION
        )
    try:
        language = resolve(join.language, hub.languages_in)
    except UnknownLanguage as exc:
        raise ProtocolError("unsupported_language", str(exc), proto.CLOSE_POLICY_VIOLATION) from None
    if join.sample_rate not in s.allowed_sample_rates:
        raise ProtocolError(
            "unsupported_sample_rate",
            f"sample_rate {join.sample_rate} is not supported; use one of {s.allowed_sample_rates}",
            proto.CLOSE_UNSUPPORTED_DATA,
        )
    me = Participant(
        id=secrets.token_hex(4),
        name=name,
        language=language,
        room_name=join.room,
        outbox=outbox,
        wants_audio=join.audio,
    )
    new_room = hub.rooms.get(join.room) is None
    if new_room and s.access == "passcode" and not join.passcode:
        raise ProtocolError(
            "passcode_required", f"room {join.room!r} does not exist yet: set a passcode to create it",
            proto.CLOSE_POLICY_VIOLATION,
        )  # fmt: skip
    limits = hub.address_limits
    if caller and limits and new_room and not limits.may_create_room(caller.address):
        hub.metrics.refused("rooms_per_minute")
        raise ProtocolError(
            "too_many_rooms", "your address created too many rooms; try again in a minute", proto.CLOSE_TRY_AGAIN_LATER
        )
    try:
        room = hub.rooms.join(me, join.passcode)
    except WrongPasscode:
        hub.metrics.refused("bad_passcode")
        log.info("wrong passcode for room %r from %s", join.room, caller.address if caller else "?")
        raise ProtocolError(
            "bad_passcode",
            f"room {join.room!r} needs its passcode, and this one is wrong or missing",
            proto.CLOSE_POLICY_VIOLATION,
        ) from None
    except RoomFull as exc:
        raise ProtocolError("room_full", str(exc), proto.CLOSE_TRY_AGAIN_LATER) from None
    except TooManyRooms as exc:
        raise ProtocolError("too_many_rooms", str(exc), proto.CLOSE_TRY_AGAIN_LATER) from None
    hub.population_changed()
    return Member(hub, me, room, join.sample_rate)
