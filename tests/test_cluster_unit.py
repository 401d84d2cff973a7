"""Cluster pieces without Redis: the frame format, rooms with remote members, what a received frame does."""

import json
from typing import Literal

import pytest

from babelfish import protocol as proto
from babelfish.cluster.envelope import BadFrame, Envelope, unpack
from babelfish.cluster.redis_node import RedisCluster, safe_url
from babelfish.metrics import Metrics
from babelfish.rooms import Outbox, Participant, RemoteMember, Rooms


def member(pid: str, language: str, audio: bool = True) -> Participant:
    return Participant(pid, pid, language, "r", Outbox(100, 1_000_000, lambda: None), wants_audio=audio)


def drain(p: Participant) -> list:
    return [p.outbox._queue.get_nowait() for _ in range(p.outbox.qsize())]


def test_frame_carries_audio_as_raw_bytes():
    pcm = bytes(range(256)) * 10
    frame = Envelope("result", "srv1", "r", {"text": '{"type":"audio"}', "language": "de", "audio": True}, pcm).pack()
    assert pcm in frame and b"base64" not in frame  # the PCM is appended as is
    back = unpack(frame)
    assert (back.kind, back.origin, back.room, back.payload) == ("result", "srv1", "r", pcm)
    assert back.body["language"] == "de"


@pytest.mark.parametrize("frame", [b"", b"\x00\x00\x00\x05{}", b"\x00\x00\x00\x02{}", b"garbage-garbage"])
def test_foreign_frames_are_refused(frame):
    with pytest.raises(BadFrame):
        unpack(frame)


def test_remote_members_count_in_languages_roster_and_size():
    rooms = Rooms(10, 3)
    ann = member("ann", "en")
    room = rooms.join(ann)
    room.remote["bob"] = RemoteMember("bob", "Bob", "de", False, "other")
    room.remote["eve"] = RemoteMember("eve", "Eve", "fr", True, "other")
    assert room.count == 3
    assert {p.id for p in room.roster()} == {"ann", "bob", "eve"}
    assert room.target_languages(ann, "en") == ["de", "fr"]
    assert room.wants_speech(ann, ["fr"]) and not room.wants_speech(ann, ["de"])
    with pytest.raises(Exception, match="full"):
        rooms.join(member("joe", "en"))  # the room limit is cluster-wide


# Client messages as a speaker's server relays them (this server's own encoding: forwarded unchanged).
SPEAKER = proto.Speaker(id="bob", name="Bob")
TRANSCRIPT = proto.Transcript(utterance_id="u1", speaker=SPEAKER, client_id="bob", text="Hallo", language="de",
                              audio_seconds=1.0, latency_ms=300).encode()  # fmt: skip
AUDIO = proto.AudioHeader(utterance_id="u1", speaker=SPEAKER, language="de", sample_rate=16000, bytes=4,
                          latency_ms=300).encode()  # fmt: skip


def test_a_received_result_reaches_local_listeners_of_its_language_only():
    rooms = Rooms(10, 10)
    de, de_text_only, fr = member("d1", "de"), member("d2", "de", audio=False), member("f1", "fr")
    for p in (de, de_text_only, fr):
        rooms.join(p)
    node = RedisCluster("redis://127.0.0.1:1/0", rooms, Metrics(), server_id="me")  # never connects here
    node._on_frame(Envelope("result", "other", "r", {"text": AUDIO, "language": "de", "audio": True}, b"pcm!").pack())
    node._on_frame(Envelope("result", "other", "r", {"text": TRANSCRIPT, "language": None}).pack())
    node._on_frame(Envelope("result", "me", "r", {"text": "mine", "language": None}).pack())  # own echo: ignored
    node._on_frame(Envelope("result", "other", "elsewhere", {"text": "x", "language": None}).pack())
    assert drain(de) == [(AUDIO, b"pcm!"), TRANSCRIPT]
    assert drain(de_text_only) == [TRANSCRIPT]
    assert drain(fr) == [TRANSCRIPT]


def test_remote_join_and_leave_are_announced_once():
    rooms = Rooms(10, 10)
    ann = member("ann", "en")
    room = rooms.join(ann)
    node = RedisCluster("redis://127.0.0.1:1/0", rooms, Metrics(), server_id="me")
    join = Envelope("join", "other", "r", {"id": "bob", "name": "Bob", "language": "de", "server": "other"}).pack()
    node._on_frame(join)
    node._on_frame(join)
    assert room.count == 2 and room.target_languages(ann, "en") == ["de"]
    node._on_frame(Envelope("leave", "other", "r", {"id": "bob"}).pack())
    events = [json.loads(m) for m in drain(ann)]
    assert [(e["event"], e["who"]["id"], e["count"]) for e in events] == [("join", "bob", 2), ("leave", "bob", 1)]


def test_redis_down_drops_remote_members_and_keeps_local_ones():
    rooms = Rooms(10, 10)
    ann = member("ann", "en")
    room = rooms.join(ann)
    node = RedisCluster("redis://127.0.0.1:1/0", rooms, Metrics(), server_id="me")
    node._set_up(True)
    room.remote["bob"] = RemoteMember("bob", "Bob", "de", True, "other")
    node._set_up(False)
    assert room.count == 1 and rooms.get("r") is room
    assert node.status()["redis"] == "down"


def test_the_password_never_reaches_the_log():
    assert safe_url("rediss://:s3cret@cache.example:6380/2") == "rediss://cache.example:6380/2"


