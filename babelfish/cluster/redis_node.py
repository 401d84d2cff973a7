"""This server as one node of a cluster, through Redis: presence, heartbeat, room fan-out.

Redis holds, per room, a hash of its participants cluster-wide (field: participant id, value: who and on which
server) and, per server, a key that lives 3 heartbeats (`alive`). Each room has a pub/sub channel carrying
joins, leaves and results. Pub/sub rather than streams: results are live speech, useless a few seconds late and
never replayed to anyone, so fire-and-forget delivery with no storage, trimming or consumer bookkeeping fits;
what pub/sub can lose (a frame sent while a server reconnects) is repaired for presence by the heartbeat, which
reconciles every room with the hash; a lost result is one card missed, as with a dropped local connection.

Who renders: the speaker's server renders every language its room needs cluster-wide (remote listeners are in
`Room.remote`) and relays each result once on the room's channel; the other servers forward it to their local
listeners of that language. So each distinct target language is rendered once in the whole cluster.

Redis down: every call fails fast (short socket timeouts, no retries), the node says `down`, drops the remote
participants from its rooms (telling its clients they left) and goes on serving its local clients; the heartbeat
keeps trying, and once Redis answers the node re-registers its participants and re-reads every room (`up` again).

Beyond presence and results, the same channels carry: each finished utterance (`entry`, translations included) so
every server's copy of the room transcript holds the whole room (while it has members there); and, on the cluster
channel, messages for every client everywhere (`all`: `speaker_renamed`, since known voices are shared by the whole
cluster; a receiving server parses it as that message and sends its own encoding, so nothing else written to the
channel reaches a client).
A newcomer's welcome lists the whole room: `sync` reads the room's hash from Redis before the welcome is sent.

Outbound overflow policy: relayed frames and presence writes wait in one bounded queue (QUEUE_MAX); when it is full
(Redis too slow) the newest frame is dropped and counted, so the speaker's server never waits on Redis.
Streaming partials are the lowest priority in that queue: each carries its utterance's whole text so far, so a partial
still waiting is replaced in place by the next one of the same utterance, kind and language (its place in line keeps
it ahead of that utterance's final), and a new one is dropped (counted as `shed`) when PARTIAL_SLOTS partials already
wait or the queue is a quarter full: finals never wait behind partials, and a slow Redis sees at most one partial per
utterance and language at a time.

Inbound: every frame from the other servers is checked before it changes anything here (babelfish/cluster/inbound.py);
one that fails is ignored, counted by reason and logged sparingly, and nothing raises into the listener, since an
exception there would end the subscription and cut this server off the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from babelfish import protocol as proto
from babelfish.cluster import EchoSink, inbound
from babelfish.cluster.envelope import BadFrame, Envelope, unpack
from babelfish.cluster.inbound import MAX_ARCHIVE_PENDING, MAX_HEARD, MAX_MEMBER_BYTES, Ignored, Result, Tally, short
from babelfish.metrics import Metrics
from babelfish.rooms import Participant, RemoteMember, Room, Rooms, passcode_digest
from babelfish.tasks import TaskSet
from babelfish.transcripts import Entry, TranscriptArchive

log = logging.getLogger(__name__)

PREFIX = "babelfish:"
QUEUE_MAX = 4096  # frames waiting for Redis
PARTIAL_SLOTS = 64  # streaming partials waiting for Redis, all rooms together
PARTIAL_ROOM = QUEUE_MAX // 4  # partials are only queued while fewer frames than this wait
BATCH = 256  # frames sent in one round trip
ROOM_TTL_MS = 60_000  # a room hash nobody refreshes (every server in it gone) disappears after this
POLL_SECONDS = 0.1  # the listener looks for new rooms to subscribe to this often
FAILURES = (RedisError, OSError, TimeoutError)
MAX_ALL_BYTES = 2048  # a relayed message for every client (speaker_renamed: an id and a name) is never larger


class Latest:
    """A partial waiting for Redis: the newest frame of its slot (room, utterance id, kind, language)."""

    __slots__ = ("frame", "key")

    def __init__(self, key: tuple[str, ...], frame: bytes) -> None:
        self.key, self.frame = key, frame


# ("publish", channel, frame or Latest) | ("hset", key, {field: value}) | ("hdel", key, field)
Command = tuple[str, str, Any]


def alive_key(server: str) -> str:
    return f"{PREFIX}alive:{server}"


def room_key(room: str) -> str:
    return f"{PREFIX}room:{room}"


CLUSTER_CHANNEL = f"{PREFIX}cluster"


def channel(room: str) -> str:
    return f"{PREFIX}room:{room}:events"


def cluster_name(room: Room) -> str:
    """The room's name in Redis. A room with a passcode is a different cluster room for each passcode, so a server
    that does not host the room yet cannot let someone into it by creating it there with another passcode (or none).
    Room names cannot hold ':', so no plain name meets a locked one."""
    return locked_name(room.name, room.passcode_digest)


def locked_name(name: str, digest: bytes | None) -> str:
    if digest is None:
        return name
    return f"{name}:locked:{hashlib.sha256(b'babelfish-room:' + digest).hexdigest()[:32]}"


def safe_url(url: str) -> str:
    """The URL for a log line: no password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


