// BabbleFish page: wires the modules together. Settings (settings.js) → the join form (join-form.js) → the
// connection state machine (connection.js) → server messages through the reducer (conversation.js) → cards
// (cards.js) and sound (audio.js). docs/protocol.md is the wire contract.
//
// Where things go: a new server message or field → conversation.js (an effect) + `apply` below; what a card shows
// (speaker labels, tap actions) → cards.js; a new join field (e.g. a passcode) → the form's markup in
// client_thin.html, join-form.js, settings.js, `joinMessage` below, and start.js if the file page must carry it;
// what the picker says per language → language-picker.js. A new file under static/ also goes into static/sw.js.
import { createAudio, TARGET_RATE } from "./audio.js";
import { initLog, mergeCards, relabel, removeUtterance, setShowLatency, showNote, showUtterance, systemLine } from "./cards.js";
import { Connection } from "./connection.js";
import { applyBinary, applyMessage, newConversation, socketEnded } from "./conversation.js";
import { $, banner, showStatus } from "./dom.js";
import { initInvite } from "./invite.js";
import { hideJoinForm, initJoinForm, joinFormOpen, showJoinForm } from "./join-form.js";
import { fillLanguages, languageName } from "./language-picker.js";
import { params, S, saveSettings, store } from "./settings.js";
import { initTranscript, setTranscriptAccess } from "./transcript.js";

const conv = newConversation();
const conn = new Connection({
  server: () => S.server,
  token: () => S.token,
  joinMessage: () => ({ type: "join", name: S.name, language: S.lang, room: S.room, sample_rate: TARGET_RATE,
    ...(S.passcode ? { passcode: S.passcode } : {}) }),
  onMessage,
  onChange: renderStatus,
  onLost,
  onClosed: () => socketEnded(conv),
});
const inRoom = () => conn.state === "connecting" || conn.state === "joined" || conn.state === "waiting";

const audio = createAudio({
  S,
  stats: conv.stats,
  link: {
    joined: () => conn.state === "joined",
    bufferedAmount: () => conn.bufferedAmount,
    sendAudio: (buf) => conn.sendBinary(buf),
    endUtterance: () => conn.send({ type: "end_utterance" }),
  },
  wantsSound: inRoom,
  onMicLost: () => systemLine("The microphone was disconnected.", "warn"),
});

// For tests and curious users (read-only use please): the connection state and the counters.
window.babblefish = {
  get state() { return conn.state; },
  stats: conv.stats,
  conversation: conv,
};

// ---------- status ----------
function statusText(state, info) {
  switch (state) {
    case "connecting": return conv.everJoined ? "Reconnecting…" : "Connecting…";
    case "joined": { const n = conv.participants.length; return `${S.room} · ${n} ${n === 1 ? "person" : "people"}`; }
    case "waiting": return `Offline · retry in ${info.retryInS} s`;
    case "failed": return "Could not join";
    default: return "Not connected";
  }
}
function renderStatus(state = conn.state, info = conn.info()) { showStatus(state, statusText(state, info)); }

// ---------- server messages ----------
function onMessage(ev) {
  let effects;
  if (typeof ev.data !== "string") effects = applyBinary(conv, ev.data);
  else {
    let m;
    try { m = JSON.parse(ev.data); } catch { return; }
    effects = applyMessage(conv, m, { joined: conn.state === "joined", languageName });
  }
  for (const e of effects) apply(e);
}

function apply(e) {
  switch (e.type) {
    case "welcome":
      if (e.languages) fillLanguages(e.languages);
      systemLine(e.text);
      if (e.engine) $("engine-info").textContent = `Server engine: ${e.engine.name}${e.engine.reason ? " — " + e.engine.reason : ""}`;
      conn.welcomed();
      setTranscriptAccess({ server: S.server, room: e.room, key: e.transcriptKey });
      banner("");
      if (audio.micWanted()) audio.startMic().catch(micError);
      return;
    case "roster": if (conn.state === "joined") renderStatus(); return;
    case "utterance": return showUtterance(e.utterance);
    case "remove": return removeUtterance(e.utterance);
    case "renamed": return relabel(e.utterances);
    case "merged": return mergeCards(e.utterance, e.removed);
    case "note": return showNote(e.utterance, e.text);
    case "sys": return systemLine(e.text, e.level);
    case "loud": return loudRoom(e.text);
    case "play": return audio.play(e.header, e.data);
    case "draining":
      conn.draining(e.delayMs);
      return systemLine(e.text, "warn");
    case "fatal":
      // Retrying cannot fix these: stop and let the user change the settings.
      conn.fatal();
      showJoinForm(e.text);
      return systemLine(`Could not join: ${e.text}`, "bad");
  }
}

// The server heard a crowd around this phone (once a connection). Hands-free turns end late there and carry the
// crowd's words; a release ends a push-to-talk turn at once. Offered, not imposed, and once a visit (reconnects
// bring the notice again): the banner goes by itself, and the log keeps the line. Heard while in push-to-talk, it is
// offered when the user switches to hands-free.
const LOUD_BANNER_MS = 20000;
let loudText = "", loudOffered = false;
function loudRoom(text) {
  loudText = text;
  if (S.mode === "ptt" || loudOffered) return;
  loudOffered = true;
  systemLine(text, "warn");
  banner(text, "Use push-to-talk", () => { setMode("ptt"); banner(""); });
  setTimeout(() => { if ($("banner-text").textContent === text) banner(""); }, LOUD_BANNER_MS);
}

