// What the server's messages mean for the conversation: a reducer from (model, message) to effects for the page.
//
// `applyMessage` updates the model in place (who I am, the roster, the utterances, the audio header waiting for its
// bytes) and returns a list of effects; the page (main.js) turns effects into DOM, sound and connection changes.
// No DOM, no sockets, no timers: node --test covers it (tests/js/conversation.test.js). Message shapes: docs/protocol.md.

export const MAX_UTTERANCES = 400; // long conversations stay fast; the oldest cards go

export function newConversation() {
  return {
    clientId: null,
    myIds: new Set(), // every id this page has had: a reconnect gets a new one, old utterances stay "mine"
    room: "",
    participants: [],
    utterances: new Map(), // utterance_id → utterance (insertion order = arrival order)
    replaced: new Map(), // id merged into a revised card -> that card's id: results still arriving for it are stale
    pendingAudio: null, // an audio header; the next binary frame carries its bytes
    everJoined: false,
    stats: newStats(),
  };
}

export function newStats() {
  return { framesSent: 0, bytesSent: 0, framesDropped: 0, framesGated: 0, audioReceived: 0, audioBytes: 0,
    audioPlayed: 0, transcripts: 0, translations: 0, notices: 0, reconnects: 0, endUtterances: 0, revisions: 0 };
}

// The socket ended: an audio header without its bytes must not claim the next connection's first frame.
export function socketEnded(conv) {
  conv.pendingAudio = null;
}

// Join errors that retrying cannot fix: the user has to change something in the form.
export const FATAL_JOIN_ERRORS = new Set(["invalid_name", "unsupported_language", "unsupported_sample_rate",
  "bad_json", "bad_message", "invalid_message", "unknown_type", "not_joined", "message_too_large",
  "passcode_required", "bad_passcode"]);

function utterance(conv, m) {
  let u = conv.utterances.get(m.utterance_id);
  if (u) return u;
  // `speaker` is the voice; `client_id` (on transcripts) the device it came through: mine means sent from this page.
  const from = m.client_id ?? m.speaker?.id;
  u = { id: m.utterance_id, speaker: m.speaker || null, mine: !!(from && conv.myIds.has(from)),
    transcript: null, translation: null, partial: {}, latencyMs: {}, notes: [], revised: false };
  conv.utterances.set(u.id, u);
  if (conv.utterances.size > MAX_UTTERANCES) conv.utterances.delete(conv.utterances.keys().next().value);
  return u;
}

const others = (conv) => conv.participants.filter((p) => !conv.myIds.has(p.id));