def test_a_relayed_utterance_joins_the_room_transcript_in_time_order_once():
    from babelfish.transcripts import Entry

    rooms = Rooms(10, 10)
    room = rooms.join(member("ann", "en"))
    node = RedisCluster("redis://127.0.0.1:1/0", rooms, Metrics(), server_id="me")
    room.transcript.add(Entry("u-local", "ann", "Ann", 20.0, 21.0, "en", "later here"))
    spoken = Entry("u-remote", "spk-1", "Bob", 10.0, 12.0, "de", "Guten Morgen", {"en": "Good morning"})
    frame = Envelope("entry", "other", "r", spoken.to_wire()).pack()
    node._on_frame(frame)
    node._on_frame(frame)  # a repeat changes nothing
    node._on_frame(Envelope("entry", "other", "r", {"id": "broken"}).pack())  # not an entry: ignored
    got = room.transcript.entries()
    assert [e.utterance_id for e in got] == ["u-remote", "u-local"]
    assert (got[0].speaker_name, got[0].translations) == ("Bob", {"en": "Good morning"})


def test_a_message_for_everyone_reaches_every_room():
    rooms = Rooms(10, 10)
    ann, joe = member("ann", "en"), Participant("joe", "joe", "de", "other-room", Outbox(100, 1_000_000, lambda: None))
    rooms.join(ann)
    rooms.join(joe)
    node = RedisCluster("redis://127.0.0.1:1/0", rooms, Metrics(), server_id="me")
    text = '{"type":"speaker_renamed","speaker":{"id":"spk-1","name":"Maria"}}'
    node._on_frame(Envelope("all", "other", "", {"text": text}).pack())
    node._on_frame(Envelope("all", "me", "", {"text": "own echo"}).pack())
    # Only a speaker_renamed goes out, in this server's own encoding: anything else on the channel stops here.
    spaced = '{"type": "speaker_renamed", "speaker": {"id": "spk-2", "name": "Jo"}}'
    newer = '{"type":"speaker_renamed","speaker":{"id":"spk-1","name":"M","x":1},"html":"<script>"}'  # a newer server
    for bad in ('{"type":"transcript","text":"injected"}', "not json", '{"type":"speaker_renamed"}', newer,
                '{"type":"speaker_renamed","speaker":{"id":"spk-1","name":"' + "x" * 5000 + '"}}', spaced,
                '{"type":"speaker_renamed","speaker":{"id":"spk-1","name":7}}',
                '{"speaker":{"id":"spk-1","name":"M"}}'):  # fmt: skip
        node._on_frame(Envelope("all", "other", "", {"text": bad}).pack())
    again = '{"type":"speaker_renamed","speaker":{"id":"spk-2","name":"Jo"}}'
    without = '{"type":"speaker_renamed","speaker":{"id":"spk-1","name":"M"}}'  # what this one does not know: left out
    assert drain(ann) == [text, without, again] and drain(joe) == [text, without, again]


def test_a_relayed_revision_revises_the_relayed_pieces():
    from babelfish.transcripts import Entry

    rooms = Rooms(10, 10)
    room = rooms.join(member("ann", "en"))
    node = RedisCluster("redis://127.0.0.1:1/0", rooms, Metrics(), server_id="me")
    for uid, start, text in (("u1", 1.0, "good"), ("u2", 2.0, "morning")):
        piece = Entry(uid, "spk-1", "Bob", start, start + 0.8, "en", text, {"de": text.upper()})
        node._on_frame(Envelope("entry", "other", "r", piece.to_wire()).pack())
    revised = Entry("u1", "spk-1", "Bob", 1.0, 2.8, "en", "good morning", {"de": "Guten Morgen"}, ["u1", "u2"])
    node._on_frame(Envelope("entry", "other", "r", revised.to_wire()).pack())
    (only,) = room.transcript.entries()
    assert (only.utterance_id, only.text, only.translations, only.replaces, only.end) == (
        "u1", "good morning", {"de": "Guten Morgen"}, ["u1", "u2"], 2.8)  # fmt: skip


def test_relayed_entries_beyond_plausible_bounds_are_ignored():
    from babelfish.transcripts import MAX_WIRE_REPLACES, MAX_WIRE_TEXT, MAX_WIRE_TIME, Entry

    rooms = Rooms(10, 10)
    room = rooms.join(member("ann", "en"))
    node = RedisCluster("redis://127.0.0.1:1/0", rooms, Metrics(), server_id="me")
    good = Entry("u1", "spk-1", "Bob", 10.0, 12.0, "de", "Guten Morgen", {"en": "Good morning"}).to_wire()
    bad = [
        {**good, "start": float("nan")}, {**good, "end": float("inf")}, {**good, "start": 13.0}, {**good, "start": -5},
        {**good, "text": "x" * (MAX_WIRE_TEXT + 1)}, {**good, "translations": {"en": "y" * (MAX_WIRE_TEXT + 1)}},
        {**good, "replaces": [f"u{i}" for i in range(MAX_WIRE_REPLACES + 1)]}, {**good, "speaker": ["s", "n" * 500]},
        {**good, "end": 10.0 + 2 * 24 * 3600},
        # Times no transcript can write (its downloads and archive would fail on them): refused, not relayed in.
        {**good, "start": 10**30, "end": 10**30}, {**good, "start": 1e12, "end": 1e12 + 1},
    ]  # fmt: skip
    for body in bad:
        node._on_frame(Envelope("entry", "other", "r", body).pack())
    assert room.transcript.entries() == []
    assert {k: v for k, v in node._metrics.cluster_ignored.items() if v} == {"entry": len(bad)}  # none "failed"
    node._on_frame(Envelope("entry", "other", "r", good).pack())
    assert [e.utterance_id for e in room.transcript.entries()] == ["u1"]
    last = {**good, "id": "u2", "start": MAX_WIRE_TIME - 2, "end": MAX_WIRE_TIME}  # the latest time allowed
    node._on_frame(Envelope("entry", "other", "r", last).pack())
    assert [e.as_json(0.0)["end"] for e in room.transcript.entries()][-1].startswith("9999-12-31T23:59:59")


