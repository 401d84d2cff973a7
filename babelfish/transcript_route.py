"""`GET /rooms/{room}/transcript`: a room's transcript, for the people in the room only.

A request proves it comes from someone in the room with the `transcript_key` its `welcome` carried
(`Authorization: Bearer <key>`). Joining already passed the room's passcode and the server's token check, so the key
carries the room's access; it dies when that participant leaves. Outsiders learn nothing, not even whether the room
exists (403 either way).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from babelfish.hub import Hub
from babelfish.transcript_formats import MEDIA_TYPES, Format, render

log = logging.getLogger(__name__)
PRIVATE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def make_transcript_router() -> APIRouter:
    router = APIRouter(tags=["transcripts"])

    @router.get("/rooms/{room}/transcript")
    def transcript(request: Request, room: str, format: Format = "txt") -> Response:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return PlainTextResponse(
                "send the transcript_key from your welcome as: Authorization: Bearer <key>",
                401,
                headers={**PRIVATE, "WWW-Authenticate": "Bearer"},
            )
        hub: Hub = request.app.state.hub
        found = hub.rooms.get(room)
        if found is None or found.member_with_key(key.strip()) is None:
            log.info("transcript of room %r refused: not a member's key", room)
            return PlainTextResponse("only people in this room may download its transcript", 403, headers=PRIVATE)
        stamp = datetime.fromtimestamp(found.transcript.started, UTC).strftime("%Y%m%d-%H%M")
        filename = f"babblefish-{''.join(c if c.isalnum() else '-' for c in room)}-{stamp}.{format}"
        return Response(
            render(found.transcript, format),
            media_type=MEDIA_TYPES[format],
            headers={**PRIVATE, "Content-Disposition": f'attachment; filename="{filename}"'},
        )

    return router
