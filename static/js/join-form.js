// The join form (the "settings" sheet): name, language, room, and under "Server and sound" the server address,
// echo gating and latency display. It validates what was typed and hands a finished choice to main.js; a server
// other than the one that served this page is not joined from here: the page continues on that server's own page.
import { $ } from "./dom.js";
import { builtInLanguages, fillLanguages } from "./language-picker.js";
import { pageBase, S, saveSettings } from "./settings.js";
import "./address.js";

const { normalizeServer, pageUrl, secretsHash } = globalThis.BabbleFishAddress;

let inRoom = () => false;
let langFetch = 0;

// The picker from the server's /languages (the typed server's while the user edits the address).
export async function loadLanguages() {
  const my = ++langFetch;
  let server;
  try { server = normalizeServer($("f-server").value || S.server, location.protocol); } catch { return; }
  try {
    const r = await fetch(new URL("languages", server), { cache: "no-store" });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const j = await r.json();
    if (my === langFetch && Array.isArray(j.languages)) fillLanguages(j.languages);
  } catch {
    // Unreachable or not a BabbleFish server: keep what the picker has (the page's built-in list at worst).
  }
}

export function showJoinForm(err = "") {
  $("f-name").value = S.name; $("f-room").value = S.room; $("f-server").value = S.server;
  $("f-passcode").value = S.passcode; $("f-token").value = S.token;
  $("f-gate").checked = S.gate; $("f-latency").checked = S.latency;
  $("f-lang").value = S.lang;
  loadLanguages();
  $("settings-err").textContent = err;
  const joined = inRoom();
  $("settings-title").textContent = joined ? "Settings" : "Join a conversation";
  $("join-btn").textContent = joined ? "Save and rejoin" : "Join";
  $("leave-btn").classList.toggle("hidden", !joined);
  $("close-settings").classList.toggle("hidden", !joined);
  $("settings").classList.remove("hidden");
  if (!S.name) $("f-name").focus();
}

export function hideJoinForm() { $("settings").classList.add("hidden"); }
export const joinFormOpen = () => !$("settings").classList.contains("hidden");

// isInRoom(): whether the user is in a room (the form then offers Leave/Close and "Save and rejoin");
// onJoin(changed): S holds the new choice, join with it (changed: name, room or language differ);
// onLeave(); onOptions(): the sound/latency options may have changed; onGesture(): called inside every valid
// submit, a user gesture (iOS unlocks sound only in one).
export function initJoinForm({ isInRoom, onJoin, onLeave, onOptions, onGesture }) {
  inRoom = isInRoom;
  fillLanguages(builtInLanguages(), S.lang);
  $("close-settings").onclick = () => {
    S.gate = $("f-gate").checked; S.latency = $("f-latency").checked; saveSettings();
    onOptions();
    hideJoinForm();
  };
  $("leave-btn").onclick = () => { hideJoinForm(); onLeave(); };
  let debounce = 0;
  $("f-server").addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(loadLanguages, 500); });
  $("settings-form").addEventListener("submit", (e) => {
    e.preventDefault();
    let server;
    try { server = normalizeServer($("f-server").value, location.protocol); } catch { server = ""; }
    if (!server) { $("advanced").open = true; $("settings-err").textContent = "Type the server address, e.g. https://192.168.1.20:9000"; return; }
    const name = $("f-name").value.trim(), room = $("f-room").value.trim() || "main", lang = $("f-lang").value;
    if (!name) { $("settings-err").textContent = "Please type your name."; return; }
    const gate = $("f-gate").checked, latency = $("f-latency").checked;
    const passcode = $("f-passcode").value, token = $("f-token").value.trim();
    if (server !== pageBase()) {
      // Another server: continue on the page it serves (its own origin, which is also what phones need for the mic).
      location.assign(pageUrl(server, { room, name, lang, mode: S.mode, gate: gate ? undefined : 0, latency: latency ? undefined : 0 })
        + secretsHash(passcode, token));
      return;
    }
    const changed = name !== S.name || room !== S.room || lang !== S.lang || passcode !== S.passcode || token !== S.token;
    Object.assign(S, { name, room, lang, gate, latency, passcode, token });
    onOptions();
    onGesture();
    if (inRoom() && !changed) { saveSettings(); hideJoinForm(); return; }
    onJoin();
  });
}
