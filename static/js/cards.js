// The conversation log: one card per utterance (who spoke, my language's text big, the original small underneath,
// latency, notes), plus one-line system messages. Drawing only: what goes on a card is decided in conversation.js.
import { $, fmtMs } from "./dom.js";
import { languageName } from "./language-picker.js";

export const MAX_LOG_ITEMS = 400; // long conversations stay fast; the oldest entries go

const log = () => $("log");
const drawn = new Map(); // utterance id → the card's elements
let stick = true; // auto-scroll while the user is at the bottom
let showLatency = true;
let onRename = () => {};

// Recognised voices have ids "spk-…" (docs/protocol.md); other labels are a client's own id: nothing to rename.
export const isVoice = (id) => typeof id === "string" && id.startsWith("spk-");

// One colour per speaker, the same on every card and every page: a hue from the id.
export function speakerHue(id) {
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 360;
}

export function initLog({ rename } = {}) {
  if (rename) onRename = rename;
  const el = log();
  el.addEventListener("scroll", () => {
    stick = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
    if (stick) $("jump").classList.add("hidden");
  }, { passive: true });
  $("jump").onclick = () => { stick = true; el.scrollTop = el.scrollHeight; $("jump").classList.add("hidden"); };
}

// Something was added: drop the oldest entries beyond the cap, follow the bottom or offer the jump button.
function added() {
  const el = log();
  $("empty")?.remove();
  while (el.children.length > MAX_LOG_ITEMS) el.firstElementChild.remove();
  if (stick) el.scrollTop = el.scrollHeight; else $("jump").classList.remove("hidden");
}

// A system line ("Ana joined.", "Connection lost."); level "" | "warn" | "bad".
export function systemLine(text, level = "") {
  const d = document.createElement("div");
  d.className = "sys " + level;
  d.textContent = text;
  log().appendChild(d);
  added();
}

function createCard(u) {
  const el = document.createElement("article");
  el.className = "utt";
  el.dataset.utt = u.id;
  const meta = document.createElement("div"); meta.className = "meta";
  const who = document.createElement("button"); who.type = "button"; who.className = "who";
  who.onclick = () => { if (c.u.speaker && isVoice(c.u.speaker.id)) onRename(c.u.speaker); };
  const lat = document.createElement("span"); lat.className = "lat";
  meta.append(who, lat);
  const main = document.createElement("p"); main.className = "main";
  const orig = document.createElement("p"); orig.className = "orig hidden";
  el.append(meta, main, orig);
  log().appendChild(el);
  const c = { el, meta, who, lat, main, orig, u };
  drawn.set(u.id, c);
  if (drawn.size > MAX_LOG_ITEMS) drawn.delete(drawn.keys().next().value);
  return c;
}

function textWithTag(p, lang, text) {
  p.textContent = "";
  const tag = document.createElement("span"); tag.className = "tag"; tag.textContent = lang || "?"; tag.title = languageName(lang);
  const t = document.createElement("span"); t.className = "txt"; t.textContent = text;
  if (lang && lang !== "auto") t.lang = lang;
  p.append(tag, t);
}

// Streaming text: the stable words, then the tentative tail greyed (.tail).
function partialWithTag(p, part) {
  textWithTag(p, part.language, part.stable);
  const txt = p.querySelector(".txt");
  if (part.tail) {
    const tail = document.createElement("span"); tail.className = "tail";
    tail.textContent = (part.stable ? " " : "") + part.tail;
    txt.appendChild(tail);
  }
}

function draw(c) {
  const u = c.u;
  const partial = u.partial || {};
  c.who.textContent = u.speaker?.name || "Someone";
  if (u.speaker?.id) c.who.style.setProperty("--who", `hsl(${speakerHue(u.speaker.id)} 65% 38%)`);
  const voice = isVoice(u.speaker?.id);
  c.who.disabled = !voice;
  c.who.title = voice ? "Tap to name this voice" : "";
  // My language's text is the big line; the original goes small underneath when it differs.
  // While it is spoken (partials), the same places show the streaming text.
  const translation = u.translation || partial.translation;
  const transcript = u.transcript || partial.transcript;
  const put = (p, final, part) => (final ? textWithTag(p, final.language, final.text) : partialWithTag(p, part));
  c.el.classList.toggle("partial", !u.transcript && !u.translation);
  if (translation) {
    put(c.main, u.translation, partial.translation);
    if (transcript) { put(c.orig, u.transcript, partial.transcript); c.orig.classList.remove("hidden"); }
  } else if (transcript) {
    put(c.main, u.transcript, partial.transcript);
  }
  const ms = u.latencyMs.translation ?? u.latencyMs.transcript; // the first text's: a revision comes later by design
  c.lat.classList.toggle("hidden", !showLatency || ms === undefined);
  if (ms !== undefined) {
    c.lat.textContent = fmtMs(ms);
    c.lat.title = Object.entries(u.latencyMs).map(([k, v]) => `${k}: ${Math.round(v)} ms after speech ended`).join("\n");
  }
  c.el.classList.toggle("mine", u.mine);
  c.el.classList.toggle("revised", !!u.revised);
  c.el.title = u.revised ? "Revised: re-heard as a whole after the speaker finished" : "";
}

// Draw (or redraw) an utterance's card.
export function showUtterance(u) {
  draw(drawn.get(u.id) || createCard(u));
  added();
}

// A revision merged utterances into one: their cards go; the revised one is redrawn where its first piece was.
export function mergeCards(u, removed) {
  for (const id of removed) {
    drawn.get(id)?.el.remove();
    drawn.delete(id);
  }
  const c = drawn.get(u.id) || createCard(u);
  c.el.querySelectorAll(".note").forEach((n) => n.remove());
  for (const text of u.notes) {
    const n = document.createElement("p"); n.className = "note"; n.textContent = text;
    c.el.appendChild(n);
  }
  draw(c);
  added();
}

// A card that only ever held partial text (the utterance gave nothing final): take it away.
export function removeUtterance(u) {
  const c = drawn.get(u.id);
  if (!c) return;
  c.el.remove();
  drawn.delete(u.id);
}

// A plain-words note under an utterance's card (e.g. no translation into my language).
export function showNote(u, text) {
  const c = drawn.get(u.id) || createCard(u);
  draw(c);
  const n = document.createElement("p"); n.className = "note"; n.textContent = text;
  c.el.appendChild(n);
  added();
}

// A voice was named: redraw its cards (those still shown).
export function relabel(utterances) {
  for (const u of utterances) { const c = drawn.get(u.id); if (c) draw(c); }
}

// The "show how long each translation took" setting: redraw every card.
export function setShowLatency(on) {
  showLatency = on;
  for (const c of drawn.values()) draw(c);
}
