// node --test: the connection state machine (static/js/connection.js) with a fake socket and a fake clock.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Connection, PING_EVERY_MS, STATES, transition } from "../../static/js/connection.js";

class FakeSocket {
  static OPEN = 1;
  static made = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closed = false;
    this.bufferedAmount = 0;
    FakeSocket.made.push(this);
  }
  send(data) { this.sent.push(data); }
  close() { this.closed = true; this.readyState = 3; }
  // what the server side does
  accept() { this.readyState = 1; this.onopen?.(); }
  message(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
  drop(code = 1006, reason = "") { this.readyState = 3; this.onclose?.({ code, reason }); }
}

// Timers that run only when the test advances time; counts what is pending so leaks show.
class FakeClock {
  constructor() { this.t = 0; this.seq = 0; this.jobs = new Map(); }
  now() { return this.t; }
  setTimeout(f, ms) { const id = ++this.seq; this.jobs.set(id, { f, at: this.t + ms, every: 0 }); return id; }
  setInterval(f, ms) { const id = ++this.seq; this.jobs.set(id, { f, at: this.t + ms, every: ms }); return id; }
  clearTimeout(id) { this.jobs.delete(id); }
  clearInterval(id) { this.jobs.delete(id); }
  intervals() { return [...this.jobs.values()].filter((j) => j.every).length; }
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const [id, j] of this.jobs) if (j.at <= end && (!next || j.at < next[1].at)) next = [id, j];
      if (!next) break;
      const [id, j] = next;
      this.t = j.at;
      if (j.every) j.at += j.every; else this.jobs.delete(id);
      j.f();
    }
    this.t = end;
  }
}

function setup() {
  FakeSocket.made = [];
  const clock = new FakeClock();
  const changes = [], lost = [], messages = [];
  const conn = new Connection({
    server: () => "http://10.0.0.5:9000/",
    joinMessage: () => ({ type: "join", name: "Dan", language: "de", room: "main" }),
    onMessage: (ev) => messages.push(ev.data),
    onChange: (state, info) => changes.push([state, info.retryInS]),
    onLost: (...a) => lost.push(a),
    WebSocketImpl: FakeSocket,
    clock,
  });
  const ws = () => FakeSocket.made.at(-1);
  return { conn, clock, changes, lost, messages, ws };
}

test("every state has a way out, and only the table's events move it", () => {
  for (const s of STATES) assert.equal(transition(s, "leave") ?? "idle", "idle", s);
  assert.equal(transition("idle", "welcome"), null);
  assert.equal(transition("idle", "lost"), null);
  assert.equal(transition("waiting", "welcome"), null);
  assert.equal(transition("failed", "retry"), null); // a refused join is not retried
  assert.equal(transition("connecting", "fatal"), "failed");
  assert.equal(transition("joined", "fatal"), null); // errors after welcome never end the session here
});

test("join: connect, send join on open, joined on welcome", () => {
  const { conn, ws } = setup();
  conn.join();
  assert.equal(conn.state, "connecting");
  assert.equal(ws().url, "ws://10.0.0.5:9000/ws/client");
  ws().accept();
  assert.deepEqual(JSON.parse(ws().sent[0]), { type: "join", name: "Dan", language: "de", room: "main" });
  conn.welcomed();
  assert.equal(conn.state, "joined");
  assert.equal(conn.send({ type: "end_utterance" }), true);
  assert.equal(conn.sendBinary(new ArrayBuffer(2)), true);
});

test("a lost connection waits with backoff, then tries again; one countdown however many retries", () => {
  const { conn, clock, lost, ws } = setup();
  conn.join();
  ws().accept();
  conn.welcomed();
  ws().drop(1006);
  assert.equal(conn.state, "waiting");
  assert.deepEqual(lost[0], [1006, "", true, false]);
  for (let i = 0; i < 6; i++) {
    clock.advance(60_000); // past any backoff: a new attempt starts...
    assert.equal(conn.state, "connecting", `attempt ${i}`);
    ws().drop(1006); // ...and fails at once
    assert.equal(conn.state, "waiting");
    assert.equal(clock.intervals(), 1, "exactly one countdown while waiting");
  }
  assert.equal(lost.at(-1)[2], false); // it was not joined when that attempt failed
});

