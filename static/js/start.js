// Starts the page (a classic script, loaded after address.js).
//
// Served over http(s): load the app, the ES modules from main.js on.
// Opened from a file (file://), the way the original deployment guide told users to: browsers load neither modules
// nor audio worklets there, and phones give the microphone only to secure pages anyway. So the join form asks for
// the server's address as before, and Join continues on the page that server serves, with the choices in its link.
(function () {
  "use strict";
  if (location.protocol !== "file:") {
    const s = document.createElement("script");
    s.type = "module";
    s.src = new URL("main.js", document.currentScript.src).href;
    document.head.appendChild(s);
    return;
  }
  const { normalizeServer, pageUrl, secretsHash } = globalThis.BabbleFishAddress;
  const $ = (id) => document.getElementById(id);
  // The same keys as the app (settings.js); a file page has its own storage, separate from any server's page.
  const get = (k, d) => { try { const v = localStorage.getItem("babblefish." + k); return v === null ? d : JSON.parse(v); } catch { return d; } };
  const set = (k, v) => { try { localStorage.setItem("babblefish." + k, JSON.stringify(v)); } catch { /* private mode */ } };

  $("f-name").value = get("name", "");
  $("f-room").value = get("room", "main");
  $("f-server").value = get("server", "");
  $("f-gate").checked = get("gate", true);
  $("f-latency").checked = get("latency", true);
  const lang = get("lang", (navigator.language || "en").split("-")[0]);
  if ([...$("f-lang").options].some((o) => o.value === lang)) $("f-lang").value = lang;
  $("advanced").open = true; // no server to default to: the address field is the first thing needed
  const show = () => $("settings").classList.remove("hidden");
  $("settings-btn").onclick = show;
  $("status").onclick = show;
  show();
  if (!$("f-name").value) $("f-name").focus();

  $("settings-form").addEventListener("submit", (e) => {
    e.preventDefault();
    let server;
    try { server = normalizeServer($("f-server").value, location.protocol); } catch { server = ""; }
    if (!server) { $("settings-err").textContent = "Type the server address, e.g. https://192.168.1.20:9000"; return; }
    const name = $("f-name").value.trim(), room = $("f-room").value.trim() || "main", lang = $("f-lang").value;
    if (!name) { $("settings-err").textContent = "Please type your name."; return; }
    const gate = $("f-gate").checked, latency = $("f-latency").checked;
    for (const [k, v] of Object.entries({ server, name, room, lang, gate, latency })) set(k, v);
    const url = pageUrl(server, { room, name, lang, gate: gate ? undefined : 0, latency: latency ? undefined : 0 });
    location.assign(url + secretsHash($("f-passcode").value, $("f-token").value.trim()));
  });
})();