def test_a_relayed_utterance_the_archive_cannot_take_is_logged_not_raised(caplog):
    import asyncio

    from babelfish.transcripts import Entry

    class Broken:
        def append(self, transcript: object, entry: object) -> None:
            raise ValueError("not what anyone expected")

    rooms = Rooms(10, 10)
    room = rooms.join(member("ann", "en"))
    node = RedisCluster("redis://127.0.0.1:1/0", rooms, Metrics(), server_id="me", archive=Broken())  # type: ignore[arg-type]
    entry = Entry("u1", "spk-1", "Bob", 10.0, 12.0, "de", "Guten Morgen")
    asyncio.run(asyncio.wait_for(node._archive_later(room, entry), 10))
    assert "was not written" in caplog.text


def test_partials_for_redis_are_bounded_and_a_newer_one_replaces_the_waiting_one():
    """Partials are low priority on the way to Redis: one waiting per slot (the newest text, in the first one's place
    in line), at most PARTIAL_SLOTS waiting, none once the queue is a quarter full; finals still go."""
    from babelfish.cluster.redis_node import PARTIAL_ROOM, PARTIAL_SLOTS, Latest

    rooms = Rooms(10, 10)
    ann = member("ann", "en")
    room = rooms.join(ann)
    node = RedisCluster("redis://127.0.0.1:1/0", rooms, Metrics(), server_id="me")
    node._set_up(True)
    node.relay_partial(room, ("u1", "transcript", "en"), "nobody elsewhere", None)
    assert node._out.qsize() == 0  # nobody on another server: nothing to send
    room.remote["bob"] = RemoteMember("bob", "Bob", "de", True, "other")
    node.relay_partial(room, ("u1", "translation", "fr"), "no French listener elsewhere", "fr")
    assert node._out.qsize() == 0

    for n in range(50):  # a speaker's partials while Redis does not take them
        node.relay_partial(room, ("u1", "transcript", "en"), f"words {n}", None)
        node.relay_partial(room, ("u1", "translation", "de"), f"Wörter {n}", "de")
    node.relay(room, "final", None)
    queued = [node._take() for _ in range(node._out.qsize())]
    texts = [unpack(c[2].frame if isinstance(c[2], Latest) else c[2]).body["text"] for c in queued]
    assert texts == ["words 49", "Wörter 49", "final"]  # the newest of each slot, ahead of the final
    assert node.status()["partials_superseded"] == 98

    node.relay_partial(room, ("u1", "transcript", "en"), "taken: a new slot", None)
    assert node._out.qsize() == 1  # the one taken by the sender is no longer replaceable
    for n in range(PARTIAL_SLOTS + 10):
        node.relay_partial(room, (f"v{n}", "transcript", "en"), "x", None)
    assert node._out.qsize() == PARTIAL_SLOTS and node.status()["partials_shed"] == 11
    while node._out.qsize():
        node._take()
    for n in range(PARTIAL_ROOM):
        node.relay(room, f"final {n}", None)
    node.relay_partial(room, ("w", "transcript", "en"), "behind a backlog of finals", None)
    assert node._out.qsize() == PARTIAL_ROOM and node.status()["partials_shed"] == 12
    node._set_up(False)
    assert node._partials == {}


def test_one_phone_per_voice_frames_go_to_the_rooms_other_servers_and_come_back_to_the_sink():
    rooms = Rooms(10, 10)
    room = rooms.join(member("ann", "en"))
    node = RedisCluster("redis://127.0.0.1:1/0", rooms, Metrics(), server_id="me")
    node._set_up(True)
    got: list[tuple[str, str, dict, bytes]] = []

    class Sink:
        def remote(self, r: str, origin: str, body: dict, payload: bytes = b"") -> None:
            got.append((r, origin, body, payload))

        def unreachable(self, r: str, client: str) -> None:
            got.append((r, "", {"unreachable": client}, b""))

    node.listen_echoes(Sink())
    assert not node.shares("r")  # nobody elsewhere: nothing to tell
    node.echo("r", {"op": "open", "c": "ann", "since": None})
    assert node._out.qsize() == 0
    room.remote["bob"] = RemoteMember("bob", "Bob", "en", True, "other")
    assert node.shares("r") and not node.shares("nowhere")
    node.echo("r", {"op": "copy", "k": "ann:1"}, b"\x00\x3c" * 8)
    (cmd,) = [node._take() for _ in range(node._out.qsize())]
    sent = unpack(cmd[2])
    assert (sent.kind, sent.room, sent.body["op"], sent.payload) == ("echo", "r", "copy", b"\x00\x3c" * 8)

    node._on_frame(Envelope("echo", "other", "r", {"op": "verdict", "k": "bob:1"}, b"").pack())
    node._on_frame(Envelope("echo", "me", "r", {"op": "verdict", "k": "ann:1"}, b"").pack())  # our own: ignored
    assert got == [("r", "other", {"op": "verdict", "k": "bob:1"}, b"")]  # with its sender: only it settles bob:1
    node._on_frame(Envelope("leave", "other", "r", {"id": "bob"}).pack())  # left: its server finishes its speech
    assert got[-1] == ("r", "other", {"op": "open", "c": "bob", "since": None}, b"")
    room.remote["eve"] = RemoteMember("eve", "Eve", "en", True, "dead")
    node._reconcile(room, {}, since=None)  # its server is gone: nothing more of it will come
    assert got[-1] == ("r", "", {"unreachable": "eve"}, b"")


