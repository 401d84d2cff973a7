"""Access control through the real app: tokens, Origin, per-address limits, header limits, proxies, /metrics."""

from __future__ import annotations

import json
import os
import stat
import time
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from babelfish import tokens as tokens_cli
from babelfish.__main__ import main as babelfish_main
from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.fake import FakeEngine
from babelfish.tokens import TokenStore
from tests.test_ws import assert_closed
from tests.wsclient import BoundedClient

OUTSIDER = ("203.0.113.7", 40000)  # TEST-NET-3: neither loopback nor a trusted proxy
JOIN = json.dumps({"type": "join", "name": "Ann", "language": "en"})


def app_client(tmp_path, client=OUTSIDER, **settings):
    return BoundedClient(create_app(Settings(data_dir=tmp_path, engine="test", **settings), engine=FakeEngine()),
                      client=client)  # fmt: skip


def joins(client, url="/ws/client", **headers) -> bool:
    """True when the handshake is accepted and the join welcomed."""
    with client.websocket_connect(url, headers=headers) as ws:
        ws.send_text(JOIN)
        return ws.receive_json()["type"] == "welcome"


def refused(client, url="/ws/client", **headers) -> int:
    """The HTTP status of a refused handshake (fails if it is accepted)."""
    with pytest.raises(WebSocketDenialResponse) as info, client.websocket_connect(url, headers=headers):
        pass
    return info.value.status_code


def refusals(client) -> dict[str, int]:
    return client.get("/metrics").json()["refused"]


def test_token_mode_needs_a_valid_token(tmp_path):
    store = TokenStore.in_data_dir(tmp_path)
    good = store.create("alice")
    with app_client(tmp_path, client=("127.0.0.1", 5000), access="token") as c:
        assert refused(c) == 403  # missing
        assert refused(c, "/ws/client?token=bf_wrong") == 403  # wrong
        assert joins(c, f"/ws/client?token={good}")
        assert joins(c, authorization=f"Bearer {good}")  # the header works too (non-browser clients)
        assert store.revoke("alice")
        assert refused(c, f"/ws/client?token={good}") == 403  # revoked: refused at once, no restart
        counts = refusals(c)
        assert (counts["missing_token"], counts["bad_token"]) == (1, 2)


def test_a_wrong_token_is_refused_even_in_open_mode(tmp_path):
    with app_client(tmp_path) as c:
        assert joins(c)
        assert refused(c, "/ws/client?token=bf_nope") == 403


def test_foreign_origin_refused_own_and_configured_allowed(tmp_path):
    with app_client(tmp_path, allowed_origins=["https://Partner.example/"]) as c:
        assert refused(c, origin="https://evil.example") == 403
        assert refused(c, origin="http://testserver.evil.example") == 403
        assert joins(c, origin="http://testserver")  # the page the server served (Host: testserver)
        assert joins(c, origin="https://partner.example")
        assert joins(c)  # no Origin (the reference client): fine in open mode
        assert refused(c, origin="null") == 403  # a sandboxed frame on any site sends "null"
        assert refusals(c)["origin"] == 3


def test_connections_per_address(tmp_path):
    with app_client(tmp_path, max_connections_per_address=2) as c:
        with c.websocket_connect("/ws/client") as a, c.websocket_connect("/ws/client") as b:
            a.send_text(JOIN)
            b.send_text(JOIN)
            assert a.receive_json()["type"] == b.receive_json()["type"] == "welcome"
            assert refused(c) == 429
            other = BoundedClient(c.app, client=("198.51.100.1", 1))  # another address is not affected
            assert joins(other)
        assert joins(c)  # closed connections give their slots back
        assert refusals(c)["connections_per_address"] == 1


def test_connections_per_minute(tmp_path):
    with app_client(tmp_path, max_joins_per_minute=3) as c:
        assert all(joins(c) for _ in range(3))
        assert refused(c) == 429
        assert refusals(c)["joins_per_minute"] == 1


def join_room(stack: ExitStack, c: TestClient, room: str) -> tuple[object, dict]:
    ws = stack.enter_context(c.websocket_connect("/ws/client"))
    ws.send_text(json.dumps({"type": "join", "name": "Ann", "language": "en", "room": room}))
    return ws, ws.receive_json()


def test_rooms_created_per_minute(tmp_path):
    with app_client(tmp_path, max_rooms_per_minute=2) as c, ExitStack() as stack:
        assert join_room(stack, c, "a")[1]["type"] == join_room(stack, c, "b")[1]["type"] == "welcome"
        ws, m = join_room(stack, c, "c")
        assert (m["type"], m["code"]) == ("error", "too_many_rooms")
        assert_closed(ws, 1013)
        assert join_room(stack, c, "a")[1]["type"] == "welcome"  # joining a room that exists creates nothing
        other = BoundedClient(c.app, client=("198.51.100.1", 1))
        assert join_room(stack, other, "c")[1]["type"] == "welcome"  # other addresses may still create rooms
        assert refusals(c)["rooms_per_minute"] == 1


