// The connection to the server as an explicit state machine (TABLE below is the whole of it):
//
//   idle ─join→ connecting ─welcome→ joined ─lost→ waiting ─retry→ connecting …
//               connecting ─lost→ waiting           (backoff, or the server's draining delay; one timer)
//               connecting ─fatal→ failed           (a join refused for good: stays until the user joins again)
//   any ─leave→ idle;  any ─join→ connecting        (the user's own choices)
//
// Only `transition` decides what may follow what; the class does the side effects (socket, timers) on entering and
// leaving states. No DOM in here.
import { nextAttempt, reconnectDelay } from "./backoff.js";
import "./address.js";

const { wsUrl } = globalThis.BabbleFishAddress;

export const STATES = Object.freeze(["idle", "connecting", "joined", "waiting", "failed"]);

const TABLE = {
  idle: { join: "connecting" },
  connecting: { join: "connecting", welcome: "joined", lost: "waiting", fatal: "failed", leave: "idle" },
  joined: { join: "connecting", lost: "waiting", leave: "idle" },
  waiting: { join: "connecting", retry: "connecting", leave: "idle" },
  failed: { join: "connecting", leave: "idle" },
};

// The state after `event`, or null when the event means nothing in `state` (it is then ignored).
export function transition(state, event) {
  return TABLE[state]?.[event] ?? null;
}

export const PING_EVERY_MS = 15000;
export const DEAD_AFTER_MS = 45000; // no message for this long: the link is dead even without a close frame
const TICK_MS = 500; // how often the "retry in N s" countdown refreshes

const systemClock = {
  setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (t) => clearTimeout(t),
  setInterval: (f, ms) => setInterval(f, ms), clearInterval: (t) => clearInterval(t), now: () => Date.now(),
};

export class Connection {
  // server(): the normalised server base; token(): the access token or "" (optional);
  // joinMessage(): the join to send; onMessage(ev) for every frame;
  // onChange(state, info) after every transition and countdown tick; onLost(code, reason, wasJoined, drained) when
  // the socket ends by itself; onClosed() whenever a socket is let go (lost, left, replaced).
  // WebSocketImpl and clock (setTimeout, clearTimeout, setInterval, clearInterval, now) are for tests.
  constructor({ server, token, joinMessage, onMessage, onChange, onLost, onClosed, WebSocketImpl = globalThis.WebSocket,
    clock = systemClock }) {
    Object.assign(this, { server, token, joinMessage, onMessage, onChange, onLost, onClosed, WebSocketImpl, clock });
    this.state = "idle";
    this.ws = null;
    this.attempt = 0;
    this.retryAt = 0;
    this.drainDelay = null; // set by a draining message: the server says when to come back
    this.lastRx = 0;
    this.pingId = 0;
    this.timers = { retry: null, tick: null, ping: null };
  }

  get open() { return !!this.ws && this.ws.readyState === this.WebSocketImpl.OPEN; }

  join() {
    this.attempt = 0;
    this.to("join");
  }
  leave() { this.to("leave"); }
  retryNow() {
    if (this.state !== "waiting") return;
    this.attempt = 0;
    this.to("retry");
  }
  welcomed() {
    this.attempt = 0;
    this.drainDelay = null;
    this.to("welcome");
  }
  fatal() { this.to("fatal"); }
  draining(delayMs) { this.drainDelay = Number.isFinite(delayMs) ? delayMs : 2000; }

  send(obj) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }
  sendBinary(buf) {
    if (!this.open || this.state !== "joined") return false;
    this.ws.send(buf);
    return true;
  }
  get bufferedAmount() { return this.ws ? this.ws.bufferedAmount : 0; }

  // Wi-Fi can drop without a close frame: ping, and call the link dead when nothing at all comes back.
  keepAlive() {
    if (!this.open) return;
    if (this.clock.now() - this.lastRx > DEAD_AFTER_MS) return this.lost(4000, "no answer from the server");
    this.send({ type: "ping", id: ++this.pingId });
  }

  to(event) {
    const next = transition(this.state, event);
    if (next === null) return false;
    this.exit(this.state);
    this.state = next;
    this.enter(next);
    this.onChange?.(next, this.info());
    return true;
  }

  info() {
    return { retryInS: Math.max(0, Math.ceil((this.retryAt - this.clock.now()) / 1000)) };
  }

  exit(state) {
    if (state === "waiting") {
      this.clock.clearTimeout(this.timers.retry);
      this.clock.clearInterval(this.timers.tick);
      this.timers.retry = this.timers.tick = null;
    }
  }

  enter(state) {
    if (state === "connecting") this.openSocket();
    else if (state === "waiting") this.scheduleRetry();
    else if (state === "idle" || state === "failed") this.dropSocket();
  }

  openSocket() {
    this.dropSocket();
    let ws;
    try {
      ws = new this.WebSocketImpl(wsUrl(this.server(), this.token?.()));
    } catch (e) {
      // A malformed address: nothing to retry against quickly, but keep the backoff going like any failure.
      queueMicrotask(() => this.lost(4001, `bad server address: ${e.message}`));
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.lastRx = this.clock.now();
      ws.send(JSON.stringify(this.joinMessage()));
    };
    ws.onmessage = (ev) => {
      this.lastRx = this.clock.now();
      this.onMessage(ev);
    };
    ws.onclose = (ev) => { if (this.ws === ws) this.lost(ev.code, ev.reason); };
    ws.onerror = () => { /* onclose follows and handles it */ };
    this.timers.ping = this.clock.setInterval(() => this.keepAlive(), PING_EVERY_MS);
  }

  dropSocket() {
    this.clock.clearInterval(this.timers.ping);
    this.timers.ping = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = ws.onerror = null;
      try { ws.close(); } catch { /* already closed */ }
      this.onClosed?.();
    }
  }

  lost(code, reason) {
    const wasJoined = this.state === "joined";
    const drained = this.drainDelay !== null;
    this.dropSocket();
    this.onLost?.(code, reason, wasJoined, drained);
    this.to("lost");
  }

  scheduleRetry() {
    let delay;
    if (this.drainDelay !== null) {
      delay = this.drainDelay;
      this.drainDelay = null;
    } else {
      delay = reconnectDelay(this.attempt);
      this.attempt = nextAttempt(this.attempt);
    }
    this.retryAt = this.clock.now() + delay;
    this.timers.retry = this.clock.setTimeout(() => this.to("retry"), delay);
    // One countdown per wait, stopped on leaving the state (it used to start another one on every reconnect).
    this.timers.tick = this.clock.setInterval(() => this.onChange?.(this.state, this.info()), TICK_MS);
  }
}
