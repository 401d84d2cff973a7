"""A revision decoded in the speaker's context (babelfish/engines/cascade/asr.py): WhisperAsr's own code around a
scripted CTranslate2 model and a word-per-token tokenizer, no weights. What the decoder is asked (prompt, length), what
is kept of its answer (the continuation only, scored on its own), and when the turn is decoded alone instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from babelfish.engines.base import Context
from babelfish.engines.cascade import asr as asr_module
from babelfish.engines.cascade.asr import WhisperAsr
from babelfish.engines.identity_cache import IdentityLRU

EOT = 1000  # ids from here on are special tokens; words get ids below


class WordTokenizer:
    """One token per word, each with its leading space (as Whisper's BPE gives a word); "." and "s" alone glue on."""

    def __init__(self) -> None:
        self.words: list[str] = []
        names = ["endoftext", "startoftranscript", "notimestamps", "transcribe", "translate", "en", "de", "ja"]
        self.special = {f"<|{name}|>": EOT + k for k, name in enumerate(names)}

    def token_to_id(self, token: str) -> int:
        return self.special[token]

    def _id(self, piece: str) -> int:
        if piece not in self.words:
            self.words.append(piece)
        return self.words.index(piece)

    def encode(self, text: str, add_special_tokens: bool = False) -> SimpleNamespace:
        pieces = [p if p in {".", "s"} else " " + p for p in text.replace(".", " .").split()]
        return SimpleNamespace(ids=[self._id(p) for p in pieces])

    def decode(self, ids: list[int]) -> str:
        return "".join(self.words[i] for i in ids)


@dataclass
class ScriptedModel:
    """CTranslate2's Whisper as measured: the prompt's text tokens (the prefix) come back at the head of the result,
    and the score is the mean over the whole result, the forced prefix scoring 0. `answers` maps an encoding (here:
    the window's length in samples) to the continuation's words and their summed log-probability."""

    tok: WordTokenizer
    answers: dict[int, tuple[str, float]]
    calls: list[dict[str, Any]] = field(default_factory=list)
    likely: dict[str, float] = field(default_factory=dict)  # a word's probability in the alignment pass, else 0.2
    aligned: list[tuple[int, list[int]]] = field(default_factory=list)  # (encoding, whole sequence read)

    def align(self, encoded: int, start: list[int], texts: list[list[int]], frames: int) -> list[SimpleNamespace]:
        """CTranslate2's contract: it reads start + <|notimestamps|> + the text, one probability per text token."""
        (ids,) = texts
        self.aligned.append((encoded, [*start, EOT + 2, *ids]))
        return [SimpleNamespace(text_token_probs=[self.likely.get(self.tok.words[i].strip(), 0.2) for i in ids])]

    def generate(self, encoded: int, prompts: list[list[int]], **options: Any) -> list[SimpleNamespace]:
        (prompt,) = prompts
        prefix = prompt[4:]  # after <|startoftranscript|>, the language, the task, <|notimestamps|>
        self.calls.append({"encoded": encoded, "prefix": prefix, "prompt": prompt, **options})
        text, total = self.answers[encoded]
        sequence = [*prefix, *self.tok.encode(text).ids, EOT]
        return [SimpleNamespace(sequences_ids=[sequence], scores=[total / len(sequence)], no_speech_prob=0.01)]


class ScriptedAsr(WhisperAsr):
    def __init__(self, answers: dict[int, tuple[str, float]]) -> None:  # no weights loaded
        self._tok = WordTokenizer()
        self._model = ScriptedModel(self._tok, answers)  # type: ignore[assignment]
        self._sot, self._no_ts, self._eot = EOT + 1, EOT + 2, EOT
        self._task = {"transcribe": EOT + 3, "translate": EOT + 4}
        self._from_canon = {"en": "en", "de": "de", "ja": "ja"}
        self._langs = ("en", "de", "ja")
        self._encodings = IdentityLRU(8)
        self.revision_beam, self.beam_size, self.revision_window = 5, 5, "short"

    def _encode(self, audio, full_window=False, before=None):  # type: ignore[no-untyped-def]
        return len(audio) + (0 if before is None else len(before))  # stands for the encoding: the window's length

    def _frames(self, encoded):  # type: ignore[no-untyped-def]
        return encoded // 160  # only crops the attention the alignment pass times words with


SECOND = 16_000
TURN = np.full(SECOND, 0.1, np.float32)  # a one-second turn: decoded at three leads
CONTEXT = Context((np.full(2 * SECOND, 0.1, np.float32),), "We met at the station.", "en", ("u1",), 0.3)
AFTER = len(TURN) + 2 * SECOND + round(0.3 * SECOND)  # the window's length: the context, its pause, the turn


def lead(seconds: float) -> int:
    return round(seconds * SECOND)


def test_the_decoder_continues_the_context_and_only_the_continuation_comes_back():
    asr = ScriptedAsr({AFTER + lead(x): ("Where shall we meet?", -2.0) for x in (0, 0.1, 0.25)})
    got = asr.recognize(TURN, "en", revision=True, context=CONTEXT)
    assert got is not None and got.text == "Where shall we meet?"
    prefix = asr._tok.encode(" " + CONTEXT.text).ids
    first = asr._model.calls[0]  # type: ignore[attr-defined]
    assert first["prefix"] == prefix and first["encoded"] == AFTER
    assert first["max_length"] == int(20 + 12 * 1.0) + 2 * len(prefix)  # the prefix counts twice (measured)
    assert got.avg_logprob == pytest.approx(-2.0 / 5)  # the continuation's mean: 4 words and the end
    assert asr._encodings.get(TURN) is None  # no encoding with the context in it for Whisper's translate task


@pytest.mark.parametrize(
    ("continuation", "kept"),
    [
        (". Where shall we meet?", "Where shall we meet?"),  # closes the context's sentence first
        ("s are closed.", None),  # glued to the context's last word: not where the turn starts
        ("at the station. Where?", None),  # says the context's last words again
        ("We met at the station. Where?", None),  # or all of them
        ("Where did we meet?", "Where did we meet?"),  # words of the context, not in a row: not an echo
        ("", None),  # nothing: Whisper took the turn for the context's end ("Ja." → "")
    ],
)
def test_a_continuation_that_is_not_the_turns_own_start_is_not_taken(continuation: str, kept: str | None):
    asr = ScriptedAsr({AFTER + lead(x): (continuation, -1.0) for x in (0, 0.1, 0.25)})
    asr._model.answers.update({len(TURN) + lead(x): ("Alone.", -1.0) for x in (0, 0.1, 0.25)})  # type: ignore[attr-defined]
    got = asr.recognize(TURN, "en", revision=True, context=CONTEXT)
    assert got is not None and got.text == (kept or "Alone.")
    alone = [c for c in asr._model.calls if not c["prefix"]]  # type: ignore[attr-defined]
    assert bool(alone) == (kept is None)  # decoded alone only when the continuation was not taken
    if kept is None:
        assert asr._encodings.get(TURN) is not None  # the plain decode's encoding serves the translate task


def test_a_halted_revision_whose_context_found_nothing_is_not_decoded_again():
    asr = ScriptedAsr({AFTER + lead(x): ("", -1.0) for x in (0, 0.1, 0.25)})
    halted = [False]

    def halt() -> bool:
        halted[0] = True  # someone spoke during the first try
        return True

    assert asr.recognize(TURN, "en", revision=True, context=CONTEXT, halt=halt) is None  # the first pass stands
    assert [c["prefix"] != [] for c in asr._model.calls] == [True]  # type: ignore[attr-defined]
    assert halted[0]


@pytest.mark.parametrize(
    "context",
    [
        Context(CONTEXT.segments, CONTEXT.text, "de"),  # another language
        Context((np.zeros(27 * SECOND, np.float32),), "A long speech.", "en"),  # no room in the window
        Context(CONTEXT.segments, " ".join(["word"] * (asr_module.CONTEXT_MAX_TOKENS + 1)), "en"),  # too long a prefix
        Context(CONTEXT.segments, "  ", "en"),  # no text
        Context(CONTEXT.segments, "駅で会った。", "ja"),  # a script without spaces: a glued first token says nothing
    ],
)
def test_a_context_that_cannot_be_continued_is_not_used(context: Context):
    asr = ScriptedAsr({len(TURN) + lead(x): ("Alone.", -1.0) for x in (0, 0.1, 0.25)})
    got = asr.recognize(TURN, "ja" if context.language == "ja" else "en", revision=True, context=context)
    assert got is not None and got.text == "Alone."
    assert all(c["prefix"] == [] for c in asr._model.calls)  # type: ignore[attr-defined]


def test_a_first_pass_never_uses_the_context():
    asr = ScriptedAsr({len(TURN): ("Alone.", -1.0)})
    got = asr.recognize(TURN, "en", careful=True, context=CONTEXT)
    assert got is not None and got.text == "Alone."
    assert [c["prefix"] for c in asr._model.calls] == [[]]  # type: ignore[attr-defined]


HELD = "Where is the nation?"  # what listeners read: one word off the revision's "Where is the station?"


def likelier(margin: float) -> float:
    """The probability "station?" needs (against "nation?" at 0.2, the rest equal) for the revision's mean
    log-probability over its 4 tokens to beat the held words' by `margin`."""
    return 0.2 * float(np.exp(4 * margin))


@pytest.mark.parametrize(
    ("by", "kept"),
    [(asr_module.HELD_MARGIN + 0.05, "Where is the station?"), (asr_module.HELD_MARGIN - 0.05, HELD)],
    ids=["clearly-likelier", "coin-toss"],
)
def test_a_revision_keeps_the_held_words_unless_its_own_are_clearly_likelier(by: float, kept: str):
    answers = {AFTER + lead(0): ("Where is the station?", -3.0), AFTER + lead(0.1): ("Where is the station?", -3.0),
               AFTER + lead(0.25): ("Where is the station?", -1.0)}  # fmt: skip
    asr = ScriptedAsr(answers)
    model = asr._model
    model.likely["station?"] = likelier(by)  # type: ignore[attr-defined]
    got = asr.recognize(TURN, "en", revision=True, context=CONTEXT, held=HELD)
    assert got is not None and got.text == kept and got.held == (kept == HELD) and got.outweighed == (kept != HELD)
    # Both read in the chosen try's window (the best-scored lead), after the prompt it was decoded with.
    (window, read), (window_held, read_held) = model.aligned  # type: ignore[attr-defined]
    assert window == window_held == AFTER + lead(0.25)
    decoded = next(c for c in model.calls if c["encoded"] == window)  # type: ignore[attr-defined]
    assert read == [*decoded["prompt"], *asr._tok.encode("Where is the station?").ids]
    assert read_held == [*decoded["prompt"], *asr._tok.encode(HELD).ids]


def test_held_words_after_a_context_miss_are_read_in_the_turns_own_window():
    asr = ScriptedAsr({AFTER + lead(x): ("", -1.0) for x in (0, 0.1, 0.25)})  # the continuation found nothing
    scores = ((0, -3.0), (0.1, -3.0), (0.25, -1.0))
    alone = {len(TURN) + lead(x): ("Where is the station?", score) for x, score in scores}
    asr._model.answers.update(alone)  # type: ignore[attr-defined]
    asr._model.likely["nation?"] = 0.9  # type: ignore[attr-defined]  # the held words are likelier: they stay
    got = asr.recognize(TURN, "en", revision=True, context=CONTEXT, held=HELD)
    assert got is not None and got.text == HELD and got.held
    assert len(asr._model.aligned) == 2  # type: ignore[attr-defined]
    for window, read in asr._model.aligned:  # type: ignore[attr-defined]
        assert window == len(TURN) + lead(0.25)  # the chosen try's own window
        assert read[4] == asr._tok.encode("Where").ids[0]  # no prefix before the turn


@pytest.mark.parametrize(
    ("held", "answer", "compared"),
    [
        ("where is the station", "Where is the station?", False),  # the same words
        ("Where is the", "Where is the station?", False),  # reads on where the held words stop: the pass scores no end
        ("Where is the station? Yes", "Where is the station?", False),  # ... or stops where they read on
        ("Where is the stat", "Where is the station?", False),  # ... within a word (a script without spaces)
        ("Where is the sta tion", "Where is the station?", True),  # the same letters spelt apart: compared
        ("Willaga?", "", False),  # no words in the revision
        ("Where is the nation today?", "Where is the station?", True),  # a word apart in length
        ("Where is the nation today, then?", "Where is the station?", False),  # two apart: left to the reviser
        ("Willaga?", "Where is the station?", True),  # a short turn misheard: compared whatever the lengths
        ("Will aga?", "Where is the station?", True),
    ],
)
def test_held_words_are_compared_only_with_a_reading_the_pass_can_judge(held: str, answer: str, compared: bool):
    asr = ScriptedAsr({len(TURN) + lead(x): (answer, -1.0) for x in (0, 0.1, 0.25)})
    asr._model.likely["station?"] = 0.9  # type: ignore[attr-defined]
    got = asr.recognize(TURN, "en", revision=True, held=held)
    assert (got.text if got else "") == answer.strip()  # the revision's words: likelier, or not judged
    assert bool(asr._model.aligned) == compared  # type: ignore[attr-defined]
    assert (got.outweighed if got else False) == compared  # only a weighed revision says it outweighed the held words


def test_a_model_without_alignment_heads_sends_its_revisions_uncompared(tmp_path):  # type: ignore[no-untyped-def]
    (tmp_path / "config.json").write_text('{"alignment_heads": [[3, 1]], "lang_ids": []}')
    assert asr_module.has_alignment_heads(tmp_path)
    (tmp_path / "config.json").write_text('{"lang_ids": []}')
    assert not asr_module.has_alignment_heads(tmp_path)
    assert not asr_module.has_alignment_heads(tmp_path / "missing")
    asr = ScriptedAsr({len(TURN) + lead(x): ("Where is the station?", -1.0) for x in (0, 0.1, 0.25)})
    asr._aligns = False
    got = asr.recognize(TURN, "en", revision=True, held=HELD)
    assert got is not None and got.text == "Where is the station?" and asr._model.aligned == []  # type: ignore[attr-defined]


def test_a_revision_whose_scoring_fails_is_sent_as_before():
    asr = ScriptedAsr({len(TURN) + lead(x): ("Where is the station?", -1.0) for x in (0, 0.1, 0.25)})

    def failing(*args: Any) -> None:
        raise RuntimeError("out of memory")

    asr._model.align = failing  # type: ignore[attr-defined]
    got = asr.recognize(TURN, "en", revision=True, held=HELD)
    assert got is not None and got.text == "Where is the station?" and not got.held
