// node --test: what server messages do to the conversation (static/js/conversation.js).
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyBinary, applyMessage, MAX_UTTERANCES, newConversation, socketEnded } from "../../static/js/conversation.js";

const ana = { id: "a1", name: "Ana", language: "pt" };
const dan = { id: "d1", name: "Dan", language: "de" };
const welcome = (over = {}) => ({ type: "welcome", protocol: 1, client_id: "d1", room: "main", name: "Dan",
  language: "de", participants: [dan, ana], languages: [{ code: "de", name: "German" }],
  engine: { name: "test", reason: "asked for" }, ...over });
const types = (fx) => fx.map((e) => e.type);

function joined() {
  const conv = newConversation();
  applyMessage(conv, welcome());
  return conv;
}

test("welcome: who is here the first time, 'Reconnected.' after", () => {
  const conv = newConversation();
  let [e] = applyMessage(conv, welcome());
  assert.equal(e.type, "welcome");
  assert.equal(e.first, true);
  assert.equal(e.transcriptKey, null); // a server without transcripts: no download offered
  [e] = applyMessage(newConversation(), welcome({ transcript_key: "k1" }));
  assert.deepEqual([e.room, e.transcriptKey], ["main", "k1"]);
  assert.equal(e.text, "You joined room “main” as Dan. Here: Ana.");
  assert.deepEqual(e.engine, { name: "test", reason: "asked for" });
  assert.equal(conv.participants.length, 2);
  [e] = applyMessage(conv, welcome({ client_id: "d2", participants: [{ ...dan, id: "d2" }] }));
  assert.equal(e.first, false);
  assert.equal(e.text, "Reconnected.");
  assert.equal(conv.stats.reconnects, 1);
  assert.ok(conv.myIds.has("d1") && conv.myIds.has("d2")); // older utterances stay mine
});

test("welcome to an empty room invites others", () => {
  const [e] = applyMessage(newConversation(), welcome({ participants: [dan] }));
  assert.match(e.text, /Nobody else is here yet/);
});

test("participants: the roster follows join and leave events; my own old id is not announced", () => {
  const conv = joined();
  const marek = { id: "m1", name: "Marek", language: "pl" };
  let fx = applyMessage(conv, { type: "participants", room: "main", event: "join", who: marek, count: 3 },
    { joined: true, languageName: (c) => ({ pl: "Polish" })[c] });
  assert.deepEqual(fx, [{ type: "roster" }, { type: "sys", text: "Marek joined (Polish).", level: "" }]);
  assert.deepEqual(conv.participants.map((p) => p.id), ["d1", "a1", "m1"]);
  fx = applyMessage(conv, { type: "participants", room: "main", event: "leave", who: ana, count: 2 });
  assert.deepEqual(fx, [{ type: "roster" }, { type: "sys", text: "Ana left.", level: "" }]);
  fx = applyMessage(conv, { type: "participants", room: "main", event: "leave", who: dan, count: 1 });
  assert.deepEqual(fx, [{ type: "roster" }]); // my previous connection leaving after a reconnect: silent
  assert.deepEqual(conv.participants.map((p) => p.id), ["m1"]);
});

test("transcript then translation fill one utterance; mine when I spoke it", () => {
  const conv = joined();
  const base = { utterance_id: "u1-1", speaker: { id: "a1", name: "Ana" } };
  let [e] = applyMessage(conv, { type: "transcript", ...base, text: "Bom dia", language: "pt", latency_ms: 400 });
  assert.equal(e.type, "utterance");
  const u = e.utterance;
  assert.equal(u.mine, false);
  assert.deepEqual(u.transcript, { text: "Bom dia", language: "pt" });
  [e] = applyMessage(conv, { type: "translation", ...base, text: "Guten Morgen", language: "de", source_language: "pt", latency_ms: 650 });
  assert.equal(e.utterance, u);
  assert.deepEqual(u.translation, { text: "Guten Morgen", language: "de" });
  assert.deepEqual(u.latencyMs, { transcript: 400, translation: 650 });
  const [mine] = applyMessage(conv, { type: "transcript", utterance_id: "u1-2", speaker: { id: "d1", name: "Dan" }, text: "Hallo", language: "de" });
  assert.equal(mine.utterance.mine, true);
  assert.equal(conv.stats.transcripts, 2);
  assert.equal(conv.stats.translations, 1);
});

test("audio: the header's bytes are the next binary frame, once", () => {
  const conv = joined();
  applyMessage(conv, { type: "transcript", utterance_id: "u1", speaker: ana, text: "x", language: "pt" });
  const header = { type: "audio", utterance_id: "u1", speaker: ana, language: "de", sample_rate: 22050,
    encoding: "pcm_s16le", channels: 1, bytes: 4, latency_ms: 800 };
  assert.deepEqual(applyMessage(conv, header), []);
  assert.equal(conv.utterances.get("u1").latencyMs.audio, 800);
  const data = new ArrayBuffer(4);
  assert.deepEqual(applyBinary(conv, data), [{ type: "play", header, data }]);
  assert.deepEqual(applyBinary(conv, data), []); // a stray frame without a header plays nothing
  assert.equal(conv.stats.audioReceived, 1);
  assert.equal(conv.stats.audioBytes, 4);
  applyMessage(conv, header);
  socketEnded(conv); // the connection died between header and bytes
  assert.deepEqual(applyBinary(conv, data), []);
});

