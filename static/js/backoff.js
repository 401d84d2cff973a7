// Reconnect delays: exponential, 1 s doubling up to 30 s, with ±20 % jitter so a room that lost its server does not
// come back in lockstep. Pure: `random` is injectable for tests.
export const BASE_MS = 1000;
export const MAX_MS = 30000;
export const MAX_ATTEMPT = 10; // 2 ** 10 s is far past MAX_MS already: the counter stops growing there

export function reconnectDelay(attempt, random = Math.random) {
  const n = Math.max(0, Math.min(attempt, MAX_ATTEMPT));
  return Math.min(MAX_MS, BASE_MS * 2 ** n) * (0.8 + 0.4 * random());
}

export const nextAttempt = (attempt) => Math.min(attempt + 1, MAX_ATTEMPT);
