"""Cluster mode for real: redis-server, two server processes and nginx (nginx/babelfish-cluster.conf) on loopback.

A room spans both servers; a server killed with -9 leaves the room and its clients come back through the other; Redis
restarted mid-conversation leaves each server serving its own clients, and the cluster heals when Redis returns.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import websockets

from babelfish.tls import ensure_certificate
from tests.audio import frames, pcm16, read_wav, silence
from tests.nginxproc import start_nginx
from tests.redisproc import RedisProcess
from tests.serverproc import ROOT, ServerProcess

BEAT = "0.3"  # heartbeat: a killed server is noticed after ~1 s


@dataclass
class Cluster:
    redis: RedisProcess
    a: ServerProcess
    b: ServerProcess
    lb_port: int

    @property
    def lb_url(self) -> str:
        return f"wss://127.0.0.1:{self.lb_port}/ws/client"

    async def metrics(self, srv: ServerProcess) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            return (await http.get(srv.url + "metrics", timeout=5)).json()


def lb_site(upstreams: list[int]) -> str:
    """nginx/babelfish-cluster.conf with its upstream block pointed at our servers."""
    site = (ROOT / "nginx" / "babelfish-cluster.conf").read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in upstreams)
    site, n = re.subn(r"(    server 127\.0\.0\.1:\d+ [^\n]*\n)+", servers, site)
    assert n == 1, "the upstream block of nginx/babelfish-cluster.conf changed shape"
    return site


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from start_cluster(tmp_path)


@pytest.fixture
def voice_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """With speaker recognition on (resemblyzer, as tests/speakers/test_crash.py), so voices are stored in Redis."""
    yield from start_cluster(tmp_path, "--speaker-embedder", "resemblyzer")


@pytest.fixture
def partials_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """With streaming partials on (off by default in tests, conftest.py)."""
    yield from start_cluster(tmp_path, "--partials")


def start_cluster(tmp_path: Path, *extra: str) -> Iterator[Cluster]:
    redis = RedisProcess(tmp_path / "redis", password="s3cret word").start()  # a password URL, as in production
    args = ("--redis-url", redis.url.replace(" ", "%20"), "--cluster-heartbeat-seconds", BEAT, *extra)
    a = ServerProcess(tmp_path / "a", *args)
    b = ServerProcess(tmp_path / "b", *args)
    with ThreadPoolExecutor(2) as pool:  # both start at once
        for f in [pool.submit(a.start, 240), pool.submit(b.start, 240)]:
            f.result()
    nginx, lb_port = start_nginx(tmp_path / "nginx", lb_site([a.port, b.port]))
    try:
        yield Cluster(redis, a, b, lb_port)
    finally:
        nginx.terminate()
        nginx.wait(10)
        for srv in (a, b):
            try:
                srv.stop(timeout=15)
            except subprocess.TimeoutExpired:
                srv.kill()
        redis.kill()


async def eventually(check: Callable[[], Any], within: float, what: str | Callable[[], str]) -> Any:
    """Poll `check` until it gives something true; fail after `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                got = check()
                if got:
                    return got
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {what if isinstance(what, str) else what()}") from None


@dataclass
class Peer:
    """A WebSocket client that records every message (audio headers get their binary payload attached)."""

    name: str
    ws: Any
    welcome: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def join(
        cls,
        url: str,
        name: str,
        language: str,
        room: str = "talk",
        within: float = 10,
        origin: str | None = None,
        passcode: str | None = None,
    ) -> Peer:
        ctx = None
        if url.startswith("wss:"):
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        async with asyncio.timeout(within):
            ws = await websockets.connect(url, ssl=ctx, max_size=None, origin=origin)
            join = {"type": "join", "name": name, "language": language, "room": room}
            await ws.send(json.dumps(join if passcode is None else {**join, "passcode": passcode}))
            welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        peer = cls(name, ws, welcome)
        peer.reader = asyncio.create_task(peer._read())
        return peer

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    self.messages[-1]["payload"] = frame
                else:
                    self.messages.append(json.loads(frame))
        except websockets.ConnectionClosed:
            pass

    async def wait_for(self, pred: Callable[[dict[str, Any]], bool], within: float = 10) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((m for m in self.messages if pred(m) and (m["type"] != "audio" or "payload" in m)), None)

        # Said at the deadline, not now: what the peer had received by then.
        return await eventually(found, within, lambda: f"{self.name} got {[m['type'] for m in self.messages]}")

    async def speak(self, pcm: bytes) -> None:
        for frame in frames(pcm + silence(0.8)):
            await self.ws.send(frame)

    async def speak_in_real_time(self, pcm: bytes) -> None:
        """As a phone does: 20 ms frames at the pace they are spoken (partials need time to pass)."""
        started = time.monotonic()
        for i, frame in enumerate(frames(silence(0.3) + pcm + silence(0.8))):
            await self.ws.send(frame)
            await asyncio.sleep(max(0.0, started + (i + 1) * 0.02 - time.monotonic()))

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        await self.ws.close()


def translation_of(uid: str, language: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] == "translation" and m["utterance_id"] == uid and m["language"] == language


def audio_of(uid: str, language: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] == "audio" and m["utterance_id"] == uid and m["language"] == language


async def said(peer: Peer, pcm: bytes, within: float = 15) -> str:
    """`peer` speaks; the id of its utterance (from its own transcript)."""
    seen = {m.get("utterance_id") for m in peer.messages}
    await peer.speak(pcm)
    mine = await peer.wait_for(lambda m: m["type"] == "transcript" and m["utterance_id"] not in seen, within)
    return mine["utterance_id"]


def roster(peer: Peer) -> set[str]:
    """Who `peer` believes is in its room: its welcome, then every join and leave since."""
    names = {p["id"]: p["name"] for p in peer.welcome["participants"]}
    for m in list(peer.messages):
        if m["type"] == "participants":
            if m["event"] == "join":
                names[m["who"]["id"]] = m["who"]["name"]
            else:
                names.pop(m["who"]["id"], None)
    return set(names.values())


async def roster_is(peer: Peer, names: set[str], within: float = 10) -> None:
    await eventually(lambda: roster(peer) == names, within, lambda: f"{peer.name}'s roster {roster(peer)} == {names}")


async def healthz_until(srv: ServerProcess, redis_state: str, within: float = 10) -> None:
    try:
        async with asyncio.timeout(within), httpx.AsyncClient() as http:
            while True:
                health = (await http.get(srv.url + "healthz", timeout=2)).json()
                assert health["status"] == "ok"  # serving, whatever Redis does
                if health["cluster"]["redis"] == redis_state:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{srv.url}: cluster never {redis_state}") from None


async def test_a_room_spans_two_servers_behind_the_load_balancer(cluster: Cluster, speech_pcm: bytes):
    for srv in (cluster.a, cluster.b):
        await healthz_until(srv, "up")
    # Bob is the page the cluster's nginx serves: its own Origin passes the gate (nginx hands on Host, port included).
    bob = await Peer.join(cluster.lb_url, "Bob", "de", origin="https://" + urlsplit(cluster.lb_url).netloc)
    carl = await Peer.join(cluster.lb_url, "Carl", "fr")
    # least_conn: the two listeners are on different servers, so whoever speaks is on another server than one of them.
    assert sorted([(await cluster.metrics(s))["clients"] for s in (cluster.a, cluster.b)]) == [1, 1]
    ann = await Peer.join(cluster.lb_url, "Ann", "en")
    # The roster is cluster-wide. Joins heard from another server can arrive in either order (pub/sub, or the
    # heartbeat's repair of a frame sent before this server subscribed), so check the rosters, not one event's count.
    for peer in (ann, bob, carl):
        await roster_is(peer, {"Ann", "Bob", "Carl"})
    assert all(m["count"] <= 3 for p in (bob, carl) for m in p.messages if m["type"] == "participants")
    await hostile_writer(cluster, "talk")

    uid = await said(ann, speech_pcm)
    for peer, language in ((bob, "de"), (carl, "fr")):
        text = await peer.wait_for(translation_of(uid, language))
        assert text["text"].startswith(f"[{language}] ") and text["speaker"]["name"] == "Ann"
        audio = await peer.wait_for(audio_of(uid, language))
        assert len(audio["payload"]) == audio["bytes"] > 0  # speech as raw bytes, whole
        assert not [m for m in peer.messages if m.get("language") not in (language, "en", None)]
    # Rendered once in the whole cluster: by the speaker's server only.
    stats = [await cluster.metrics(s) for s in (cluster.a, cluster.b)]
    assert sorted(s["utterances_processed"] for s in stats) == [0, 1]
    assert all(s["cluster"]["redis"] == "up" for s in stats)
    # What the hostile writer sent was ignored and counted by both servers, and reached nobody; the rooms stayed whole.
    for srv in (cluster.a, cluster.b):  # the table's entry is read (and counted) at every heartbeat: one at least
        s = await cluster.metrics(srv)
        for _ in range(50):
            if s["cluster_ignored"]["member"] >= 2:
                break
            await asyncio.sleep(0.1)
            s = await cluster.metrics(srv)
        ignored = s["cluster_ignored"]
        assert ignored["not_ours"] >= 1 and ignored["too_large"] >= 1  # its length prefix reads as 1.7 GB: "garb"
        assert ignored["result"] >= 1 and ignored["echo"] >= 2 and ignored["all"] >= 1
        assert ignored["member"] >= 2 and ignored["failed"] == 0 and s["cluster"]["ignored"] >= 8, ignored
    for peer in (ann, bob, carl):
        assert roster(peer) == {"Ann", "Bob", "Carl"}
        assert not [m for m in peer.messages if "injected" in str(m)]
    for peer in (ann, bob, carl):
        await peer.close()


async def hostile_writer(cluster: Cluster, room: str) -> None:
    """Something else with access to Redis (a buggy or other-version server) writes nonsense where servers listen: on
    the room's channel, the cluster channel and in the room's table (which every heartbeat reads)."""
    import redis.asyncio as aioredis

    from babelfish.cluster.envelope import Envelope

    deep = b"[" * 100_000  # more nesting than the JSON parser takes
    injected = '{"type":"transcript","text":"injected"}'
    frames = [
        b"garbage", len(deep).to_bytes(4, "big") + deep,
        Envelope("result", "evil", room, {"text": injected, "language": None}).pack(),
        Envelope("join", "evil", room, {"id": "ghost", "name": "G" * 5000, "language": "de", "server": "evil"}).pack(),
        Envelope("echo", "evil", room, {"op": "gone", "c": "anyone"}).pack(),
        Envelope("echo", "evil", room, {"op": "open", "c": "anyone", "since": float("nan")}).pack(),
    ]  # fmt: skip
    client = aioredis.from_url(cluster.redis.url)
    try:
        await client.hset(f"babelfish:room:{room}", "deep", deep)
        for frame in frames:
            await client.publish(f"babelfish:room:{room}:events", frame)
        await client.publish("babelfish:cluster", Envelope("all", "evil", "", {"text": injected}).pack())
    finally:
        await client.aclose()


async def room_members_in_redis(cluster: Cluster, room: str, n: int, within: float = 5) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(cluster.redis.url)
    try:
        async with asyncio.timeout(within):
            while True:
                if await client.hlen(f"babelfish:room:{room}") >= n:
                    return
                await asyncio.sleep(0.02)
    finally:
        await client.aclose()


async def transcript_of(srv: ServerProcess, peer: Peer) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        r = await http.get(srv.url + "rooms/talk/transcript", params={"format": "json"}, timeout=5,
                           headers={"Authorization": f"Bearer {peer.welcome['transcript_key']}"})  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()["utterances"]


async def test_voices_welcome_and_transcripts_are_cluster_wide(voice_cluster: Cluster, speech_pcm: bytes):
    """A voice enrolled on A is recognised on B; a rename on B reaches A's clients; a welcome on B lists who is on A;
    each server's room transcript holds the whole room, translations included."""
    cluster = voice_cluster
    for srv in (cluster.a, cluster.b):
        await healthz_until(srv, "up")
        async with httpx.AsyncClient() as http:
            health = (await http.get(srv.url + "healthz", timeout=5)).json()
        assert health["speakers"] == {"store": "redis", "pending": 0}
    ann = await Peer.join(cluster.a.ws_url, "Ann", "en")
    await room_members_in_redis(cluster, "talk", 1)
    bob = await Peer.join(cluster.b.ws_url, "Bob", "de")
    assert {p["name"] for p in bob.welcome["participants"]} == {"Ann", "Bob"}  # Ann is on the other server
    joined = await ann.wait_for(lambda m: m["type"] == "participants" and m["who"]["name"] == "Bob")
    assert joined["count"] == 2

    uid = await said(ann, speech_pcm)  # enrolled on A
    voice = (await bob.wait_for(translation_of(uid, "de")))["speaker"]
    assert voice["name"] == "Ann"
    tablet = await Peer.join(cluster.b.ws_url, "Tablet", "en")  # the same voice through another device, on B
    assert len(tablet.welcome["participants"]) == 3
    await roster_is(ann, {"Ann", "Bob", "Tablet"})
    # Audio sent faster than real time is placed on the arrival timeline back from its end: the same clip from the
    # Tablet within a clip's length of Ann's would overlap hers and be one voice heard by two phones (one phone per
    # voice, across servers). Said later, it is a new utterance.
    await asyncio.sleep(len(speech_pcm) / 32000 + 1.0)
    uid_b = await said(tablet, speech_pcm)
    mine = next(m for m in tablet.messages if m["type"] == "transcript" and m["utterance_id"] == uid_b)
    assert mine["speaker"] == voice  # recognised on B: not a new speaker named "Tablet"

    await bob.ws.send(json.dumps({"type": "rename_speaker", "id": voice["id"], "name": "Annie"}))
    renamed = await ann.wait_for(lambda m: m["type"] == "speaker_renamed")  # on A, renamed on B
    assert renamed["speaker"] == {"id": voice["id"], "name": "Annie"}

    # Each server's transcript holds both utterances (one spoken on each server), with the translation into German.
    async def whole(srv: ServerProcess, peer: Peer) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []

        async def check() -> bool:
            got[:] = await transcript_of(srv, peer)
            return {u["id"] for u in got} == {uid, uid_b}

        async with asyncio.timeout(10):
            while True:
                if await check():
                    return got
                await asyncio.sleep(0.05)

    for srv, peer in ((cluster.a, ann), (cluster.b, bob)):
        utterances = await whole(srv, peer)
        assert [u["id"] for u in utterances] == [uid, uid_b]  # in the order spoken
        assert all(u["translations"].get("de", "").startswith("[de] ") for u in utterances)
    for peer in (ann, bob, tablet):
        await peer.close()


async def test_a_room_passcode_holds_across_servers(cluster: Cluster):
    """Creating a locked room on the server that does not host it yet, with another passcode, lets nobody in."""
    for srv in (cluster.a, cluster.b):
        await healthz_until(srv, "up")
    ann = await Peer.join(cluster.a.ws_url, "Ann", "en", room="team", passcode="tulip 42")
    eve = await Peer.join(cluster.b.ws_url, "Eve", "en", room="team", passcode="a guess")  # her own "team" on b
    # The same passcode on both servers is one room (and shows how long the cluster takes to tell).
    dan = await Peer.join(cluster.a.ws_url, "Dan", "en", room="board", passcode="oak 7")
    fay = await Peer.join(cluster.b.ws_url, "Fay", "en", room="board", passcode="oak 7")
    await roster_is(dan, {"Dan", "Fay"})
    await roster_is(fay, {"Dan", "Fay"})
    await asyncio.sleep(3 * float(BEAT))  # a few heartbeats more, reading every room's hash
    assert roster(ann) == {"Ann"} and roster(eve) == {"Eve"}
    for peer in (ann, eve, dan, fay):
        await peer.close()


async def test_a_killed_server_leaves_the_room_and_its_clients_return_through_the_other(
    cluster: Cluster, speech_pcm: bytes
):
    for srv in (cluster.a, cluster.b):
        await healthz_until(srv, "up")
    a_url, b_url = cluster.a.ws_url, cluster.b.ws_url
    ann = await Peer.join(a_url, "Ann", "en")
    dave = await Peer.join(a_url, "Dave", "fr")
    bob = await Peer.join(b_url, "Bob", "de")
    for peer in (ann, bob):
        await roster_is(peer, {"Ann", "Dave", "Bob"})

    cluster.a.kill()  # kill -9: no goodbye to Redis
    killed = time.monotonic()
    # Its clients come back through nginx, which skips the dead server, in the same room under the same names.
    ann2, dave2 = await asyncio.gather(
        reconnect(cluster.lb_url, "Ann", "en", killed), reconnect(cluster.lb_url, "Dave", "fr", killed)
    )
    back = time.monotonic() - killed  # ~1 s on an idle machine; the bound leaves room for a loaded CI runner
    assert back < 15, f"clients back in the room after {back:.1f} s"
    # The dead server's participants leave the lists (heartbeat TTL), the returned ones are there once each.
    for gone in (ann, dave):
        await bob.wait_for(lambda m, g=gone: m["type"] == "participants" and m["event"] == "leave"
                           and m["who"]["id"] == g.welcome["client_id"], within=10)  # fmt: skip
    for _ in range(200):  # bounded: 200 reads of /metrics, 10 s or more
        if (clients := (await cluster.metrics(cluster.b))["clients"]) == 3:
            break
        await asyncio.sleep(0.05)
    assert clients == 3

    uid = await said(ann2, speech_pcm)  # the next utterance is served
    await bob.wait_for(translation_of(uid, "de"))
    await dave2.wait_for(audio_of(uid, "fr"))
    for peer in (ann2, dave2, bob):
        await peer.close()


async def reconnect(url: str, name: str, language: str, since: float, within: float = 15) -> Peer:
    """What the page does after a dropped connection: try again until it is back (bounded)."""
    while True:
        try:
            return await Peer.join(url, name, language, within=2)
        except (OSError, websockets.InvalidHandshake, websockets.ConnectionClosed, TimeoutError):
            if time.monotonic() - since > within:
                raise
            await asyncio.sleep(0.2)


async def test_redis_restart_local_service_goes_on_and_the_cluster_heals(cluster: Cluster, speech_pcm: bytes):
    for srv in (cluster.a, cluster.b):
        await healthz_until(srv, "up")
    ann = await Peer.join(cluster.a.ws_url, "Ann", "en")
    eve = await Peer.join(cluster.a.ws_url, "Eve", "de")  # same server as the speaker
    bob = await Peer.join(cluster.b.ws_url, "Bob", "de")  # the other server
    for peer in (ann, bob):  # each server knows the other's participants
        await roster_is(peer, {"Ann", "Eve", "Bob"})
    uid = await said(ann, speech_pcm)
    await bob.wait_for(translation_of(uid, "de"))

    cluster.redis.kill()
    await asyncio.gather(healthz_until(cluster.a, "down"), healthz_until(cluster.b, "down"))
    async with httpx.AsyncClient() as http:
        text = (await http.get(cluster.a.url + "metrics?format=prometheus", timeout=5)).text
    assert "babelfish_cluster_redis_up 0.0" in text
    uid_down = await said(ann, speech_pcm)  # while Redis is down: the local listener is still served
    await eve.wait_for(audio_of(uid_down, "de"))
    await roster_is(bob, {"Bob"})  # nobody elsewhere can be reached

    cluster.redis.start()  # back, empty: the servers register their participants again
    await asyncio.gather(healthz_until(cluster.a, "up"), healthz_until(cluster.b, "up"))
    for peer in (ann, bob):
        await roster_is(peer, {"Ann", "Eve", "Bob"})
    uid_back = await said(ann, speech_pcm)
    await bob.wait_for(translation_of(uid_back, "de"))
    await bob.wait_for(audio_of(uid_back, "de"))
    assert not [m for m in bob.messages if m.get("utterance_id") == uid_down]  # said while apart: not replayed
    for peer in (ann, eve, bob):
        await peer.close()


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """redis-server on a TLS port with a password; its certificate is issued for 127.0.0.1 by a local CA."""
    from babelfish.tls import ca_certificate_path

    cert, key = ensure_certificate(tmp_path / "tls")
    ca = ca_certificate_path(tmp_path / "tls")
    redis = RedisProcess(tmp_path / "redis", password="pw", extra=(
        "--port", "0", "--tls-port", "{port}", "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
    )).start()  # fmt: skip
    try:
        yield redis.port, ca
    finally:
        redis.kill()


async def test_a_tls_redis_url_with_a_password_joins(tls_redis: tuple[int, Path]):
    """rediss:// with the CA named in the URL: the node's heartbeat goes through."""
    from babelfish.cluster.redis_node import RedisCluster
    from babelfish.metrics import Metrics
    from babelfish.rooms import Rooms

    port, ca = tls_redis
    node = RedisCluster(f"rediss://:pw@127.0.0.1:{port}/0?ssl_ca_certs={ca}", Rooms(1, 1), Metrics(), 0.2)
    try:
        await node.start()
        await eventually(lambda: node.up, 10, "a heartbeat over TLS")
    finally:
        await node.stop()


async def test_partials_reach_listeners_on_the_other_server_translated_once(partials_cluster: Cluster):
    """The speaker on A, listeners on A and B: B's listeners see the words while they are spoken (the transcript to
    all, the translation to each language), rendered once on A; the final replaces them and partial_end closes them."""
    from tests.test_partials import LONG_CLIP

    cluster = partials_cluster
    for srv in (cluster.a, cluster.b):
        await healthz_until(srv, "up")
    ann = await Peer.join(cluster.a.ws_url, "Ann", "en")
    dan = await Peer.join(cluster.a.ws_url, "Dan", "de")  # a German listener on the speaker's server
    bob = await Peer.join(cluster.b.ws_url, "Bob", "de")  # and one on the other server
    carl = await Peer.join(cluster.b.ws_url, "Carl", "en")  # the speaker's language, on the other server
    for peer in (ann, bob):
        await roster_is(peer, {"Ann", "Dan", "Bob", "Carl"})

    await ann.speak_in_real_time(pcm16(read_wav(LONG_CLIP)))
    final = await ann.wait_for(lambda m: m["type"] == "transcript", within=20)
    uid = final["utterance_id"]
    for peer in (dan, bob, carl):
        await peer.wait_for(lambda m: m["type"] == "partial_end" and m["utterance_id"] == uid, within=20)

    def partials(peer: Peer, kind: str) -> list[dict[str, Any]]:
        return [m for m in peer.messages if m["type"] == "partial" and m["kind"] == kind]

    for peer in (bob, carl):
        got = [m["type"] for m in peer.messages if m.get("utterance_id") == uid]
        words = [m for m in partials(peer, "transcript") if m["utterance_id"] == uid]
        assert len(words) >= 2, got  # ~7 s of speech: a partial every 0.5-1 s
        assert all(m["speaker"]["name"] == "Ann" for m in words)
        assert got.index("partial") < got.index("transcript")  # while Ann spoke, before her final
        last_text = max(i for i, kind in enumerate(got) if kind in ("transcript", "translation"))
        assert got.index("partial_end") > last_text  # after the final texts (speech may come later: text first)
        for before, after in itertools.pairwise(words):
            assert after["seq"] > before["seq"] and after["stable"].startswith(before["stable"])
    german = partials(bob, "translation")
    assert german and all(m["language"] == "de" for m in german)
    assert not partials(carl, "translation")  # Carl reads Ann's own language
    # Rendered once for the whole cluster: on A, the speaker's server; B only forwards what A sent.
    at_a = {(m["utterance_id"], m["seq"], m["stable"], m["tail"]) for m in partials(dan, "translation")}
    assert {(m["utterance_id"], m["seq"], m["stable"], m["tail"]) for m in german} <= at_a
    stats = {srv.port: await cluster.metrics(srv) for srv in (cluster.a, cluster.b)}
    assert stats[cluster.a.port]["partials"]["decodes"] >= 2
    assert stats[cluster.b.port]["partials"]["decodes"] == 0
    assert stats[cluster.a.port]["cluster"]["partials_shed"] == 0  # nothing was busy here
    for peer in (ann, dan, bob, carl):
        await peer.close()


async def play(phones: list[tuple[Peer, Any]]) -> None:
    """Several phones' streams (float32 arrays) at real-time pace, 20 ms frames interleaved, as phones in one room."""
    pcms = [pcm16(audio) for _, audio in phones]
    began = time.monotonic()
    for k, i in enumerate(range(0, max(map(len, pcms)), 640)):
        for (peer, _), pcm in zip(phones, pcms, strict=True):
            if i < len(pcm):
                await peer.ws.send(pcm[i : i + 640])
        await asyncio.sleep(max(0.0, began + (k + 1) * 0.02 - time.monotonic()))


async def test_one_phone_per_voice_holds_across_servers(cluster: Cluster, speech_pcm: bytes):
    """Two phones in one room on different servers hear the same speech: it is delivered once, and the other phone
    is named in heard_by. Two people talking at once into them: both are delivered."""
    from tests.test_echoes import stream
    from tests.voices import voices

    for srv in (cluster.a, cluster.b):
        await healthz_until(srv, "up")
    near = await Peer.join(cluster.a.ws_url, "Near", "en")
    far = await Peer.join(cluster.b.ws_url, "Far", "en")
    listener = await Peer.join(cluster.b.ws_url, "L", "de")
    for peer in (near, far, listener):
        await roster_is(peer, {"Near", "Far", "L"})
    phones = {near.welcome["client_id"], far.welcome["client_id"]}
    clip = np.frombuffer(speech_pcm, "<i2").astype(np.float32) / 32768

    def said(kind: str) -> list[dict[str, Any]]:
        return [m for m in listener.messages if m["type"] == kind]

    # The same sentence: 80 ms later and 9 dB down on the far phone, each phone with its own room noise.
    await play([(near, stream([(clip, 0.3, 0)], 4.5, seed=1)), (far, stream([(clip, 0.38, -9)], 4.5, seed=2))])
    first = await listener.wait_for(lambda m: m["type"] == "transcript", within=15)
    await listener.wait_for(lambda m: m["type"] == "heard_by", within=10)
    await asyncio.sleep(1.5)  # a duplicate would come now (the other server renders its own copy just as fast)
    assert [m["utterance_id"] for m in said("transcript")] == [first["utterance_id"]], said("transcript")
    assert len(said("translation")) == 1
    (heard,) = said("heard_by")
    assert heard["utterance_id"] == first["utterance_id"]
    assert {heard["client_id"], first["client_id"]} == phones

    # Two people at once, each phone hearing the other person 15 dB down: both are delivered.
    other = voices()["dhd"][0]
    await play([
        (near, stream([(clip, 0.3, 0), (other, 0.5, -15)], 4.5, seed=3)),
        (far, stream([(other, 0.5, 0), (clip, 0.3, -15)], 4.5, seed=4)),
    ])  # fmt: skip
    await eventually(lambda: len(said("transcript")) >= 3, 15, lambda: f"transcripts {said('transcript')}")
    await asyncio.sleep(1.0)
    assert {m["client_id"] for m in said("transcript")[1:]} == phones
    assert len(said("heard_by")) == 1  # still only the first sentence's
    for peer in (near, far, listener):
        await peer.close()