# --- what a server accepts from the others (babelfish/cluster/inbound.py) -------------------------------------------


def _node_with_german_listener() -> tuple[RedisCluster, Participant, Metrics]:
    """A server ("me") whose room "r" has one listener here, Ann, in German: what a relayed result reaches."""
    rooms = Rooms(10, 10)
    ann = member("ann", "de")
    rooms.join(ann)
    metrics = Metrics()
    return RedisCluster("redis://127.0.0.1:1/0", rooms, metrics, server_id="me"), ann, metrics


def _frame(kind: str, body: dict, payload: bytes = b"", origin: str = "other", room: str = "r") -> bytes:
    return Envelope(kind, origin, room, body, payload).pack()  # type: ignore[arg-type]


def test_hostile_frames_are_ignored_counted_by_reason_and_the_room_goes_on():
    """Frames no server of ours sends, through the real decoding path: none raises (which would end the subscription),
    each is counted by reason, no client hears of them; good frames alongside still work."""
    import struct

    from babelfish.cluster.inbound import MAX_FRAME_BYTES, MAX_HEAD_BYTES
    from babelfish.cluster.redis_node import CLUSTER_CHANNEL, channel
    from babelfish.echoes import EchoConfig, Echoes

    rooms = Rooms(10, 10)
    ann = member("ann", "de")
    room = rooms.join(ann)
    metrics = Metrics()
    node = RedisCluster("redis://127.0.0.1:1/0", rooms, metrics, server_id="me")
    node.listen_echoes(Echoes(EchoConfig(), lambda: "u1"))
    node._on_frame(_frame("join", {"id": "bob", "name": "Bob", "language": "de", "server": "other"}))
    drain(ann)
    transcript, audio = TRANSCRIPT, AUDIO
    deep = b"[" * 100_000
    hostile: dict[str, list[bytes]] = {
        "not_ours": [b"", b"\x00\x00\x00\x05{}", b"\x00\x00\x00\x40" + b"{}" * 8, b"\x00\x00\x00\x02[]",
                     struct.pack(">I", len(deep)) + deep, _frame("mystery", {}),
                     struct.pack(">I", 30) + b'{"k":"join","o":7,"r":"r","b":{}}'[:30]],
        "too_large": [struct.pack(">I", MAX_HEAD_BYTES + 1) + b"{}", b"\x00" * (MAX_FRAME_BYTES + 1)],
        "result": [_frame("result", {"text": 7, "language": "de"}),
                   _frame("result", {"text": "not json", "language": "de"}),
                   _frame("result", {"text": '{"type":"welcome"}', "language": "de"}),
                   _frame("result", {"text": transcript.replace('"latency_ms":300', '"latency_ms":"soon"'),
                                     "language": "de"}),
                   _frame("result", {"text": transcript.replace('"transcript"', '"reaction"'), "language": "de"}),
                   _frame("result", {"text": transcript, "language": {"de": 1}}),
                   _frame("result", {"text": transcript, "language": "de"}, b"pcm?"),
                   _frame("result", {"text": audio, "language": "de", "audio": True}, b"\x00" * 6),
                   _frame("result", {"text": audio, "language": "de", "audio": "yes"}, b"\x00" * 4),
                   _frame("result", {"text": transcript, "language": "de", "audio": True}, b"\x00" * 4),
                   _frame("result", {"text": "x" * 300_000, "language": "de"}),
                   *[_frame("result", {"text": transcript.replace('"audio_seconds":1.0', f'"audio_seconds":{x}'),
                                       "language": "de"}) for x in ("NaN", "Infinity", "-Infinity", "1e400")]],
        "member": [_frame("join", {"id": "eve", "name": "E" * 5000, "language": "de", "server": "other"}),
                   _frame("join", {"id": 5, "name": "Eve", "language": "de", "server": "other"}),
                   _frame("join", {"id": "eve", "name": "Eve", "language": "de", "server": "third"}),
                   _frame("join", {"id": "eve", "name": "Eve", "language": "de", "audio": "no", "server": "other"}),
                   _frame("leave", {"id": ["bob"]}), _frame("leave", {"id": "bob"}, origin="third")],
        "entry": [_frame("entry", {"id": "u9", "speaker": ["s", "n"], "start": float("nan"), "end": 1.0,
                                   "language": "de", "text": "x"}),
                  _frame("entry", {"id": "u9", "speaker": ["s", "n"], "start": 1.0, "end": 10**400,
                                   "language": "de", "text": "x"})],
        "all": [_frame("all", {"text": '{"type":"transcript","text":"injected"}'}, room="")],
        "echo": [_frame("echo", {"op": "gone", "c": "bob"}), _frame("echo", {"op": "open", "c": "bob",
                                                                             "since": float("nan")})],
        "echo_foreign": [_frame("echo", {"op": "open", "c": "ann", "since": 1.0})],
    }  # fmt: skip
    for frames in hostile.values():
        for frame in frames:
            node._on_frame(frame)
    # On the wrong channel: another room's, or a room's for a message to everyone.
    node._on_frame(_frame("result", {"text": transcript, "language": "de"}), channel("elsewhere").encode())
    node._on_frame(_frame("all", {"text": '{"type":"speaker_renamed","speaker":{"id":"s","name":"M"}}'}, room=""),
                   channel("r").encode())  # fmt: skip
    expected = {reason: len(frames) for reason, frames in hostile.items()} | {"wrong_channel": 2}
    assert {k: v for k, v in metrics.cluster_ignored.items() if v} == expected
    assert node.status()["ignored"] == sum(expected.values())
    assert b'babelfish_cluster_frames_ignored_total{reason="echo"} 2.0' in metrics.prometheus()
    assert drain(ann) == [] and set(room.remote) == {"bob"}

    # Good frames alongside, on their own channels: delivered in this server's own encoding.
    node._on_frame(_frame("result", {"text": transcript, "language": "de"}), channel("r").encode())
    node._on_frame(_frame("result", {"text": audio, "language": "de", "audio": True}, b"\x01\x02\x03\x04"))
    node._on_frame(_frame("join", {"id": "eve", "name": "Eve", "language": "fr", "server": "other"}))
    renamed = '{"type":"speaker_renamed","speaker":{"id":"s","name":"M"}}'
    node._on_frame(_frame("all", {"text": renamed}, room=""), CLUSTER_CHANNEL.encode())
    got = drain(ann)
    assert got[:2] == [transcript, (audio, b"\x01\x02\x03\x04")]
    assert json.loads(got[2])["event"] == "join" and got[3] == renamed and len(got) == 4
    assert node.status()["ignored"] == sum(expected.values())


