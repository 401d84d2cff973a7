// node --test: reconnect delays (static/js/backoff.js).
import assert from "node:assert/strict";
import { test } from "node:test";
import { BASE_MS, MAX_ATTEMPT, MAX_MS, nextAttempt, reconnectDelay } from "../../static/js/backoff.js";

test("delays double from 1 s and stop at 30 s", () => {
  const mid = () => 0.5; // no jitter
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 10].map((a) => reconnectDelay(a, mid)),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(reconnectDelay(1000, mid), MAX_MS);
  assert.equal(reconnectDelay(-3, mid), BASE_MS);
});

test("jitter stays within ±20 %, so a room does not reconnect in lockstep", () => {
  assert.equal(reconnectDelay(2, () => 0), 3200);
  assert.ok(reconnectDelay(2, () => 0.999999) < 4800);
  for (let i = 0; i < 200; i++) {
    const d = reconnectDelay(3);
    assert.ok(d >= 6400 && d < 9600, String(d));
  }
});

test("the attempt counter stops growing", () => {
  let a = 0;
  for (let i = 0; i < 50; i++) a = nextAttempt(a);
  assert.equal(a, MAX_ATTEMPT);
});