function onLost(code, reason, wasJoined, drained) {
  audio.pttAbort();
  setTranscriptAccess(null); // the key died with the connection; the next welcome brings a new one
  // After a draining notice the user already read why; otherwise say what happened.
  if (wasJoined && !drained) systemLine(code === 1012 ? "The server is restarting." : `Connection lost${reason ? ` (${reason})` : ""}.`, "warn");
}

// ---------- joining and leaving ----------
function join() {
  if (inRoom()) audio.stopMic();
  conv.everJoined = false;
  saveSettings();
  hideJoinForm();
  conn.join();
}
function leave() {
  audio.stopMic();
  conn.leave();
  setTranscriptAccess(null);
  systemLine("You left the room.");
  conv.everJoined = false;
}
function micError(e) {
  audio.micOff();
  const msg = e && e.name === "NotAllowedError" ? "Microphone permission was denied. Allow it in the browser's site settings." : (e?.message || String(e));
  systemLine(msg, "bad"); banner(msg);
}

$("status").onclick = () => { if (conn.state === "waiting") conn.retryNow(); else if (!inRoom()) showJoinForm(); };
window.addEventListener("online", () => conn.retryNow());
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") { conn.retryNow(); conn.keepAlive(); } });

// ---------- talking: a toggle in hands-free mode, press-and-hold (or the space bar) in push-to-talk ----------
const mic = $("mic");
mic.addEventListener("pointerdown", (e) => {
  audio.unlock();
  if (S.mode !== "ptt") return;
  e.preventDefault(); mic.setPointerCapture?.(e.pointerId); audio.pttStart().catch(micError);
});
for (const t of ["pointerup", "pointercancel", "lostpointercapture"]) mic.addEventListener(t, () => { if (S.mode === "ptt") audio.pttEnd(); });
mic.addEventListener("contextmenu", (e) => e.preventDefault());
mic.addEventListener("click", () => {
  if (S.mode === "ptt") return;
  if (audio.micOn) audio.stopMic(); else audio.startMic().catch(micError);
});
const typing = (e) => /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName) || joinFormOpen();
document.addEventListener("keydown", (e) => {
  if (e.code !== "Space" || typing(e) || S.mode !== "ptt") return;
  e.preventDefault(); if (!e.repeat) { audio.unlock(); audio.pttStart().catch(micError); }
});
document.addEventListener("keyup", (e) => { if (e.code === "Space" && S.mode === "ptt" && !typing(e)) { e.preventDefault(); audio.pttEnd(); } });
window.addEventListener("blur", () => audio.pttEnd());

function setMode(m) {
  if (S.mode === m) return;
  if (m === "ptt" && audio.micOn) audio.stopMic();
  S.mode = m; store.set("mode", m); audio.ui();
  if (m === "handsfree" && loudText) loudRoom(loudText);
}
$("mode-hf").onclick = () => setMode("handsfree");
$("mode-ptt").onclick = () => setMode("ptt");
$("sound").onclick = () => {
  S.muted = !S.muted; store.set("muted", S.muted);
  if (S.muted) audio.stopPlayback(); else audio.unlock();
  audio.ui();
  if (S.muted && $("banner-btn").textContent === "Turn sound on") banner("");
};
// Any tap unlocks audio output (iOS).
document.addEventListener("pointerdown", () => { if (inRoom()) audio.unlock(); }, { passive: true });

// ---------- naming a voice: tap its label ----------
function renameSpeaker(speaker) {
  const name = window.prompt("Name this voice", speaker.name);
  if (name === null || !name.trim() || name.trim() === speaker.name) return;
  if (!conn.send({ type: "rename_speaker", id: speaker.id, name: name.trim() })) systemLine("Not connected: try again when back online.", "warn");
}

// ---------- sheets ----------
initLog({ rename: renameSpeaker });
initInvite();
initTranscript((text) => systemLine(text, "bad"));
initJoinForm({
  isInRoom: inRoom,
  onJoin: join,
  onLeave: leave,
  onOptions: () => setShowLatency(S.latency),
  onGesture: () => audio.unlock(), // this submit is a user gesture: unlock sound now (iOS)
});
$("settings-btn").onclick = () => showJoinForm();
for (const o of ["settings", "invite"]) {
  $(o).addEventListener("click", (e) => { if (e.target === $(o) && (o === "invite" || inRoom())) $(o).classList.add("hidden"); });
}
document.addEventListener("keydown", (e) => { if (e.key === "Escape") { $("invite").classList.add("hidden"); if (inRoom()) hideJoinForm(); } });

// ---------- PWA ----------
let installEvt = null;
window.addEventListener("beforeinstallprompt", (e) => { e.preventDefault(); installEvt = e; $("install-btn").classList.remove("hidden"); });
$("install-btn").onclick = async () => { if (!installEvt) return; installEvt.prompt(); installEvt = null; $("install-btn").classList.add("hidden"); };
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("sw.js", { scope: "./" }).catch((e) => console.warn("service worker:", e));
}

// ---------- start ----------
setShowLatency(S.latency);
audio.ui();
renderStatus();
const fromLink = params.has("room") && params.has("name") && params.has("lang");
const fromHome = params.get("source") === "pwa" && S.name && S.lang && S.room;
if (fromLink || fromHome) {
  // A full link (or the installed app with saved settings) joins at once; one tap on "Start talking" then speaks.
  try { audio.ensureCtx(); } catch { /* created on the first tap instead */ }
  join();
  setTimeout(audio.soundBanner, 300); // autoplay blocked without a tap: say so, offer the tap
} else {
  showJoinForm();
}