// Returns effects, each {type, ...}:
//   welcome {first, text, languages, engine, room, transcriptKey}   joined (first time: "You joined…", later: "Reconnected.")
//   roster {}                                  the participant list changed
//   utterance {utterance}                      a card to draw or redraw
//   remove {utterance}                         a card that only ever had partial text: take it away
//   renamed {utterances}                       a voice got a name: these cards show it
//   merged {utterance, removed}                a revision: these ids' cards go, the utterance's card shows the turn
//   note {utterance, text}                     a plain-words note under a card (also: heard by another phone)
//   sys {text, level}                          a line in the conversation ("" | "warn" | "bad")
//   play {header, data}                        synthesized speech to play
//   draining {delayMs, text}                   the server restarts: come back after delayMs
//   fatal {text}                               the join was refused for good: show the form with the reason
//
// `joined`: whether the connection is past its welcome (join errors are fatal only before it);
// `languageName(code)`: how a language is named in plain words.
export function applyMessage(conv, m, { joined = false, languageName = (code) => code } = {}) {
  const s = conv.stats;
  switch (m.type) {
    case "welcome": {
      conv.clientId = m.client_id;
      conv.myIds.add(m.client_id);
      conv.room = m.room;
      conv.participants = m.participants || [];
      const first = !conv.everJoined;
      conv.everJoined = true;
      let text;
      if (first) {
        const here = others(conv);
        text = `You joined room “${m.room}” as ${m.name}.` +
          (here.length ? ` Here: ${here.map((p) => p.name).join(", ")}.` : " Nobody else is here yet — invite someone.");
      } else {
        s.reconnects++;
        text = "Reconnected.";
      }
      return [{ type: "welcome", first, text, languages: m.languages || null, engine: m.engine || null,
        room: m.room, transcriptKey: m.transcript_key || null }];
    }
    case "participants": {
      // Events carry only who changed (a full roster per event would be quadratic in big rooms); keep the list here.
      const who = m.who;
      if (!who) return [];
      conv.participants = conv.participants.filter((p) => p.id !== who.id);
      if (m.event === "join") conv.participants.push(who);
      const fx = [{ type: "roster" }];
      if (!conv.myIds.has(who.id)) {
        if (m.event === "join") {
          const lang = who.language ? ` (${languageName(who.language)})` : "";
          fx.push({ type: "sys", text: `${who.name} joined${lang}.`, level: "" });
        } else if (m.event === "leave") fx.push({ type: "sys", text: `${who.name} left.`, level: "" });
      }
      return fx;
    }
    case "transcript":
    case "translation": {
      if (m.type === "transcript") s.transcripts++; else s.translations++;
      if (conv.replaced.has(m.utterance_id) || conv.utterances.get(m.utterance_id)?.revised) return []; // stale
      const u = utterance(conv, m);
      if (m.client_id && conv.myIds.has(m.client_id)) u.mine = true; // a heard_by may have made the card first
      u[m.type] = { text: m.text, language: m.language };
      if (m.type === "transcript" && m.speaker) u.speaker = m.speaker; // the voice, where partials named the client
      delete u.partial[m.type]; // the final replaces the streaming text of its kind
      if (m.latency_ms !== undefined) u.latencyMs[m.type] = m.latency_ms;
      return [{ type: "utterance", utterance: u }];
    }
    case "revision": return revise(conv, m);
    case "heard_by": {
      // One phone per voice: another phone's copy of this speech was delivered; `client_id`'s phone heard it too.
      // It may come before the transcript: the card starts here (mine when it is this phone's speech).
      if (!m.utterance_id || !m.client_id) return [];
      const u = utterance(conv, m);
      const text = conv.myIds.has(m.client_id)
        ? "Your phone heard this too; it was delivered once, from another phone nearer the speaker."
        : (m.name ? `Also heard by ${m.name}’s phone.` : "Also heard by another phone.");
      if (!u.notes.includes(text)) u.notes.push(text);
      return [{ type: "note", utterance: u, text }];
    }
    case "partial": {
      // Words while someone speaks: `stable` stays, `tail` is a guess (drawn greyed). A final of the same kind has
      // replaced it already, or a newer partial is shown: ignore it.
      if (m.kind !== "transcript" && m.kind !== "translation") return [];
      if (conv.replaced.has(m.utterance_id)) return []; // merged into a revised turn
      const known = conv.utterances.get(m.utterance_id);
      if (known && (known[m.kind] || known.ended)) return [];
      const u = utterance(conv, m);
      const shown = u.partial[m.kind];
      if (shown && shown.seq >= m.seq) return [];
      u.partial[m.kind] = { stable: m.stable || "", tail: m.tail || "", language: m.language, seq: m.seq };
      return [{ type: "utterance", utterance: u }];
    }
    case "partial_end": {
      const u = conv.utterances.get(m.utterance_id);
      if (!u) return [];
      u.ended = true;
      u.partial = {};
      if (!u.transcript && !u.translation && !u.notes.length) {
        conv.utterances.delete(u.id);
        return [{ type: "remove", utterance: u }];
      }
      return [{ type: "utterance", utterance: u }];
    }
    case "speaker_renamed": {
      const sp = m.speaker;
      if (!sp || !sp.id) return [];
      const changed = [...conv.utterances.values()].filter((u) => u.speaker?.id === sp.id);
      for (const u of changed) u.speaker = { ...u.speaker, name: sp.name };
      return changed.length ? [{ type: "renamed", utterances: changed }] : [];
    }
    case "audio": {
      conv.pendingAudio = m;
      const u = conv.utterances.get(m.utterance_id);
      if (u && m.latency_ms !== undefined) u.latencyMs.audio = m.latency_ms;
      return [];
    }
    case "notice": {
      s.notices++;
      const text = m.message || m.code;
      if (m.code === "loud_room") return [{ type: "loud", text }];
      // A notice about a piece merged into a revised card (its speech skipped, say) belongs on that card.
      const into = conv.replaced.get(m.utterance_id);
      let u = into !== undefined ? conv.utterances.get(into) : undefined;
      // An untranslatable notice stands in for a translation, so like one it can start the card.
      if (!u && m.utterance_id && (conv.utterances.has(m.utterance_id) || m.code === "untranslatable")) {
        u = utterance(conv, m);
      }
      if (u) {
        if (u.notes.includes(text)) return []; // said once on the card, for all its pieces
        u.notes.push(text);
        return [{ type: "note", utterance: u, text }];
      }
      return [{ type: "sys", text, level: "warn" }];
    }
    case "draining": {
      const delayMs = Number.isFinite(m.reconnect_after_ms) ? m.reconnect_after_ms : 2000;
      return [{ type: "draining", delayMs, text: m.message || "The server is restarting; reconnecting…" }];
    }
    case "error": {
      const text = m.message || m.code;
      if (!joined && FATAL_JOIN_ERRORS.has(m.code)) return [{ type: "fatal", text }];
      return [{ type: "sys", text, level: m.code === "internal_error" ? "warn" : "bad" }];
    }
    default:
      return []; // pong, and types a newer server may add (the protocol says: ignore them)
  }
}