@pytest.mark.parametrize("kind", ["size", "count"])
def test_oversized_request_heads(tmp_path, kind):
    headers = {"x-big": "a" * 20_000} if kind == "size" else {f"x-h{i}": "1" for i in range(150)}
    reason = "headers_too_large" if kind == "size" else "too_many_headers"
    with app_client(tmp_path) as c:
        assert c.get("/healthz", headers=headers).status_code == 431
        assert refused(c, **headers) == 431
        assert c.get("/healthz").status_code == 200
        assert refusals(c)[reason] == 2


def test_forwarded_for_only_from_trusted_proxies(tmp_path):
    # An untrusted peer cannot pretend to be many addresses: both count against 203.0.113.7.
    c = app_client(tmp_path, max_connections_per_address=1)
    with c, c.websocket_connect("/ws/client", headers={"x-forwarded-for": "192.0.2.1"}):
        assert refused(c, **{"x-forwarded-for": "192.0.2.2"}) == 429
    # The local proxy (trusted by default) speaks for its clients: two addresses, one connection each.
    c = app_client(tmp_path, client=("127.0.0.1", 1), max_connections_per_address=1)
    with c, c.websocket_connect("/ws/client", headers={"x-forwarded-for": "192.0.2.1"}):
        assert joins(c, **{"x-forwarded-for": "192.0.2.2"})
        assert refused(c, **{"x-forwarded-for": "192.0.2.1"}) == 429