def test_a_copy_is_settled_only_by_the_server_that_told_it():
    """The node hands the sender to the filter: a third server's outcome for another server's kept copy is refused
    (echo_foreign), the real sender's is taken."""
    import asyncio
    import time

    import numpy as np

    from babelfish.echoes import EchoConfig, Echoes

    async def run() -> None:
        rooms = Rooms(10, 10)
        rooms.join(member("ann", "en"))
        metrics = Metrics()
        node = RedisCluster("redis://127.0.0.1:1/0", rooms, metrics, server_id="me")
        echoes = Echoes(EchoConfig(), lambda: "u1")
        node.listen_echoes(echoes)
        node._on_frame(_frame("join", {"id": "bob", "name": "Bob", "language": "en", "server": "other"}))
        now = time.time()
        copy = {"op": "copy", "k": "bob:1", "c": "bob", "s": now - 1, "e": now, "t0": now - 1.1, "q": [20.0, -30.0]}
        node._on_frame(_frame("echo", copy, np.full((100, 8), 0.5, "<f2").tobytes()))
        node._on_frame(_frame("echo", {"op": "verdict", "k": "bob:1", "keep": True, "u": "u7"}))
        (kept,) = echoes._rooms["r"].copies
        assert kept.outcome is not None and not kept.outcome.done()
        node._on_frame(_frame("echo", {"op": "outcome", "k": "bob:1", "r": "shed"}, origin="third"))
        assert metrics.cluster_ignored["echo_foreign"] == 1 and not kept.outcome.done()
        node._on_frame(_frame("echo", {"op": "outcome", "k": "bob:1", "r": "ok"}))
        assert kept.outcome.result() == "ok" and node.status()["ignored"] == 1

    asyncio.run(asyncio.wait_for(run(), 10))


def test_a_newer_servers_results_are_forwarded_without_what_this_server_does_not_know():
    """Rolling upgrades: a newer server may add fields to the messages it relays; this one forwards them in its own
    encoding, without those fields, rather than refuse every result that server renders. A known field with a wrong
    value or an unknown message type is still refused, and what clients send stays strict."""
    node, ann, metrics = _node_with_german_listener()
    newer = json.loads(TRANSCRIPT) | {"confidence": 0.9}
    newer["speaker"] = {**newer["speaker"], "pronouns": "he"}
    node._on_frame(_frame("result", {"text": json.dumps(newer), "language": None}))
    header = json.loads(AUDIO) | {"codec_hint": "x"}
    node._on_frame(_frame("result", {"text": json.dumps(header), "language": "de", "audio": True}, b"\x01\x02\x03\x04"))
    assert drain(ann) == [TRANSCRIPT, (AUDIO, b"\x01\x02\x03\x04")]
    for bad in ({**newer, "latency_ms": "soon"}, {**newer, "speaker": {"id": "bob", "name": None, "pronouns": "he"}},
                {**newer, "type": "reaction"}, {k: v for k, v in newer.items() if k != "text"}):  # fmt: skip
        node._on_frame(_frame("result", {"text": json.dumps(bad), "language": None}))
    assert drain(ann) == [] and metrics.cluster_ignored["result"] == 4
    with pytest.raises(proto.ProtocolError, match="Extra inputs"):  # the client edge is as strict as ever
        proto.parse_client_message('{"type": "ping", "sent_by": "a newer page"}', 4096)


# Every client message a server relays (inbound.Relayed), as servers build them: each kind, with and without its
# optional parts (a notice's speaker, a revision's translation fields).
RELAYED_SAMPLES: list[proto._Out] = [
    proto.Transcript.model_validate_json(TRANSCRIPT),
    proto.Translation(utterance_id="u1", speaker=SPEAKER, text="Hello", language="en", source_language="de",
                      via="apertium", latency_ms=400),
    proto.Partial(utterance_id="u1", speaker=SPEAKER, client_id="bob", kind="transcript", language="de",
                  source_language="de", stable="Hal", tail="lo", seq=1, audio_seconds=0.5, elapsed_ms=600),
    proto.PartialEnd(utterance_id="u1"),
    proto.AudioHeader.model_validate_json(AUDIO),
    proto.HeardBy(utterance_id="u1", client_id="eve", name="Eve"),
    proto.Notice.untranslatable("u1", SPEAKER, "en", "No translation."),
    proto.Notice.dropped_utterance(),
    proto.Revision(of="transcript", utterance_id="u1", replaces=["u1", "u2"], speaker=SPEAKER, client_id="bob",
                   text="Hallo zusammen", language="de", latency_ms=900),
    proto.Revision(of="translation", utterance_id="u1", replaces=["u1", "u2"], speaker=SPEAKER, client_id="bob",
                   text="Hello all", language="en", source_language="de", via="apertium", latency_ms=950),
]  # fmt: skip


