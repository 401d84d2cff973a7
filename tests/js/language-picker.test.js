// node --test: what the language picker says about a language the engine only partly supports.
import assert from "node:assert/strict";
import { test } from "node:test";
import { languageLabel } from "../../static/js/language-picker.js";

test("a language only the phrasebook reaches says so; one nothing reaches says that", () => {
  const de = { code: "de", name: "German", native_name: "Deutsch", text_out: false, via: { mt: "phrasebook" } };
  assert.equal(languageLabel(de), "German (Deutsch) — set phrases only");
  assert.equal(languageLabel({ code: "la", name: "Latin", text_out: false, via: {} }), "Latin — no translation into it");
  assert.equal(languageLabel({ code: "la", name: "Latin", text_out: false }), "Latin — no translation into it");
  assert.equal(languageLabel({ code: "es", name: "Spanish", text_out: true, via: { mt: "apertium" } }), "Spanish");
});
