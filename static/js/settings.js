// The user's settings, remembered on this device (localStorage, "babblefish.*" keys) and overridable by the
// page's link (?room=…&name=…&lang=…&mode=…; gate=0 / latency=0 come from the page opened as a file).
// Secrets come after "#" (#passcode=…&token=…), which browsers never send to a server or its logs; the page drops
// them from the address bar once read, so they do not linger in history or screenshots.
export const store = {
  get(k, d) { try { const v = localStorage.getItem("babblefish." + k); return v === null ? d : JSON.parse(v); } catch { return d; } },
  set(k, v) { try { localStorage.setItem("babblefish." + k, JSON.stringify(v)); } catch { /* private mode */ } },
};

// The folder the page is served from: the server this page talks to (also behind a proxy's sub-path).
export const pageBase = () => location.origin + location.pathname.replace(/[^/]*$/, "");

export const params = new URLSearchParams(location.search);
const secrets = new URLSearchParams(location.hash.slice(1));
if (secrets.has("passcode") || secrets.has("token")) history.replaceState(null, "", location.pathname + location.search);
// A link to another room without its passcode must not carry over the passcode saved for the last room.
const sameRoom = !params.has("room") || params.get("room") === store.get("room", "main");

const flag = (name, fallback) => (params.has(name) ? params.get(name) !== "0" : fallback);

export const S = {
  server: pageBase(),
  name: params.get("name") ?? store.get("name", ""),
  lang: params.get("lang") ?? store.get("lang", (navigator.language || "en").split("-")[0]),
  room: params.get("room") ?? store.get("room", "main"),
  passcode: secrets.get("passcode") ?? (sameRoom ? store.get("passcode", "") : ""),
  token: secrets.get("token") ?? store.get("token", ""),
  mode: ["ptt", "handsfree"].includes(params.get("mode")) ? params.get("mode") : store.get("mode", "handsfree"),
  gate: flag("gate", store.get("gate", true)),
  muted: store.get("muted", false),
  latency: flag("latency", store.get("latency", true)),
};

// Kept at once: the address bar no longer has them, and a reload before joining must not lose them.
if (secrets.has("token")) store.set("token", S.token);
if (secrets.has("passcode")) { store.set("room", S.room); store.set("passcode", S.passcode); }

export function saveSettings() {
  for (const k of Object.keys(S)) store.set(k, S[k]);
}