def _with_extras(value: object) -> object:
    """`value` (decoded JSON) with a key no version knows added to every object in it, at any depth."""
    if isinstance(value, dict):
        return {**{k: _with_extras(v) for k, v in value.items()}, "added_later": {"nested": [1, None]}}
    if isinstance(value, list):
        return [_with_extras(v) for v in value]
    return value


def test_the_samples_cover_every_relayed_message_type():
    from typing import get_args

    from babelfish.cluster import inbound

    assert {type(m) for m in RELAYED_SAMPLES} == set(get_args(inbound.Relayed))


@pytest.mark.parametrize("message", RELAYED_SAMPLES, ids=lambda m: f"{m.type}:{len(m.model_fields_set)}")
def test_every_relayed_message_from_a_newer_server_is_forwarded_without_what_this_one_does_not_know(message):
    """Extra keys at the top level and in every nested model: forwarded, in this server's encoding (byte for byte what
    the sender's own fields give); a known field with a bad value, at the top level or nested, is still refused."""
    node, ann, metrics = _node_with_german_listener()
    audio = isinstance(message, proto.AudioHeader)
    pcm = b"\x01\x02\x03\x04" if audio else b""

    def send(data: object) -> None:
        node._on_frame(_frame("result", {"text": json.dumps(data), "language": "de", "audio": audio}, pcm))

    sent = json.loads(message.encode())
    newer = _with_extras(sent)
    assert isinstance(newer, dict)
    assert json.dumps(newer).count("added_later") == 1 + ("speaker" in sent)  # the test reaches every nested model
    send(newer)
    (got,) = drain(ann)
    assert got == ((message.encode(), pcm) if audio else message.encode())
    assert "added_later" not in (got[0] if audio else got)
    assert node.status()["ignored"] == 0

    bad = [{**newer, "utterance_id": 7}]  # every relayed message has a known field to spoil
    if "speaker" in sent:
        bad.append({**newer, "speaker": {**newer["speaker"], "name": None}})
    if "audio_seconds" in sent:
        bad.append(json.loads(json.dumps(newer).replace(f'"audio_seconds": {sent["audio_seconds"]}',
                                                        '"audio_seconds": NaN')))  # fmt: skip
    for data in bad:
        send(data)
    assert drain(ann) == [] and metrics.cluster_ignored["result"] == len(bad)


class _Word(proto._Out):
    text: str
    start: float


class _Alternative(proto._Out):
    kind: Literal["alternative"]
    text: str


class _Shapes(proto._Out):
    """Shapes no relayed message has today, which a later version may add: models in a list, a dict, a union."""

    type: Literal["shapes"] = "shapes"
    words: list[_Word]
    by_language: dict[str, _Word]
    either: _Word | _Alternative | None = None


def test_fields_a_newer_server_added_inside_lists_dicts_and_unions_of_models_are_left_out():
    """The same validation as a relayed result's (`inbound.client_message`), on shapes the protocol may grow: what a
    newer version added deep inside is left out, nothing known is lost (a dict emptied, a union member mistaken)."""
    from pydantic import TypeAdapter

    from babelfish.cluster.inbound import Ignored, client_message

    shapes = TypeAdapter(_Shapes)
    sent = _Shapes(words=[_Word(text="a", start=0.0), _Word(text="b", start=0.5)], by_language={"en": _Word(text="c",
                   start=1.0)}, either=_Alternative(kind="alternative", text="d"))  # fmt: skip
    newer = _with_extras(json.loads(sent.encode()))  # every object is a model but `by_language` itself, a dict:
    assert isinstance(newer, dict)
    newer["by_language"].pop("added_later")  # a key added there would be a word, not a field
    assert json.dumps(newer).count("added_later") == 5
    got = client_message(json.dumps(newer), shapes)
    assert not isinstance(got, Ignored), got.detail
    assert got.encode() == sent.encode()
    for bad in (
        {**newer, "words": [{"text": "a", "start": "soon"}]},
        {**newer, "by_language": {"en": {"text": 1}}},
        {**newer, "either": {"kind": "other", "text": "d"}},
        {k: v for k, v in newer.items() if k != "type"},
    ):
        assert isinstance(client_message(json.dumps(bad), shapes), Ignored)


def test_no_message_carries_nan_or_an_infinity():
    """JSON has neither: a client would get null where a number is promised. Refused when built, as when relayed."""
    from pydantic import ValidationError

    for x in (float("nan"), float("inf")):
        with pytest.raises(ValidationError, match="finite"):
            proto.Transcript(**{**json.loads(TRANSCRIPT), "audio_seconds": x})


# Each integer field of a relayed message, in the samples (no relayed message has one nested in a model).
INTEGER_FIELDS = [(m, k) for m in RELAYED_SAMPLES for k, v in json.loads(m.encode()).items() if type(v) is int]


@pytest.mark.parametrize(("message", "field"), INTEGER_FIELDS, ids=lambda x: x if isinstance(x, str) else x.type)
def test_an_integer_out_of_its_bounds_in_a_relayed_message_is_refused(message, field, caplog):
    """JSON integers have no limit (10**30 is read whole), a page's numbers lose digits beyond 2**53: an integer of a
    relayed message out of its bounds (beyond that, or a count, duration or rate below its least) is refused like any
    invalid value, counted, logged without a traceback, never forwarded. Refused when built, too."""
    from pydantic import ValidationError

    node, ann, metrics = _node_with_german_listener()
    audio = isinstance(message, proto.AudioHeader)
    sent = json.loads(message.encode())
    bad = [10**30, 2**53, -1]
    for x in bad:
        node._on_frame(_frame("result", {"text": json.dumps({**sent, field: x}), "language": "de", "audio": audio},
                              b"\x01\x02\x03\x04" if audio else b""))  # fmt: skip
        with pytest.raises(ValidationError):
            type(message)(**{**sent, field: x})
    assert drain(ann) == []
    assert {k: v for k, v in metrics.cluster_ignored.items() if v} == {"result": len(bad)}
    assert not [r for r in caplog.records if r.exc_info], caplog.text


