"""Rooms, fan-out targets and the outbox overflow policy (unit tests, no sockets)."""

import asyncio

import pytest

from babelfish.protocol import Pong
from babelfish.rooms import Outbox, Participant, RoomFull, Rooms, TooManyRooms


def person(pid, language, room="r", maxsize=8, max_bytes=1 << 20, dropped=None):
    outbox = Outbox(maxsize, max_bytes, lambda: dropped.append(pid) if dropped is not None else None)
    return Participant(pid, pid.upper(), language, room, outbox)


def test_target_languages_are_distinct_and_exclude_source_and_auto():
    rooms = Rooms(10, 10)
    speaker = person("s", "en")
    for p in (speaker, person("a", "de"), person("b", "de"), person("c", "pt"), person("d", "en"), person("e", "auto")):
        room = rooms.join(p)
    assert room.target_languages(speaker, "en") == ["de", "pt"]
    # A speaker detected as German: the English listener now needs a translation, the German ones do not.
    assert room.target_languages(speaker, "de") == ["en", "pt"]


def test_broadcast_serialises_once_and_reaches_the_audience():
    async def run():
        rooms = Rooms(10, 10)
        a, b, c = person("a", "en"), person("b", "de"), person("c", "de")
        for p in (a, b, c):
            room = rooms.join(p)
        room.broadcast(Pong(id=1), [b, c])
        got_b, got_c = await b.outbox.get(), await c.outbox.get()
        assert got_b == got_c == '{"type":"pong","id":1}' and got_b is got_c
        assert a.outbox.qsize() == 0

    asyncio.run(run())


def test_outbox_overflow_by_count_and_by_bytes():
    async def run():
        dropped = []
        p = person("p", "en", maxsize=2, dropped=dropped)
        p.outbox.put("1")
        p.outbox.put("2")
        p.outbox.put("3")  # full: the client is too slow
        p.outbox.put("4")  # further messages are ignored, the drop is reported once
        assert dropped == ["p"] and p.outbox.overflowed and p.outbox.qsize() == 2

        q = person("q", "en", maxsize=100, max_bytes=1000, dropped=dropped)
        q.outbox.put(("{}", bytes(600)))
        assert await q.outbox.get() == ("{}", bytes(600))  # getting frees the budget again
        q.outbox.put(("{}", bytes(600)))
        q.outbox.put(("{}", bytes(600)))
        assert dropped == ["p", "q"]

    asyncio.run(run())


def test_limits_and_empty_rooms_disappear():
    rooms = Rooms(max_rooms=1, max_per_room=1)
    a = person("a", "en", room="one")
    rooms.join(a)
    with pytest.raises(RoomFull):
        rooms.join(person("b", "en", room="one"))
    with pytest.raises(TooManyRooms):
        rooms.join(person("c", "en", room="two"))
    rooms.leave(a)
    assert len(rooms) == 0
    rooms.join(person("c", "en", room="two"))


def test_outbox_takes_one_big_message_when_empty_and_ignores_after_close():
    async def run():
        dropped = []
        p = person("p", "en", maxsize=10, max_bytes=100, dropped=dropped)
        p.outbox.put(("{}", bytes(500)))  # over the byte budget, but the client has caught up: it goes out
        assert p.outbox.qsize() == 1 and not dropped
        p.outbox.put("x")  # behind it, the budget applies
        assert dropped == ["p"]

        q = person("q", "en", maxsize=1, dropped=dropped)
        q.outbox.close()  # the connection is gone
        for _ in range(5):
            q.outbox.put("x")
        assert q.outbox.qsize() == 0 and dropped == ["p"]  # not counted as a slow reader

    asyncio.run(run())


def test_each_speaker_keeps_a_distinct_voice_while_in_the_room():
    rooms = Rooms(10, 10)
    a, b, c = person("a", "en"), person("b", "de"), person("c", "fr")
    for p in (a, b, c):
        room = rooms.join(p)
    assert [room.voice_of(p.id) for p in (b, a, b, c)] == [0, 1, 0, 2]
    rooms.leave(b)
    assert room.voice_of(a.id) == 1  # others keep theirs when someone leaves
    d = person("d", "es")
    rooms.join(d)
    assert room.voice_of(d.id) == 0  # the freed voice is reused
