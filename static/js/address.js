// Server addresses: what the user types → the page base URL, the WebSocket URL, and the page on that server.
//
// A classic script, not an ES module, on purpose: the page opened from a file (file://) can load classic scripts
// only (browsers refuse modules and worklets there), and it needs these too. So it defines globalThis.BabbleFishAddress;
// the modules `import "./address.js"` for that side effect.
(function (global) {
  "use strict";

  // "192.168.1.20:9000", "https://host/babblefish/client_thin.html", "ws://host:9000/ws/client" (the address the
  // original deployment guide told users to type) → "http(s)://host[:port]/path/", the base the page is served under.
  // `pageProtocol` picks the scheme when none is typed: https on an https page (phones), http otherwise.
  function normalizeServer(text, pageProtocol) {
    let s = String(text || "").trim();
    if (!s) return "";
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) s = (pageProtocol === "https:" ? "https://" : "http://") + s;
    const u = new URL(s); // throws on garbage: callers say "bad address"
    if (u.protocol === "ws:") u.protocol = "http:";
    else if (u.protocol === "wss:") u.protocol = "https:";
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new TypeError(`not a web address: ${u.protocol}`);
    let path = u.pathname.replace(/\/[^/]*\.html?$/, "/").replace(/\/ws\/client\/?$/, "/");
    if (!path.endsWith("/")) path += "/";
    u.pathname = path;
    u.search = "";
    u.hash = "";
    return u.toString();
  }

  // The WebSocket endpoint under a normalised server base; `token`, if any, as its ?token= (docs/protocol.md §0).
  function wsUrl(server, token) {
    const u = new URL("ws/client", server);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    if (token) u.searchParams.set("token", token);
    return u.toString();
  }

  // The page that `server` serves, with `params` (room, name, lang, ...) in its query: a link that joins at once.
  function pageUrl(server, params) {
    const u = new URL(server);
    for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null) u.searchParams.set(k, String(v));
    return u.toString();
  }

  // "#passcode=…&token=…" for the ones given, "" for none: secrets ride after "#", which never reaches a server.
  function secretsHash(passcode, token) {
    const h = new URLSearchParams();
    if (passcode) h.set("passcode", passcode);
    if (token) h.set("token", token);
    const s = h.toString();
    return s ? "#" + s : "";
  }

  global.BabbleFishAddress = Object.freeze({ normalizeServer, wsUrl, pageUrl, secretsHash });
})(globalThis);
