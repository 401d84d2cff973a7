// BabbleFish service worker: makes the page installable and opens it without a network.
// Served at /sw.js (scope "/"). Only the app shell is cached, network-first, so a server update
// reaches users at the next load; the WebSocket and every API response (/languages, /qr.svg,
// /healthz, /metrics, ...) always go to the network and are never stored.
const CACHE = "babblefish-shell-v1";
const SHELL = [
  "./",
  "./client_thin.html",
  "./manifest.json",
  "./static/client.css",
  "./static/js/address.js",
  "./static/js/start.js",
  "./static/js/main.js",
  "./static/js/audio.js",
  "./static/js/backoff.js",
  "./static/js/capture-worklet.js",
  "./static/js/cards.js",
  "./static/js/connection.js",
  "./static/js/conversation.js",
  "./static/js/dom.js",
  "./static/js/invite.js",
  "./static/js/join-form.js",
  "./static/js/language-picker.js",
  "./static/js/settings.js",
  "./static/js/transcript.js",
  "./static/icons/icon-192.png",
  "./static/icons/icon-512.png",
];
const scoped = (p) => new URL(p, self.registration.scope).pathname;
const SHELL_PATHS = new Set(SHELL.map(scoped));

self.addEventListener("install", (event) => {
  // Best effort: one missing file must not stop the worker from installing.
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => Promise.allSettled(SHELL.map((p) => cache.add(new Request(p, { cache: "reload" })))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  const isPage = req.mode === "navigate" && SHELL_PATHS.has(url.pathname);
  if (!isPage && !SHELL_PATHS.has(url.pathname)) return; // not ours: straight to the network, never cached
  event.respondWith(networkFirst(req, isPage));
});

async function networkFirst(req, isPage) {
  const cache = await caches.open(CACHE);
  // Store pages under their path only, so ?room=… links do not pile up in the cache.
  const key = new URL(req.url).pathname;
  try {
    const res = await fetch(req, { cache: "no-store" });
    if (res.ok && res.type === "basic") cache.put(key, res.clone());
    return res;
  } catch (err) {
    const hit = (await cache.match(key)) || (isPage && ((await cache.match(scoped("client_thin.html"))) || (await cache.match(scoped("./")))));
    if (hit) return hit;
    throw err;
  }
}