test("notices: under their utterance, or as a line of their own", () => {
  const conv = joined();
  const text = "No translation from Portuguese to German is installed on this server.";
  const [n] = applyMessage(conv, { type: "notice", code: "untranslatable", utterance_id: "u9", language: "de", message: text });
  assert.equal(n.type, "note");
  assert.equal(n.text, text);
  assert.deepEqual(conv.utterances.get("u9").notes, [text]); // it stands in for the translation
  const [d] = applyMessage(conv, { type: "notice", code: "dropped_utterance", message: "You spoke faster…" });
  assert.deepEqual(d, { type: "sys", text: "You spoke faster…", level: "warn" });
  assert.equal(conv.stats.notices, 2);
});

test("a loud room: the page is told to offer push-to-talk, not shown a card", () => {
  const conv = joined();
  const message = "It is loud around your phone. Push-to-talk gets your words out sooner and cleaner here.";
  assert.deepEqual(applyMessage(conv, { type: "notice", code: "loud_room", message }), [{ type: "loud", text: message }]);
  assert.equal(conv.stats.notices, 1);
  assert.equal(conv.utterances.size, 0);
});

test("join errors that retrying cannot fix are fatal before welcome, ordinary after", () => {
  for (const code of ["invalid_name", "unsupported_language", "unsupported_sample_rate", "invalid_message"]) {
    const [e] = applyMessage(newConversation(), { type: "error", code, message: `bad ${code}` }, { joined: false });
    assert.deepEqual(e, { type: "fatal", text: `bad ${code}` }, code);
  }
  // Server limits and restarts pass: keep retrying.
  for (const code of ["room_full", "too_many_rooms", "draining", "join_timeout"]) {
    const [e] = applyMessage(newConversation(), { type: "error", code, message: "later" }, { joined: false });
    assert.equal(e.type, "sys", code);
  }
  const conv = joined();
  assert.deepEqual(applyMessage(conv, { type: "error", code: "invalid_message", message: "m" }, { joined: true }),
    [{ type: "sys", text: "m", level: "bad" }]);
  assert.deepEqual(applyMessage(conv, { type: "error", code: "internal_error", message: "oops" }, { joined: true }),
    [{ type: "sys", text: "oops", level: "warn" }]);
});

test("draining says when to come back", () => {
  const [e] = applyMessage(joined(), { type: "draining", message: "The server is restarting.", reconnect_after_ms: 2500 });
  assert.deepEqual(e, { type: "draining", delayMs: 2500, text: "The server is restarting." });
});

test("pong and message types a newer server may add are ignored", () => {
  const conv = joined();
  assert.deepEqual(applyMessage(conv, { type: "pong", id: 3 }), []);
  assert.deepEqual(applyMessage(conv, { type: "speaker_renamed", who: ana }), []);
});

test("long conversations keep the newest utterances only", () => {
  const conv = joined();
  for (let i = 0; i < MAX_UTTERANCES + 5; i++) {
    applyMessage(conv, { type: "transcript", utterance_id: `u${i}`, speaker: ana, text: "x", language: "pt" });
  }
  assert.equal(conv.utterances.size, MAX_UTTERANCES);
  assert.ok(!conv.utterances.has("u0") && conv.utterances.has(`u${MAX_UTTERANCES + 4}`));
});

test("a voice's label: mine by the client id that sent it, renamed on every card of that voice", () => {
  const conv = joined();
  const voice = { id: "spk-1a2b3c4d", name: "Dan" };
  applyMessage(conv, { type: "transcript", utterance_id: "u1", speaker: voice, client_id: "d1", text: "a", language: "de" });
  applyMessage(conv, { type: "transcript", utterance_id: "u2", speaker: voice, client_id: "a1", text: "b", language: "de" });
  applyMessage(conv, { type: "transcript", utterance_id: "u3", speaker: { id: "spk-9", name: "Ana" }, client_id: "a1",
    text: "c", language: "pt" });
  assert.equal(conv.utterances.get("u1").mine, true); // through my phone
  assert.equal(conv.utterances.get("u2").mine, false); // the same voice through Ana's phone
  const [e] = applyMessage(conv, { type: "speaker_renamed", speaker: { id: "spk-1a2b3c4d", name: "Maria" } });
  assert.equal(e.type, "renamed");
  assert.deepEqual(e.utterances.map((u) => u.id), ["u1", "u2"]);
  assert.equal(conv.utterances.get("u2").speaker.name, "Maria");
  assert.equal(conv.utterances.get("u3").speaker.name, "Ana");
  assert.deepEqual(applyMessage(conv, { type: "speaker_renamed", speaker: { id: "spk-none", name: "X" } }), []);
});