def test_metrics_for_operators_only_with_access_control(tmp_path):
    store = TokenStore.in_data_dir(tmp_path)
    user, operator = store.create("user"), store.create("ops", operator=True)
    with app_client(tmp_path, access="token") as outsider:
        assert outsider.get("/metrics").status_code == 403
        assert outsider.get("/metrics", headers={"authorization": f"Bearer {user}"}).status_code == 403
        ok = outsider.get("/metrics?format=prometheus", headers={"authorization": f"Bearer {operator}"})
        assert ok.status_code == 200
        assert 'babelfish_refused_total{reason="metrics_forbidden"} 2.0' in ok.text
        assert outsider.get("/healthz").status_code == 200  # health checks stay open
    with app_client(tmp_path, client=("127.0.0.1", 1), access="token") as local:
        assert local.get("/metrics").status_code == 200
    with app_client(tmp_path) as open_mode:
        r = open_mode.get("/metrics", headers={"origin": "https://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_tokens_command(tmp_path, capsys):
    assert babelfish_main(["tokens", "--data-dir", str(tmp_path), "create", "alice"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("bf_") and len(secret) > 40
    assert tokens_cli.main(["--data-dir", str(tmp_path), "create", "ops", "--operator"]) == 0
    capsys.readouterr()
    path = tmp_path / "tokens.json"
    assert secret not in path.read_text()  # only the hash is stored
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert tokens_cli.main(["--data-dir", str(tmp_path), "list"]) == 0
    listed = capsys.readouterr().out
    assert "alice" in listed and "ops" in listed and "operator" in listed and secret not in listed
    assert tokens_cli.main(["--data-dir", str(tmp_path), "create", "alice"]) == 1  # names are unique
    assert tokens_cli.main(["--data-dir", str(tmp_path), "revoke", "alice"]) == 0
    assert tokens_cli.main(["--data-dir", str(tmp_path), "revoke", "alice"]) == 1
    assert TokenStore.in_data_dir(tmp_path).check(secret) is None


def join_with(stack: ExitStack, c: TestClient, room: str, passcode: str | None = None, **headers) -> tuple:
    ws = stack.enter_context(c.websocket_connect("/ws/client", headers=headers))
    message = {"type": "join", "name": "Ann", "language": "en", "room": room}
    if passcode is not None:
        message["passcode"] = passcode
    ws.send_text(json.dumps(message))
    return ws, ws.receive_json()


def test_room_passcode_set_by_its_creator(tmp_path):
    with app_client(tmp_path) as c, ExitStack() as stack:
        assert join_with(stack, c, "team", "tulip 42")[1]["type"] == "welcome"  # creates "team", locked
        for wrong in (None, "tulip 41"):
            ws, m = join_with(stack, c, "team", wrong)
            assert (m["type"], m["code"]) == ("error", "bad_passcode")
            assert_closed(ws, 1008)
        assert join_with(stack, c, "team", "tulip 42")[1]["type"] == "welcome"
        assert join_with(stack, c, "open-room")[1]["type"] == "welcome"  # open mode: passcodes are optional
        assert join_with(stack, c, "open-room", "anything")[1]["type"] == "welcome"  # a room without one ignores it
        assert refusals(c)["bad_passcode"] == 2


def test_passcode_mode_every_room_has_one(tmp_path):
    with app_client(tmp_path, access="passcode") as c, ExitStack() as stack:
        page = {"origin": "http://testserver"}  # the server's own page: no token needed in passcode mode
        ws, m = join_with(stack, c, "r", **page)
        assert (m["type"], m["code"]) == ("error", "passcode_required")
        assert_closed(ws, 1008)
        assert join_with(stack, c, "r", "s3cret", **page)[1]["type"] == "welcome"
        assert join_with(stack, c, "r", "wrong", **page)[1]["code"] == "bad_passcode"
        assert join_with(stack, c, "r", "s3cret", **page)[1]["type"] == "welcome"
        assert refused(c) == 403  # no Origin (not a page of ours) and no token


def test_no_origin_needs_a_token_in_passcode_mode(tmp_path):
    good = TokenStore.in_data_dir(tmp_path).create("app")
    with app_client(tmp_path, access="passcode") as c:
        assert refused(c) == 403
        with c.websocket_connect(f"/ws/client?token={good}") as ws:
            ws.send_text(json.dumps({"type": "join", "name": "A", "language": "en", "passcode": "x1"}))
            assert ws.receive_json()["type"] == "welcome"


def test_revoking_a_token_closes_its_open_connections(tmp_path, monkeypatch):
    from babelfish import gate

    monkeypatch.setattr(gate, "REVOCATION_CHECK_SECONDS", 0.05)
    store = TokenStore.in_data_dir(tmp_path)
    alice, bob = store.create("alice"), store.create("bob")
    with app_client(tmp_path, access="token") as c, ExitStack() as stack:
        a, m = join_with(stack, c, "r", None, authorization=f"Bearer {alice}")
        b, _ = join_with(stack, c, "r", None, authorization=f"Bearer {bob}")
        assert m["type"] == "welcome"
        store.revoke("alice")
        m = a.receive_json()  # bob's arrival, then the revocation (checked every 50 ms here)
        while m["type"] == "participants":
            m = a.receive_json()
        assert (m["type"], m["code"]) == ("error", "token_revoked")
        assert_closed(a, 1008)
        b.send_text('{"type": "ping"}')
        got = b.receive_json()
        while got["type"] == "participants":  # alice's leave
            got = b.receive_json()
        assert got["type"] == "pong"  # bob's token is still good


def test_revocation_survives_an_unreadable_token_file(tmp_path, monkeypatch):
    from babelfish import gate

    monkeypatch.setattr(gate, "REVOCATION_CHECK_SECONDS", 0.05)
    store = TokenStore.in_data_dir(tmp_path)
    alice = store.create("alice")
    store.create("bob")
    with app_client(tmp_path, access="token") as c, ExitStack() as stack:
        a, m = join_with(stack, c, "r", None, authorization=f"Bearer {alice}")
        assert m["type"] == "welcome"
        good = json.loads(store.path.read_text())
        store.path.write_text('{"tokens": [')  # an operator's half-edited file, read by several checks
        time.sleep(0.3)
        good["tokens"] = [t for t in good["tokens"] if t["name"] != "alice"]
        store.path.write_text(json.dumps(good))  # alice revoked: the checks go on and close her connection
        m = a.receive_json()
        assert (m["type"], m["code"]) == ("error", "token_revoked")
        assert_closed(a, 1008)


def test_address_limits_forget_addresses_once_their_window_passed(monkeypatch):
    """Many addresses, each seen once: after the window nothing of them is kept (no growth per address ever seen)."""
    from types import SimpleNamespace

    import limits.storage.memory as memory

    from babelfish.gate import AddressLimits

    now = [time.time()]
    monkeypatch.setattr(memory, "time", SimpleNamespace(time=lambda: now[0]))
    limits = AddressLimits(Settings(max_joins_per_minute=2, max_rooms_per_minute=1))
    for i in range(2000):
        address = f"2001:db8::{i:x}"
        assert limits.connect(address) is None and limits.may_create_room(address)
        limits.disconnect(address)
    assert limits.connect("2001:db8::1") is None and limits.connect("2001:db8::1") == "joins_per_minute"
    limits.disconnect("2001:db8::1")
    now[0] += 300  # five minutes later
    assert limits.connect("192.0.2.1") is None  # a hit starts the storage's expiry sweep
    storage = limits._limiter.storage  # the library's in-memory storage: what it holds is the memory used
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(storage.storage) + len(storage.events) > 10:
        time.sleep(0.02)
    assert len(storage.storage) + len(storage.events) <= 10
    assert limits.connect("2001:db8::1") is None  # and the window really passed for the old addresses