test("backoff grows while attempts fail and starts over after a welcome", () => {
  const { conn, clock, ws } = setup();
  conn.join();
  const waits = [];
  for (let i = 0; i < 4; i++) {
    ws().drop();
    waits.push(conn.retryAt - clock.now());
    clock.advance(conn.retryAt - clock.now());
  }
  assert.ok(waits[0] >= 800 && waits[0] <= 1200, String(waits));
  assert.ok(waits[3] >= 6400 && waits[3] <= 9600, String(waits));
  ws().accept();
  conn.welcomed();
  ws().drop();
  assert.ok(conn.retryAt - clock.now() <= 1200);
});

test("the countdown says how long until the next try", () => {
  const { conn, clock, changes, ws } = setup();
  conn.join();
  ws().drop();
  const wait = conn.retryAt - clock.now();
  assert.deepEqual(changes.at(-1), ["waiting", Math.ceil(wait / 1000)]);
  clock.advance(500);
  assert.deepEqual(changes.at(-1), ["waiting", Math.ceil((wait - 500) / 1000)]);
});

test("draining: come back after the server's delay, without backoff growth", () => {
  const { conn, clock, lost, ws } = setup();
  conn.join();
  ws().accept();
  conn.welcomed();
  conn.draining(2500);
  ws().drop(1012);
  assert.deepEqual(lost[0], [1012, "", true, true]);
  assert.equal(conn.retryAt - clock.now(), 2500);
  clock.advance(2499);
  assert.equal(conn.state, "waiting");
  clock.advance(1);
  assert.equal(conn.state, "connecting");
});

test("a fatal join error stops: no retry, no timers, the socket is let go", () => {
  const { conn, clock, ws } = setup();
  conn.join();
  ws().accept();
  const sock = ws();
  conn.fatal();
  assert.equal(conn.state, "failed");
  assert.ok(sock.closed);
  assert.equal(clock.jobs.size, 0);
  sock.drop(1008); // the server's close arrives later: ignored
  clock.advance(120_000);
  assert.equal(conn.state, "failed");
  assert.equal(FakeSocket.made.length, 1);
  conn.join(); // the user fixed the form
  assert.equal(conn.state, "connecting");
});

test("leave from waiting cancels the retry and the countdown", () => {
  const { conn, clock, ws } = setup();
  conn.join();
  ws().drop();
  conn.leave();
  assert.equal(conn.state, "idle");
  assert.equal(clock.jobs.size, 0);
  clock.advance(120_000);
  assert.equal(FakeSocket.made.length, 1);
});

test("retry now: only while waiting, and from the first backoff step", () => {
  const { conn, ws } = setup();
  conn.retryNow();
  assert.equal(conn.state, "idle");
  conn.join();
  ws().drop();
  conn.retryNow();
  assert.equal(conn.state, "connecting");
  assert.equal(conn.attempt, 0);
});

test("keep-alive pings, and a silent link counts as lost", () => {
  const { conn, clock, lost, ws } = setup();
  conn.join();
  ws().accept();
  conn.welcomed();
  const sock = ws();
  clock.advance(PING_EVERY_MS);
  assert.equal(JSON.parse(sock.sent.at(-1)).type, "ping");
  clock.advance(PING_EVERY_MS * 3); // nothing received for 60 s
  assert.equal(conn.state, "waiting");
  assert.equal(lost[0][0], 4000);
  assert.ok(sock.closed);
});

test("messages reach the page and refresh the link's liveness", () => {
  const { conn, clock, messages, ws } = setup();
  conn.join();
  ws().accept();
  clock.advance(40_000);
  ws().message({ type: "welcome" });
  assert.deepEqual(messages.map((m) => JSON.parse(m).type), ["welcome"]);
  assert.equal(conn.lastRx, 40_000);
});