test("a revision merges the turn's cards into its first, and stale results for them are ignored", () => {
  const conv = joined();
  const base = { speaker: { id: "spk-1", name: "Ana" }, client_id: "a1" };
  for (const [id, text, de] of [["u1", "bom dia como", "guten Tag wie"], ["u2", "vai você", "geht du"]]) {
    applyMessage(conv, { type: "transcript", utterance_id: id, ...base, text, language: "pt", audio_seconds: 1, latency_ms: 300 });
    applyMessage(conv, { type: "translation", utterance_id: id, ...base, text: de, language: "de", source_language: "pt", via: "t", latency_ms: 400 });
  }
  const rev = { type: "revision", of: "transcript", utterance_id: "u1", replaces: ["u1", "u2"], ...base,
    text: "Bom dia, como vai você?", language: "pt", latency_ms: 2100 };
  let fx = applyMessage(conv, rev);
  assert.deepEqual(types(fx), ["merged"]);
  assert.deepEqual(fx[0].removed, ["u2"]);
  const u = fx[0].utterance;
  assert.equal(u.id, "u1");
  assert.equal(u.revised, true);
  assert.deepEqual(u.transcript, { text: "Bom dia, como vai você?", language: "pt" });
  assert.deepEqual(u.translation, { text: "guten Tag wie geht du", language: "de" }); // joined until revised
  assert.deepEqual([...conv.utterances.keys()], ["u1"]);
  assert.equal(conv.stats.revisions, 1);
  fx = applyMessage(conv, { ...rev, of: "translation", text: "Guten Morgen, wie geht es dir?", language: "de",
    source_language: "pt", via: "t" });
  assert.deepEqual(types(fx), ["utterance"]);
  assert.deepEqual(u.translation, { text: "Guten Morgen, wie geht es dir?", language: "de" });
  // late results of the pieces change nothing
  assert.deepEqual(applyMessage(conv, { type: "translation", utterance_id: "u2", ...base, text: "x", language: "de" }), []);
  assert.deepEqual(applyMessage(conv, { type: "translation", utterance_id: "u1", ...base, text: "x", language: "de" }), []);
  assert.equal(u.translation.text, "Guten Morgen, wie geht es dir?");
  assert.equal(conv.utterances.has("u2"), false);
  // a translation revision for a card no longer kept is dropped quietly
  assert.deepEqual(applyMessage(conv, { ...rev, utterance_id: "u9", of: "translation" }), []);
  // a piece's speech skipped after the merge: a note on the merged card (once), not a bare line
  const skipped = { type: "notice", code: "speech_skipped", reason: "server_busy", ...base, language: "de",
    message: "Not read aloud: the server was too busy." };
  fx = applyMessage(conv, { ...skipped, utterance_id: "u2" });
  assert.deepEqual(types(fx), ["note"]);
  assert.equal(fx[0].utterance, u);
  assert.deepEqual(u.notes, ["Not read aloud: the server was too busy."]);
  assert.deepEqual(applyMessage(conv, { ...skipped, utterance_id: "u1" }), []); // the card says it already
});

test("heard_by: one phone per voice; the phone whose copy was not delivered sees its speech, not a loss", () => {
  const conv = joined(); // I am d1
  const base = { utterance_id: "u1-9", speaker: { id: "spk-1", name: "Ana" } };
  // Before the transcript: the card starts as mine, with the note.
  let fx = applyMessage(conv, { type: "heard_by", utterance_id: "u1-9", client_id: "d1", name: "Dan" });
  assert.deepEqual(types(fx), ["note"]);
  assert.match(fx[0].text, /Your phone heard this too/);
  const u = conv.utterances.get("u1-9");
  assert.equal(u.mine, true);
  fx = applyMessage(conv, { type: "transcript", ...base, client_id: "a1", text: "Bom dia", language: "pt" });
  assert.equal(fx[0].utterance, u);
  assert.deepEqual([u.transcript.text, u.mine, u.notes.length], ["Bom dia", true, 1]);
  // Someone else's phone heard another utterance too.
  applyMessage(conv, { type: "transcript", ...base, utterance_id: "u1-10", client_id: "a1", text: "Olá", language: "pt" });
  fx = applyMessage(conv, { type: "heard_by", utterance_id: "u1-10", client_id: "m1", name: "Marek" });
  assert.equal(fx[0].text, "Also heard by Marek’s phone.");
  assert.equal(conv.utterances.get("u1-10").mine, false);
  // The phone whose copy was delivered, with the heard_by first: still mine when its transcript comes.
  applyMessage(conv, { type: "heard_by", utterance_id: "u1-11", client_id: "m1", name: "Marek" });
  applyMessage(conv, { type: "transcript", ...base, utterance_id: "u1-11", client_id: "d1", text: "Oi", language: "pt" });
  assert.equal(conv.utterances.get("u1-11").mine, true);
  assert.deepEqual(applyMessage(conv, { type: "heard_by", utterance_id: "u1-12" }), []); // malformed: nothing
});
