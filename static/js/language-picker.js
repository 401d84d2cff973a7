// Language names and the language picker. The names come from the server's language table (welcome, /languages);
// before that, from the browser's Intl.DisplayNames. The picker's first list is the one in the page's markup.
import { $ } from "./dom.js";

const names = new Map(); // code → English name
const gets = new Map(); // code → what a listener of it receives, in words (the table's "listener")

export function languageName(code) {
  if (!code) return "";
  if (names.has(code)) return names.get(code);
  try { return new Intl.DisplayNames(["en"], { type: "language" }).of(code) || code; } catch { return code; }
}

// What the picker says about a language the engine only partly supports.
export function languageLabel(l) {
  const phrases = l.via && l.via.mt === "phrasebook"; // the cascade's set phrases only (greetings, thanks)
  const limits = l.text_out === false ? (phrases ? " — set phrases only" : " — no translation into it")
    : l.speech_in === false ? " — read only"
    : l.speech_out === false ? " — text only" : "";
  return `${l.name || l.code}${l.native_name && l.native_name !== l.name ? ` (${l.native_name})` : ""}${limits}`;
}

// The languages written into client_thin.html: what the picker offers before any server answered.
let builtIn = null;
export function builtInLanguages() {
  builtIn ??= [...$("f-lang").options].filter((o) => o.value !== "auto").map((o) => ({ code: o.value, name: o.text }));
  return builtIn;
}

// Fill the picker from a language table, keeping the choice `keep` (default: the current one) even if the table
// lacks it.
export function fillLanguages(list, keep = $("f-lang").value) {
  const sel = $("f-lang");
  builtInLanguages(); // read the markup's list before it is replaced
  const langs = (list || []).filter((l) => l && l.code);
  for (const l of langs) { names.set(l.code, l.name || l.code); if (l.listener) gets.set(l.code, l.listener); }
  sel.textContent = "";
  const option = (value, text) => {
    const o = document.createElement("option"); o.value = value; o.textContent = text; o.title = gets.get(value) || ""; return o;
  };
  const sorted = [...langs].sort((a, b) => (a.name || a.code).localeCompare(b.name || b.code));
  // Languages others can be translated into come first; the rest can only be spoken (listeners get transcripts).
  const full = sorted.filter((l) => l.text_out !== false), partial = sorted.filter((l) => l.text_out === false);
  for (const l of full) sel.appendChild(option(l.code, languageLabel(l)));
  if (partial.length) {
    const group = document.createElement("optgroup");
    group.label = "Speak only: others are shown to you untranslated, set phrases aside where noted";
    for (const l of partial) group.appendChild(option(l.code, languageLabel(l)));
    sel.appendChild(group);
  }
  sel.appendChild(option("auto", "Detect what I speak (no translation)"));
  if (keep && ![...sel.options].some((o) => o.value === keep)) sel.appendChild(option(keep, `${languageName(keep)} (${keep})`));
  sel.value = keep;
  if (!sel.dataset.noted) { sel.addEventListener("change", showListenerNote); sel.dataset.noted = "1"; }
  showListenerNote();
}

// Under the picker: what picking this language gets you (text, voice, via what), so nobody is surprised.
function showListenerNote() {
  const note = $("f-lang-note"), code = $("f-lang").value;
  if (note) note.textContent = code === "auto" ? "You are transcribed in whatever you speak; others are shown to you untranslated."
    : gets.get(code) || "";
}
