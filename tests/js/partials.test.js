// node --test: streaming partials in the conversation model (static/js/conversation.js; docs/protocol.md §3.0).
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyMessage, newConversation } from "../../static/js/conversation.js";

const ana = { id: "a1", name: "Ana" };
const types = (fx) => fx.map((e) => e.type);

function joined() {
  const conv = newConversation();
  applyMessage(conv, { type: "welcome", client_id: "d1", room: "main", name: "Dan", language: "de", participants: [] });
  return conv;
}

const partial = (over = {}) => ({ type: "partial", utterance_id: "u1", speaker: ana, client_id: "a1",
  kind: "transcript", language: "en", source_language: "en", stable: "good", tail: "morn", seq: 1,
  audio_seconds: 0.9, elapsed_ms: 950, ...over });

test("a partial starts a card with stable words and a tentative tail", () => {
  const conv = joined();
  const [e] = applyMessage(conv, partial());
  assert.equal(e.type, "utterance");
  assert.deepEqual(e.utterance.partial.transcript, { stable: "good", tail: "morn", language: "en", seq: 1 });
  assert.equal(e.utterance.transcript, null);
  assert.equal(e.utterance.mine, false);
});

test("newer partials replace older ones; an out-of-date one is ignored", () => {
  const conv = joined();
  applyMessage(conv, partial({ seq: 2, stable: "good morning", tail: "everyone" }));
  assert.deepEqual(applyMessage(conv, partial({ seq: 1 })), []);
  const [e] = applyMessage(conv, partial({ seq: 3, kind: "translation", language: "de", stable: "guten", tail: "" }));
  assert.equal(e.utterance.partial.transcript.stable, "good morning");
  assert.equal(e.utterance.partial.translation.stable, "guten");
});

test("the final replaces the partial of its kind and names the voice; later partials are ignored", () => {
  const conv = joined();
  applyMessage(conv, partial());
  applyMessage(conv, partial({ seq: 2, kind: "translation", language: "de", stable: "guten", tail: "Mor" }));
  const voice = { id: "spk-12345678", name: "Ana" };
  let [e] = applyMessage(conv, { type: "transcript", utterance_id: "u1", speaker: voice, client_id: "a1",
    text: "Good morning.", language: "en", audio_seconds: 1.2, latency_ms: 400 });
  assert.equal(e.utterance.transcript.text, "Good morning.");
  assert.equal(e.utterance.partial.transcript, undefined);
  assert.equal(e.utterance.partial.translation.stable, "guten"); // its own final is still to come
  assert.deepEqual(e.utterance.speaker, voice);
  assert.deepEqual(applyMessage(conv, partial({ seq: 9, stable: "late" })), []);
  [e] = applyMessage(conv, { type: "translation", utterance_id: "u1", speaker: voice, text: "Guten Morgen.",
    language: "de", source_language: "en", via: "test", latency_ms: 600 });
  assert.equal(e.utterance.partial.translation, undefined);
  assert.equal(conv.utterances.size, 1);
});

test("partial_end: a card with final text keeps it; one with only partial text goes", () => {
  const conv = joined();
  applyMessage(conv, partial());
  applyMessage(conv, { type: "transcript", utterance_id: "u1", speaker: ana, client_id: "a1", text: "Good morning.",
    language: "en", audio_seconds: 1.2, latency_ms: 400 });
  applyMessage(conv, partial({ seq: 2, kind: "translation", language: "de", stable: "guten", tail: "" }));
  let fx = applyMessage(conv, { type: "partial_end", utterance_id: "u1" });
  assert.deepEqual(types(fx), ["utterance"]);
  assert.deepEqual(fx[0].utterance.partial, {}); // a translation that never came is not left half-shown
  assert.deepEqual(applyMessage(conv, partial({ seq: 5 })), []); // nothing more after the end

  applyMessage(conv, partial({ utterance_id: "u2", stable: "", tail: "hmm" }));
  fx = applyMessage(conv, { type: "partial_end", utterance_id: "u2" });
  assert.deepEqual(types(fx), ["remove"]);
  assert.ok(!conv.utterances.has("u2"));
  assert.deepEqual(applyMessage(conv, { type: "partial_end", utterance_id: "nope" }), []);
});

test("my own partials are marked mine", () => {
  const conv = joined();
  const [e] = applyMessage(conv, partial({ client_id: "d1", speaker: { id: "d1", name: "Dan" } }));
  assert.equal(e.utterance.mine, true);
});