// A speaker's turn was re-decoded whole (docs/protocol.md §3.2): its first utterance's card takes the revised text;
// the other utterances' cards merge into it (their translations joined, until the revised translation comes).
function revise(conv, m) {
  const ids = Array.isArray(m.replaces) && m.replaces.length ? m.replaces : [m.utterance_id];
  if (m.of === "translation") {
    const u = conv.utterances.get(m.utterance_id);
    if (!u) return []; // its card is gone (the cap): nothing to correct
    u.translation = { text: m.text, language: m.language };
    u.revised = true;
    return [{ type: "utterance", utterance: u }];
  }
  if (m.of !== "transcript") return [];
  conv.stats.revisions++;
  const pieces = ids.map((id) => conv.utterances.get(id)).filter(Boolean);
  const u = utterance(conv, m);
  const joined = pieces.map((p) => p.translation?.text).filter(Boolean).join(" ");
  if (joined) u.translation = { text: joined, language: pieces.find((p) => p.translation).translation.language };
  u.transcript = { text: m.text, language: m.language };
  u.notes = [...new Set(pieces.flatMap((p) => p.notes))];
  u.revised = true;
  if (m.latency_ms !== undefined) u.latencyMs.revision = m.latency_ms;
  const removed = ids.slice(1);
  for (const id of removed) {
    conv.utterances.delete(id);
    conv.replaced.set(id, u.id);
  }
  while (conv.replaced.size > MAX_UTTERANCES) conv.replaced.delete(conv.replaced.keys().next().value);
  return [{ type: "merged", utterance: u, removed }];
}

// A binary frame: the bytes of the audio header that came just before it.
export function applyBinary(conv, data) {
  const header = conv.pendingAudio;
  conv.pendingAudio = null;
  if (!header) return [];
  conv.stats.audioReceived++;
  conv.stats.audioBytes += data.byteLength;
  return [{ type: "play", header, data }];
}
