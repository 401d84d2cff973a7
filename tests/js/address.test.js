// node --test: server addresses typed by users (static/js/address.js).
import assert from "node:assert/strict";
import { test } from "node:test";
import "../../static/js/address.js";

const { normalizeServer, wsUrl, pageUrl, secretsHash } = globalThis.BabbleFishAddress;

test("what users type becomes the folder the page is served from", () => {
  const cases = {
    "192.168.1.20:9000": "http://192.168.1.20:9000/",
    "  192.168.1.20:9000  ": "http://192.168.1.20:9000/",
    "https://192.168.1.20:9000": "https://192.168.1.20:9000/",
    "ws://192.168.1.100:9000/ws/client": "http://192.168.1.100:9000/", // the original deployment guide's form
    "wss://translate.example.org/ws/client/": "https://translate.example.org/",
    "https://host/babblefish/client_thin.html?room=x#y": "https://host/babblefish/",
    "https://host/babblefish": "https://host/babblefish/",
    "HTTP://Host:9000/": "http://host:9000/",
    "[::1]:9000": "http://[::1]:9000/",
  };
  for (const [typed, base] of Object.entries(cases)) assert.equal(normalizeServer(typed, "file:"), base, typed);
});

test("no scheme typed: https on an https page, http elsewhere", () => {
  assert.equal(normalizeServer("10.0.0.5:9000", "https:"), "https://10.0.0.5:9000/");
  assert.equal(normalizeServer("10.0.0.5:9000", "http:"), "http://10.0.0.5:9000/");
  assert.equal(normalizeServer("10.0.0.5:9000", "file:"), "http://10.0.0.5:9000/");
});

test("nothing typed is empty; garbage and other schemes throw", () => {
  assert.equal(normalizeServer("", "http:"), "");
  assert.equal(normalizeServer("   ", "http:"), "");
  assert.equal(normalizeServer(undefined, "http:"), "");
  assert.throws(() => normalizeServer("http://", "http:"));
  assert.throws(() => normalizeServer("ftp://host/", "http:"));
  assert.throws(() => normalizeServer("http://exa mple.org", "http:"));
});

test("the WebSocket lives under the page's folder, secure when the page is", () => {
  assert.equal(wsUrl("http://192.168.1.20:9000/"), "ws://192.168.1.20:9000/ws/client");
  assert.equal(wsUrl("https://host/babblefish/"), "wss://host/babblefish/ws/client");
});

test("secrets for a page link go after #, only the ones given", () => {
  assert.equal(secretsHash("tulip 42", ""), "#passcode=tulip+42");
  assert.equal(secretsHash("", "bf_x"), "#token=bf_x");
  assert.equal(secretsHash("a&b", "t"), "#passcode=a%26b&token=t");
  assert.equal(secretsHash("", ""), "");
});

test("an access token rides on the WebSocket URL, encoded; none adds nothing", () => {
  assert.equal(wsUrl("https://host/", "bf_a+b/c"), "wss://host/ws/client?token=bf_a%2Bb%2Fc");
  assert.equal(wsUrl("https://host/", ""), "wss://host/ws/client");
});

test("the page on a server carries the choices in its link; unset ones are left out", () => {
  const u = new URL(pageUrl("https://host/bf/", { room: "main hall", name: "Ana María", lang: "es", gate: undefined, latency: 0 }));
  assert.equal(u.origin + u.pathname, "https://host/bf/");
  assert.deepEqual(Object.fromEntries(u.searchParams), { room: "main hall", name: "Ana María", lang: "es", latency: "0" });
});