class BrokenSink:
    """An echo sink with a bug: every call raises."""

    def remote(self, room: str, origin: str, body: dict, payload: bytes = b"") -> None:
        raise RuntimeError("a bug in the filter")

    def unreachable(self, room: str, client: str) -> None:
        raise RuntimeError("a bug in the filter")


def test_a_failure_while_handling_a_frame_is_logged_and_counted_not_raised(caplog):
    rooms = Rooms(10, 10)
    rooms.join(member("ann", "en"))
    metrics = Metrics()
    node = RedisCluster("redis://127.0.0.1:1/0", rooms, metrics, server_id="me")
    node.listen_echoes(BrokenSink())
    for _ in range(3):
        node._on_frame(_frame("echo", {"op": "verdict", "k": "bob:1", "keep": True, "u": "u1"}))
    assert metrics.cluster_ignored["failed"] == 3
    (logged,) = [r for r in caplog.records if r.levelname == "ERROR"]  # once, with its traceback; repeats counted
    assert logged.exc_info is not None and "a bug in the filter" in caplog.text


def test_what_peers_make_a_server_keep_is_bounded(monkeypatch):
    """Remote participants never outgrow the room, presence changes remembered between heartbeats are capped, and a
    room's table in Redis yields only plausible participants."""
    from babelfish.cluster import redis_node

    monkeypatch.setattr(redis_node, "MAX_HEARD", 50)
    rooms = Rooms(10, 5)
    ann = member("ann", "en")
    room = rooms.join(ann)
    metrics = Metrics()
    node = RedisCluster("redis://127.0.0.1:1/0", rooms, metrics, server_id="me")
    for i in range(20):
        node._on_frame(_frame("join", {"id": f"p{i}", "name": "P", "language": "en", "server": "other"}))
    assert len(room.remote) == 5 and metrics.cluster_ignored["room_full"] == 15
    for i in range(1000):
        node._on_frame(_frame("leave", {"id": f"q{i}"}))
    assert len(node._heard) == 50
    good = {"id": "bob", "name": "Bob", "language": "de", "audio": True, "server": "s2"}
    table = {
        b"bob": json.dumps(good).encode(),
        b"deep": b"[" * 100_000,
        b"junk": b"not json",
        b"list": b"[1, 2]",
        b"alias": json.dumps({**good, "id": "eve"}).encode(),
        b"huge": json.dumps({**good, "id": "huge", "name": "x" * 10_000}).encode(),
        b"noserver": json.dumps({k: v for k, v in good.items() if k != "server"}).encode(),
    }
    before = metrics.cluster_ignored["member"]
    read, whole = node._members_of(table)
    assert list(read) == ["bob"] and whole
    assert metrics.cluster_ignored["member"] - before == 6
    crowded = {f"p{i}".encode(): json.dumps({**good, "id": f"p{i}"}).encode() for i in range(1000)}
    read, whole = node._members_of(crowded)
    assert len(read) == 10 and not whole  # twice the room's capacity at most


def test_the_log_of_ignored_frames_cannot_flood():
    """The first ignored frame per peer and reason is logged, then at most one line a minute with how many since;
    invented peer names share one line per reason beyond MAX_LOG_KEYS."""
    import logging

    from babelfish.cluster import inbound

    now = [0.0]
    counted: list[str] = []
    tally = inbound.Tally(counted.append, clock=lambda: now[0])
    lines: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Catch()
    inbound.log.addHandler(handler)
    try:
        for _ in range(1000):
            tally.ignore(inbound.Ignored("echo", "nonsense"), "peer-1")
        assert len(lines) == 1
        now[0] = inbound.LOG_EVERY + 1
        tally.ignore(inbound.Ignored("echo", "nonsense"), "peer-1")
        assert len(lines) == 2 and "999 more" in lines[-1]
        for i in range(10_000):
            tally.ignore(inbound.Ignored("member", "nonsense"), f"invented-{i}")
        assert len(lines) <= 2 + inbound.MAX_LOG_KEYS + 1
    finally:
        inbound.log.removeHandler(handler)
    assert len(counted) == 1001 + 10_000 and tally.total == len(counted)


def test_relayed_utterances_waiting_for_a_slow_archive_are_bounded():
    """A disk that cannot keep up holds at most MAX_ARCHIVE_PENDING relayed utterances in flight (the room's transcript
    in memory still has every one)."""
    import asyncio
    import threading

    from babelfish.cluster.inbound import MAX_ARCHIVE_PENDING
    from babelfish.transcripts import Entry

    gate = threading.Event()
    written: list[str] = []

    class Slow:
        def append(self, transcript: object, entry: Entry) -> None:
            gate.wait(10)
            written.append(entry.utterance_id)

    async def run() -> None:
        rooms = Rooms(10, 10)
        room = rooms.join(member("ann", "en"))
        node = RedisCluster("redis://127.0.0.1:1/0", rooms, Metrics(), server_id="me", archive=Slow())  # type: ignore[arg-type]
        for i in range(MAX_ARCHIVE_PENDING + 50):
            entry = Entry(f"u{i}", "spk-1", "Bob", float(i), i + 0.5, "de", "Hallo")
            node._on_frame(_frame("entry", entry.to_wire()))
        assert node._archiving == MAX_ARCHIVE_PENDING and len(room.transcript.entries()) == MAX_ARCHIVE_PENDING + 50
        gate.set()
        assert await node._tasks.wait(10) == 0
        assert len(written) == MAX_ARCHIVE_PENDING and node._archiving == 0

    asyncio.run(run())