class RedisCluster:
    def __init__(
        self,
        url: str,
        rooms: Rooms,
        metrics: Metrics,
        heartbeat_seconds: float = 1.0,
        server_id: str | None = None,
        archive: TranscriptArchive | None = None,  # relayed utterances go to disk here too (retention on)
    ) -> None:
        self.server_id = server_id or secrets.token_hex(4)
        self._url = url
        timeout = max(0.5, heartbeat_seconds)
        # Fail fast: one immediate retry (after a Redis restart the pool's idle connections are stale, and the retry
        # takes a fresh one), no backoff; the heartbeat is the real retry, and local clients never wait on Redis.
        self._redis = aioredis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1)
        )
        self._rooms, self._metrics, self._archive = rooms, metrics, archive
        self._beat = heartbeat_seconds
        self._ttl_ms = round(heartbeat_seconds * 3000)
        self._out: asyncio.Queue[Command] = asyncio.Queue(QUEUE_MAX)
        self._wake = asyncio.Event()
        self._tasks = TaskSet()
        # Presence changes heard on pub/sub, by (room, participant id): a heartbeat's snapshot older than one
        # does not undo it.
        self._heard: dict[tuple[str, str], float] = {}
        self._entered: dict[str, str] = {}  # participant id -> its room's cluster name, for `left`
        self._partials: dict[tuple[str, ...], Latest] = {}  # partials queued and not yet taken by the sender
        self.up = False  # the heartbeat gets through and the subscription stands
        self._beating = self._listening = False
        self.published = self.received = self.dropped = 0
        self.partials_shed = self.partials_superseded = 0
        self._echo_sink: EchoSink | None = None
        self._tally = Tally(metrics.cluster_frame_ignored)  # frames ignored (babelfish/cluster/inbound.py)
        self._archiving = 0  # relayed utterances on their way to the archive
        self._archive_busy = False  # MAX_ARCHIVE_PENDING reached (and said so in the log)
        metrics.set_cluster_up(False)

    # --- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        log.info("cluster node %s joining through Redis at %s", self.server_id, safe_url(self._url))
        self._tasks.spawn(self._presence_loop())
        self._tasks.spawn(self._sender_loop())
        self._tasks.spawn(self._listen_loop())

    async def stop(self) -> None:
        """Say goodbye (best effort, bounded): what is queued goes out, and this server's participants go."""
        await self._tasks.cancel_all()
        with contextlib.suppress(*FAILURES):
            async with asyncio.timeout(2):
                batch = [self._take() for _ in range(self._out.qsize())]
                pipe = self._redis.pipeline(transaction=False)
                for cmd in batch:
                    _queue_command(pipe, cmd)
                for room in self._rooms:
                    if room.members:
                        pipe.hdel(room_key(cluster_name(room)), *room.members)
                pipe.delete(alive_key(self.server_id))
                await pipe.execute()
        with contextlib.suppress(*FAILURES):
            async with asyncio.timeout(2):  # a Redis that stopped answering must not hold up the shutdown
                await self._redis.aclose()

    # --- what the server tells the cluster (on the event loop, never waiting) ----------------------

    def entered(self, p: Participant) -> None:
        body = _member_body(p, self.server_id)
        room = self._rooms.get(p.room_name)
        name = self._entered[p.id] = cluster_name(room) if room is not None else p.room_name
        self._send(("hset", room_key(name), {p.id: json.dumps(body)}))
        self._send(("publish", channel(name), Envelope("join", self.server_id, p.room_name, body).pack()))
        self._wake.set()  # a new room is read from Redis at once, not at the next beat

    def left(self, p: Participant) -> None:
        name = self._entered.pop(p.id, p.room_name)  # its room may be gone already (the last one out)
        self._send(("hdel", room_key(name), p.id))
        body = {"id": p.id}
        self._send(("publish", channel(name), Envelope("leave", self.server_id, p.room_name, body).pack()))

    def relay(
        self, room: Room, text: str, language: str | None, pcm: bytes | None = None, audio_only: bool = False
    ) -> None:
        if _needed(room, language, pcm is not None or audio_only):
            body = {"text": text, "language": language, "audio": pcm is not None, "audio_only": audio_only}
            frame = Envelope("result", self.server_id, room.name, body, pcm or b"").pack()
            self._send(("publish", channel(cluster_name(room)), frame))

    def relay_partial(self, room: Room, slot: tuple[str, str, str], text: str, language: str | None) -> None:
        if not self.up or not _needed(room, language, False):
            return
        name = cluster_name(room)
        frame = Envelope("result", self.server_id, room.name, {"text": text, "language": language}).pack()
        key = (name, *slot)
        waiting = self._partials.get(key)
        if waiting is not None:  # the older text of the same slot is worthless now: the newer one takes its place
            waiting.frame = frame
            self.partials_superseded += 1
            return
        if len(self._partials) >= PARTIAL_SLOTS or self._out.qsize() >= PARTIAL_ROOM:
            self.partials_shed += 1  # the next partial of this utterance carries the same words and more
            self._metrics.cluster_frame("shed")
            return
        latest = Latest(key, frame)
        if self._send(("publish", channel(name), latest)):
            self._partials[key] = latest

    def shares(self, room: str) -> bool:
        here = self._rooms.get(room)
        return self.up and here is not None and bool(here.remote)

    def echo(self, room: str, body: dict[str, Any], payload: bytes = b"") -> None:
        here = self._rooms.get(room)
        if here is not None and here.remote:
            frame = Envelope("echo", self.server_id, here.name, body, payload).pack()
            self._send(("publish", channel(cluster_name(here)), frame))

    def listen_echoes(self, sink: EchoSink) -> None:
        self._echo_sink = sink

    def everywhere(self, text: str) -> None:
        self._send(("publish", CLUSTER_CHANNEL, Envelope("all", self.server_id, "", {"text": text}).pack()))

    def record(self, room: Room, entry: Entry) -> None:
        if room.remote:
            frame = Envelope("entry", self.server_id, room.name, entry.to_wire()).pack()
            self._send(("publish", channel(cluster_name(room)), frame))

    async def look(self, room: str, passcode: str | None) -> list[RemoteMember]:
        if not self.up:
            return []
        here = self._rooms.get(room)  # its passcode decides; a wrong one is refused at admission anyway
        digest = here.passcode_digest if here is not None else passcode_digest(passcode) if passcode else None
        try:
            async with asyncio.timeout(self._beat):
                table = await self._redis.hgetall(room_key(locked_name(room, digest)))
                members = [m for m in self._members_of(table)[0].values() if m.server != self.server_id]
                servers = sorted({m.server for m in members})
                flags = await self._redis.mget([alive_key(x) for x in servers]) if servers else []
        except FAILURES as exc:
            log.debug("cluster: room %r not read before a welcome: %s", room, exc)
            return []  # the heartbeat brings the others in a moment later, as join events
        alive = {x for x, flag in zip(servers, flags, strict=True) if flag is not None}
        return [m for m in members if m.server in alive]

    def adopt(self, room: Room, members: list[RemoteMember], newcomer: Participant) -> None:
        for member in members:
            self._add_or_tally(room, member, skip=newcomer)

    def status(self) -> dict[str, object]:
        return {
            "mode": "redis",
            "redis": "up" if self.up else "down",
            "server_id": self.server_id,
            "remote_participants": sum(len(r.remote) for r in self._rooms),
            "relayed": self.published,
            "received": self.received,
            "dropped": self.dropped,
            "partials_shed": self.partials_shed,
            "partials_superseded": self.partials_superseded,
            "ignored": self._tally.total,
        }

    def _send(self, cmd: Command) -> bool:
        if not self.up:
            return False  # the heartbeat re-registers presence when Redis is back; results of now are for now only
        try:
            self._out.put_nowait(cmd)
        except asyncio.QueueFull:
            self.dropped += 1
            self._metrics.cluster_frame("dropped")
            return False
        return True

    def _take(self) -> Command:
        return self._taken(self._out.get_nowait())

    def _taken(self, cmd: Command) -> Command:
        """`cmd` leaves the queue for Redis: a partial is no longer replaceable once taken."""
        if isinstance(cmd[2], Latest):
            self._partials.pop(cmd[2].key, None)
        return cmd

    # --- up and down ---------------------------------------------------------------------------------

    def _update(self) -> None:
        self._set_up(self._beating and self._listening)

    def _safe_update(self) -> None:
        """`_update` from the heartbeat and subscriber loops: whatever a room's clean-up raises must not end them (the
        node would stay down until a restart)."""
        try:
            self._update()
        except Exception:
            log.exception("cluster: updating the node's state failed")

    def _set_up(self, up: bool) -> None:
        if up == self.up:
            return
        self.up = up
        self._metrics.set_cluster_up(up)
        if up:
            log.info("cluster: Redis reachable; node %s is in the cluster", self.server_id)
            self._wake.set()  # read the rooms now
            return
        log.warning("cluster: Redis unreachable; serving local clients only until it returns")
        while not self._out.empty():
            self._out.get_nowait()
        self._partials.clear()
        for room in self._rooms:  # nobody elsewhere can be reached now: they leave this server's view of the room
            self._reconcile(room, {}, since=None)

    # --- loops --------------------------------------------------------------------------------------

    async def _presence_loop(self) -> None:
        while True:
            try:
                await self._heartbeat()
                self._beating = True
            except FAILURES as exc:
                log.debug("cluster heartbeat failed: %s", exc)
                self._beating = False
            except Exception:
                log.exception("cluster heartbeat failed")
                self._beating = False
            self._safe_update()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._beat)
            self._wake.clear()

    async def _heartbeat(self) -> None:
        """Say this server is alive, (re-)register its participants and read every room it hosts."""
        rooms: list[Room] = list(self._rooms)
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(alive_key(self.server_id), "1", px=self._ttl_ms)
        for room in rooms:
            key = room_key(cluster_name(room))
            if room.members:
                pipe.hset(
                    key, mapping={p.id: json.dumps(_member_body(p, self.server_id)) for p in room.members.values()}
                )
            pipe.pexpire(key, ROOM_TTL_MS)
            pipe.hgetall(key)
        sent = time.monotonic()
        replies = (await pipe.execute())[1:]
        tables = [replies[i] for i in range(len(replies)) if _is_table(replies[i])]
        read = [self._members_of(t) for t in tables]
        entries = [members for members, _ in read]
        # The servers of the members read, and of those already here (a table read in part may not show them).
        named = {m.server for es in entries for m in es.values()} | {m.server for r in rooms for m in r.remote.values()}
        servers = sorted(named - {self.server_id})
        alive: set[str] = set()
        if servers:
            flags = await self._redis.mget([alive_key(s) for s in servers])
            alive = {s for s, flag in zip(servers, flags, strict=True) if flag is not None}
        alive.add(self.server_id)
        cleanup = self._redis.pipeline(transaction=False)
        stale = 0
        for room, (members, whole) in zip(rooms, read, strict=True):
            gone = [m.id for m in members.values() if m.server not in alive]
            gone += [m.id for m in members.values() if m.server == self.server_id and m.id not in room.members]
            if gone:
                cleanup.hdel(room_key(cluster_name(room)), *gone)  # whoever notices first; HDEL is idempotent
                stale += 1
            if self._rooms.get(room.name) is not room or not self._listening:
                continue  # emptied meanwhile; or deaf to the room's channel, so not in the cluster yet
            remote = {i: m for i, m in members.items() if m.server != self.server_id and m.server in alive}
            self._reconcile(room, remote, since=sent, alive=None if whole else alive)
        if stale:
            await cleanup.execute()
        horizon = time.monotonic() - 10 * self._beat
        self._heard = {k: t for k, t in self._heard.items() if t > horizon}

    async def _sender_loop(self) -> None:
        while True:
            batch = [self._taken(await self._out.get())]
            while len(batch) < BATCH and not self._out.empty():
                batch.append(self._take())
            pipe = self._redis.pipeline(transaction=False)
            for cmd in batch:
                _queue_command(pipe, cmd)
            try:
                await pipe.execute()
            except FAILURES as exc:
                log.debug("cluster send failed: %s", exc)  # whether Redis is down is the heartbeat's call
                self.dropped += len(batch)
                for _ in batch:
                    self._metrics.cluster_frame("dropped")
                continue
            sent = sum(cmd[0] == "publish" for cmd in batch)
            self.published += sent
            for _ in range(sent):
                self._metrics.cluster_frame("out")

    async def _listen_loop(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            subscribed: set[str] = set()
            try:
                # The cluster channel keeps the connection subscribed (and so checked) even with no room here.
                await pubsub.subscribe(CLUSTER_CHANNEL)
                self._listening = True
                self._update()
                while True:
                    wanted = {channel(cluster_name(room)) for room in self._rooms}
                    if wanted - subscribed:
                        await pubsub.subscribe(*(wanted - subscribed))
                    if subscribed - wanted:
                        await pubsub.unsubscribe(*(subscribed - wanted))
                    subscribed = wanted
                    message = await pubsub.get_message(timeout=POLL_SECONDS)
                    if message is not None and message.get("type") == "message":
                        self._on_frame(message["data"], message.get("channel"))
            except FAILURES as exc:
                log.debug("cluster subscription lost: %s", exc)
            except Exception:
                log.exception("cluster subscription failed")
            finally:
                self._listening = False
                self._safe_update()
                with contextlib.suppress(*FAILURES):
                    await pubsub.aclose()
            await asyncio.sleep(self._beat)

    # --- what the cluster tells this server -------------------------------------------------------

    def _on_frame(self, frame: bytes, via: bytes | str | None = None) -> None:
        """A frame from the cluster (`via`: the channel it came on). Whatever it holds, nothing raises from here: an
        exception would end the subscription and so cut this server off the cluster."""
        try:
            env = unpack(frame)
        except BadFrame as exc:
            self._tally.ignore(Ignored("too_large" if exc.too_large else "not_ours", str(exc)), "?")
            return
        if env.origin == self.server_id:
            return
        try:
            why = self._act(env, via.decode() if isinstance(via, bytes) else via)
        except Exception as exc:  # a bug here: logged with its traceback; the listener goes on
            self._tally.ignore(Ignored("failed", f"{env.kind}: {type(exc).__name__}: {exc}"), env.origin)
            return
        if why is not None:
            self._tally.ignore(why, env.origin)

    def _act(self, env: Envelope, via: str | None) -> Ignored | None:
        """Act on a frame of another server, checked first (babelfish/cluster/inbound.py): None, or why it was
        ignored. `via` None: the channel is not checked (tests)."""
        if env.kind == "all":
            if via is not None and via != CLUSTER_CHANNEL:
                return Ignored("wrong_channel", "a message for everyone on a room's channel")
            return self._to_everyone(env)
        room = self._rooms.get(env.room)
        if room is None:
            return None  # no such room here (any more): nobody to tell
        if via is not None and via != channel(cluster_name(room)):
            return Ignored("wrong_channel", f"a frame for room {env.room!r} on another channel")
        self.received += 1
        self._metrics.cluster_frame("in")
        if env.kind == "result":
            checked = inbound.result(env.body, env.payload)
            if isinstance(checked, Ignored):
                return checked
            _deliver(room, checked)
        elif env.kind == "echo":
            return self._echo(room, env)
        elif env.kind == "entry":
            entry = Entry.from_wire(env.body)
            if entry is None:
                return Ignored("entry", "not a transcript entry within transcripts.MAX_WIRE_*")
            room.transcript.add_relayed(entry)
            if self._archive is not None:
                self._archive_soon(room, entry)
        elif env.kind == "join":
            member = inbound.member(env.body, env.origin)
            if isinstance(member, Ignored):
                return member
            if member.server != env.origin:
                return Ignored("member", "a join for a participant of another server")
            self._hear(room.name, member.id)
            return self._add(room, member)
        else:
            pid = env.body.get("id")
            if not short(pid):
                return Ignored("member", "a leave without a participant id")
            there = room.remote.get(pid)
            if there is not None and there.server != env.origin:
                return Ignored("member", "a leave for a participant of another server")
            self._hear(room.name, pid)
            self._remove(room, pid)
        return None

    def _echo(self, room: Room, env: Envelope) -> Ignored | None:
        """A one-phone-per-voice frame: only its sender's phones are its business."""
        if self._echo_sink is None:
            return None
        client = env.body.get("c")
        if isinstance(client, str):
            there = room.remote.get(client)
            if client in room.members or (there is not None and there.server != env.origin):
                return Ignored("echo_foreign", "a frame about a phone of another server")
        return self._echo_sink.remote(room.name, env.origin, env.body, env.payload)

    def _hear(self, room: str, pid: str) -> None:
        """A presence change heard now, newer than any heartbeat snapshot taken before. Bounded: beyond MAX_HEARD a
        change is not remembered, and a heartbeat may undo it until the next one (Redis has it right by then)."""
        if len(self._heard) < MAX_HEARD or (room, pid) in self._heard:
            self._heard[(room, pid)] = time.monotonic()

    def _archive_soon(self, room: Room, entry: Entry) -> None:
        if self._archiving >= MAX_ARCHIVE_PENDING:  # the disk cannot keep up: the transcript in memory has it
            if not self._archive_busy:  # once per busy spell, not per utterance
                log.warning("transcript archive: %d relayed utterances wait; more are not archived until it catches "
                            "up", self._archiving)  # fmt: skip
            self._archive_busy = True
            return
        self._archiving += 1
        self._tasks.spawn(self._archive_later(room, entry))

    def _members_of(self, table: dict[Any, Any]) -> tuple[dict[str, RemoteMember], bool]:
        """A room's table in Redis (participant id -> its JSON), written by every server: what is not a plausible
        participant, under its own id, is ignored (counted at every read while it stays there), and no more entries
        are read than a room can hold. With whether the whole table was read."""
        members: dict[str, RemoteMember] = {}
        limit = 2 * self._rooms.max_per_room  # a room never holds more (twice: servers admitting at the same time)
        if len(table) > limit:
            self._tally.ignore(Ignored("room_full", f"a room table of {len(table)} entries: {limit} read"), "?")
        for field, raw in itertools.islice(table.items(), limit):
            try:
                body = json.loads(raw) if len(raw) <= MAX_MEMBER_BYTES else None
            except (ValueError, TypeError, RecursionError):
                body = None
            found = inbound.member(body, "") if isinstance(body, dict) else Ignored("member", "not a JSON object")
            pid = field.decode(errors="replace") if isinstance(field, bytes) else str(field)
            if not isinstance(found, Ignored) and found.id != pid:
                found = Ignored("member", "a table entry under another id")
            if isinstance(found, Ignored):
                server = body.get("server") if isinstance(body, dict) else None
                self._tally.ignore(found, server if isinstance(server, str) else "?")
            elif found.server:
                members[found.id] = found
        return members, len(table) <= limit

    def _reconcile(
        self, room: Room, remote: dict[str, RemoteMember], since: float | None, alive: set[str] | None = None
    ) -> None:
        """Make `room.remote` what Redis says, except where pub/sub told us something newer than the snapshot.

        `alive` (the servers alive now): the room's table was too large to read whole, so a member missing from what
        was read may simply not have been read; only those whose server is dead leave then. Removing the others would
        make live members leave and rejoin at every beat (their kept copies counted as lost: duplicates). Reading the
        alive servers' entries first would not do: which entries those are is only known once every entry is parsed,
        the work the cap bounds against a table anyone with Redis access can grow, and live entries alone can overflow
        it (a buggy server). Departures still come as leave frames, and the read part's stale entries are deleted at
        each beat, so a table overgrown by crashed servers' leftovers is read whole again within a few beats."""

        def newer(pid: str) -> bool:
            return since is not None and self._heard.get((room.name, pid), 0.0) > since

        def gone(pid: str, member: RemoteMember) -> bool:
            return pid not in remote and not newer(pid) and (alive is None or member.server not in alive)

        for pid in [pid for pid, member in room.remote.items() if gone(pid, member)]:
            self._remove(room, pid, unreachable=True)
        for pid, member in remote.items():
            if pid not in room.remote and not newer(pid):
                self._add_or_tally(room, member)

    def _to_everyone(self, env: Envelope) -> Ignored | None:
        self.received += 1
        self._metrics.cluster_frame("in")
        text = env.body.get("text")
        if not isinstance(text, str) or len(text) > MAX_ALL_BYTES:
            return Ignored("all", "no message, or one too long for a speaker_renamed")
        renamed = inbound.client_message(text, inbound.RENAMED)
        if isinstance(renamed, Ignored):
            return Ignored("all", f"not a speaker_renamed: {renamed.detail}")
        text = renamed.encode()
        for room in self._rooms:
            for p in list(room.members.values()):
                p.outbox.put(text)
        return None

    async def _archive_later(self, room: Room, entry: Entry) -> None:
        assert self._archive is not None
        try:
            await asyncio.to_thread(self._archive.append, room.transcript, entry)
        except Exception:  # a task nobody awaits: whatever went wrong is logged, never lost
            log.exception("transcript archive: a relayed utterance was not written")
        finally:
            self._archiving -= 1
            self._archive_busy = self._archive_busy and self._archiving > MAX_ARCHIVE_PENDING // 2

    def _add(self, room: Room, member: RemoteMember, skip: Participant | None = None) -> Ignored | None:
        if member.id in room.remote or member.id in room.members:
            return None
        if len(room.remote) >= self._rooms.max_per_room:  # never more than the room holds (beyond: a buggy peer)
            return Ignored("room_full", f"room {room.name!r} has {len(room.remote)} participants elsewhere already")
        room.remote[member.id] = member
        # `skip`: a newcomer whose welcome (sent next) lists this member already
        event = proto.Participants(room=room.name, event="join", who=member.info(), count=room.count)
        room.broadcast(event, [p for p in room.members.values() if p is not skip])
        return None

    def _add_or_tally(self, room: Room, member: RemoteMember, skip: Participant | None = None) -> None:
        why = self._add(room, member, skip)
        if why is not None:
            self._tally.ignore(why, member.server)

    def _remove(self, room: Room, pid: str, unreachable: bool = False) -> None:
        """`pid` left (a leave frame: its server still finishes what it said), or is `unreachable` (its server is
        dead, or Redis down): then nothing more of it will come through the cluster."""
        member = room.remote.pop(pid, None)
        if member is not None:
            room.broadcast(proto.Participants(room=room.name, event="leave", who=member.info(), count=room.count))
            if self._echo_sink is None:
                return
            try:
                if unreachable:  # its kept copies' outcomes will never come
                    self._echo_sink.unreachable(room.name, pid)
                else:  # not mid-utterance any more
                    self._echo_sink.remote(room.name, member.server, {"op": "open", "c": pid, "since": None})
            except Exception as exc:  # a bug in the filter must not fail the heartbeat, nor the other rooms' clean-up
                self._tally.ignore(Ignored("failed", f"{pid} leaving: {type(exc).__name__}: {exc}"), member.server)


def _deliver(room: Room, result: Result) -> None:
    """A result rendered on another server, to this server's listeners of its language (all, for a transcript)."""
    text, language = result.text, result.language
    for p in list(room.members.values()):
        if language is not None and p.language != language:
            continue
        if result.audio_only and not p.wants_audio:  # a message about audio (speech_skipped): not for text-only
            continue
        if result.audio:
            if p.wants_audio:
                p.outbox.put((text, result.pcm))
        else:
            p.outbox.put(text)


def _needed(room: Room, language: str | None, audio: bool) -> bool:
    """Whether anyone on another server gets a result for `language` (None: everyone)."""
    if language is None:
        return bool(room.remote)
    return any(r.language == language and (not audio or r.wants_audio) for r in room.remote.values())


def _queue_command(pipe: Any, cmd: Command) -> None:
    op, key, arg = cmd
    if op == "publish":
        pipe.publish(key, arg.frame if isinstance(arg, Latest) else arg)
    elif op == "hset":
        pipe.hset(key, mapping=arg)
        pipe.pexpire(key, ROOM_TTL_MS)
    else:
        pipe.hdel(key, arg)


def _member_body(p: Participant, server: str) -> dict[str, object]:
    return {"id": p.id, "name": p.name, "language": p.language, "audio": p.wants_audio, "server": server}


def _is_table(reply: object) -> bool:
    return isinstance(reply, dict)