# --- the heartbeat, against a Redis that only keeps hashes and alive keys ----------------------------------------


class _Pipe:
    def __init__(self, redis: "_Redis") -> None:
        self._redis, self._ops = redis, []  # type: ignore[var-annotated]

    def set(self, key: str, value: str, px: int) -> None:
        self._ops.append(lambda: True)

    def hset(self, key: str, mapping: dict) -> None:
        self._ops.append(lambda: self._redis.tables.setdefault(key, {}).update(
            {f.encode(): v.encode() for f, v in mapping.items()}))  # fmt: skip

    def pexpire(self, key: str, ms: int) -> None:
        self._ops.append(lambda: True)

    def hgetall(self, key: str) -> None:
        self._ops.append(lambda: dict(self._redis.tables.get(key, {})))

    def hdel(self, key: str, *fields: str) -> None:
        self._ops.append(lambda: [self._redis.tables.get(key, {}).pop(f.encode(), None) for f in fields])

    async def execute(self) -> list:
        return [op() for op in self._ops]


class _Redis:
    """What the heartbeat asks of Redis: pipelines of set/hset/pexpire/hgetall/hdel, and MGET of alive keys."""

    def __init__(self, alive: set[str]) -> None:
        self.tables: dict[str, dict[bytes, bytes]] = {}
        self.alive = alive

    def pipeline(self, transaction: bool = False) -> _Pipe:
        return _Pipe(self)

    async def mget(self, keys: list[str]) -> list:
        from babelfish.cluster.redis_node import alive_key

        return [b"1" if any(k == alive_key(s) for s in self.alive) else None for k in keys]


def _entry(pid: str, server: str) -> tuple[bytes, bytes]:
    return pid.encode(), json.dumps({"id": pid, "name": pid, "language": "en", "server": server}).encode()


def test_a_room_table_too_large_to_read_whole_never_drops_live_members():
    """Crashed servers' leftovers overflow a room's table (more than it can hold): the members not read are not taken
    for gone (they would leave and rejoin at every beat, their kept copies counted lost); those whose server is dead
    still go; the leftovers read are deleted, until the table is read whole again."""
    import asyncio

    from babelfish.cluster.redis_node import room_key

    async def run() -> None:
        rooms = Rooms(10, 3)  # a table read holds at most 6 entries
        ann = member("ann", "en")
        room = rooms.join(ann)
        node = RedisCluster("redis://127.0.0.1:1/0", rooms, Metrics(), server_id="me", heartbeat_seconds=0.01)
        redis = node._redis = _Redis({"s2"})  # type: ignore[assignment]
        leftovers = dict(_entry(f"ghost{i}", "crashed") for i in range(8))  # read first: the live ones are not read
        redis.tables[room_key("r")] = {**leftovers, **dict([_entry("bob", "s2"), _entry("carl", "dead")])}
        room.remote["bob"] = RemoteMember("bob", "bob", "en", True, "s2")
        room.remote["carl"] = RemoteMember("carl", "carl", "en", True, "dead")
        node._listening = True
        await node._heartbeat()
        assert set(room.remote) == {"bob"}  # bob was not read but his server is alive; carl's is not
        left = [json.loads(m)["who"]["id"] for m in drain(ann)]
        assert left == ["carl"]
        await node._heartbeat()  # 6 leftovers were deleted at the first beat: the rest is read whole now
        assert set(redis.tables[room_key("r")]) == {b"ann", b"bob"}
        assert set(room.remote) == {"bob"} and drain(ann) == []

    asyncio.run(asyncio.wait_for(run(), 10))


def test_a_failing_filter_cannot_fail_the_heartbeat_nor_the_other_rooms_clean_up(caplog):
    """A member whose server died leaves through the filter (`unreachable`): if that raises (a bug), the beat still
    goes through (else the node would go down and drop every room's remote members), and Redis going down still
    empties every room, not only the rooms before the failing one; each failure is counted and logged."""
    import asyncio

    async def run() -> None:
        rooms = Rooms(10, 10)
        one = rooms.join(member("ann", "en"))
        two = rooms.join(Participant("joe", "joe", "en", "r2", Outbox(100, 1_000_000, lambda: None)))
        metrics = Metrics()
        node = RedisCluster("redis://127.0.0.1:1/0", rooms, metrics, server_id="me")
        node._redis = _Redis({"s2"})  # type: ignore[assignment]
        node.listen_echoes(BrokenSink())
        node._listening = True
        one.remote["carl"] = RemoteMember("carl", "carl", "en", True, "dead")
        one.remote["bob"] = RemoteMember("bob", "bob", "en", True, "s2")
        node._redis.tables["babelfish:room:r"] = dict([_entry("bob", "s2")])  # type: ignore[attr-defined]
        await node._heartbeat()  # carl's server is dead: he leaves, and the filter fails
        assert set(one.remote) == {"bob"} and metrics.cluster_ignored["failed"] == 1
        two.remote["dan"] = RemoteMember("dan", "dan", "en", True, "s2")
        node._set_up(True)
        node._set_up(False)  # Redis down: nobody elsewhere can be reached, in any room
        assert one.remote == {} and two.remote == {} and metrics.cluster_ignored["failed"] == 3

    asyncio.run(asyncio.wait_for(run(), 10))
    assert "a bug in the filter" in caplog.text
