"""The `seamless` engine: SeamlessM4T (v2: facebook/seamless-m4t-v2-large; v1: facebook/hf-seamless-m4t-medium or
-large) speech → text → speech, on CPU or CUDA.

transformers' own speech-to-speech `generate` runs the speech encoder twice and handles one target language per call.
Here the speech encoder runs once per utterance (its output is cached on the utterance object, so `transcribe` and
`render` share it), and all target languages decode in one batched `generate` of the text decoder; the text-to-unit
model and the vocoder then run once for all targets with speech output. The weights are CC-BY-NC-4.0.

v1 and v2 share the speech encoder and text decoder, so v1 takes the same encoder-once, batched-decode path. They
differ in speech: v2's text-to-unit model is non-autoregressive (one pass over character-level inputs), v1's is an
autoregressive decoder (one step per unit, batched here over the targets) followed by a vocoder with its own duration
predictor.

Importing this module is cheap (torch and transformers load in `SeamlessEngine.load`): the factory imports it to find
local weights and check torch and transformers are installed before it chooses an engine.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from babelfish.config import Settings
from babelfish.engines.base import (
    SAMPLE_RATE,
    EngineInfo,
    LanguageSupport,
    RenderResult,
    SpeechResult,
    TextResult,
    Transcript,
    Utterance,
)
from babelfish.engines.identity_cache import IdentityLRU
from babelfish.languages import try_canonical, untranslatable

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

VIA = "seamless"
MIN_SECONDS = 0.1  # shorter than a few encoder frames: nothing to transcribe
ENCODER_CACHE = 8  # utterances whose encoder output is kept (≥ inference workers, so render finds transcribe's)
TOKENS_PER_SECOND = 10  # speech is ~3 words/s, ~5 tokens/s: twice that bounds a runaway decode on long audio
# v1's unit decoder writes deduplicated speech units, roughly 25 a second of speech, and a text token is ~0.2 s of
# speech: 20 units per token leaves room for slow speech and bounds a runaway unit decode.
UNITS_PER_TOKEN = 20
MODEL_TYPES = {"seamless_m4t": 1, "seamless_m4t_v2": 2}


class LanguageMap:
    """Seamless's ISO 639-3 codes (`deu`, `cmn`, `arb`) ↔ the project's canonical codes (`de`, `zh`, `ar`).

    Seamless names individual languages where clients say the macrolanguage (`cmn` is what people call `zh`), so each
    code maps to its macrolanguage when it is that macrolanguage's principal member (langcodes decides). Several codes
    meeting on one canonical code (`cmn`, `cmn_Hant` → `zh`) keep the plainest: no script suffix, then alphabetical.
    """

    def __init__(self, seamless_codes: Iterable[str]) -> None:
        self.to_canonical: dict[str, str] = {}
        self.to_seamless: dict[str, str] = {}
        for code in sorted(set(seamless_codes), key=lambda c: ("_" in c, c)):
            canon = try_canonical(code)
            if canon is None:
                log.debug("seamless: language code %r has no canonical form; skipped", code)
                continue
            self.to_canonical[code] = canon
            self.to_seamless.setdefault(canon, code)

    def seamless(self, tag: str) -> str | None:
        """The Seamless code for a tag clients or the pipeline use (`pt`, `pt-BR`, `por`, `cmn`); None if unknown."""
        canon = try_canonical(tag)
        return None if canon is None else self.to_seamless.get(canon)


def seamless_weights(settings: Settings) -> Path | None:
    """The local folder holding SeamlessM4T weights, if any: a path, a snapshot in the HF cache, or a model fetched
    into the data dir (by name; with the default name, the best one fetched)."""
    candidate = Path(settings.seamless_model).expanduser()
    if (candidate / "config.json").is_file():
        return candidate
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return _fetched_seamless(settings)
    try:
        found = try_to_load_from_cache(settings.seamless_model, "config.json")
    except ValueError:  # not a repo id (e.g. a folder path that does not exist)
        found = None
    return Path(found).parent if isinstance(found, str) else _fetched_seamless(settings)


def _fetched_seamless(settings: Settings) -> Path | None:
    from babelfish.model_store import find, stored

    named = find(settings.data_dir, "seamless", settings.seamless_model)
    if named is None and settings.seamless_model == Settings.model_fields["seamless_model"].default:
        named = next(iter(stored(settings.data_dir, "seamless")), None)  # fetched, no flag given: use it
    return named.folder if named is not None else None


def seamless_available() -> bool:
    """Whether the seamless engine can run here (it needs torch and transformers)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers"))


def pick_dtype(device: str) -> torch.dtype:
    """fp16 on CUDA; bf16 on CPUs with native bf16 (AVX512-BF16 or AMX), where it is about twice fp32; else fp32."""
    import torch

    if device.startswith("cuda"):
        return torch.float16
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def cpu_has_bf16() -> bool:
    import torch

    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):  # private, but present since torch 2.1
        check = getattr(torch.cpu, probe, None)
        if check is not None:
            try:
                if check():
                    return True
            except Exception:  # a probe that cannot answer is a no
                continue
    try:  # older torch, Linux: the kernel's own list
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass
class _Encoded:
    """One utterance's speech-encoder output and the decodes made from it so far (by Seamless code)."""

    hidden: torch.Tensor  # (1, frames, hidden)
    seconds: float  # of the utterance's audio
    tokens: dict[str, torch.Tensor] = field(default_factory=dict)  # [start, lang, text...] without eos / padding
    texts: dict[str, str] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)  # mean token log-probability, for language choice


class SeamlessEngine:
    def __init__(
        self,
        model: Any,
        processor: Any,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        info: EngineInfo | None = None,
    ) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.feature_extractor = processor.feature_extractor
        self.device = device
        self.dtype = dtype if dtype is not None else next(model.parameters()).dtype
        self.info = info or EngineInfo(name="seamless", reason="constructed directly")
        gen = model.generation_config
        self.text_ids: dict[str, int] = dict(getattr(gen, "text_decoder_lang_to_code_id", None) or {})
        if not self.text_ids:
            raise ValueError("this SeamlessM4T generation config has no text_decoder_lang_to_code_id table")
        self.version = MODEL_TYPES.get(str(getattr(model.config, "model_type", "")), 2)
        self.t2u_ids: dict[str, int] = dict(getattr(gen, "t2u_lang_code_to_id", None) or {})
        self.vocoder_ids: dict[str, int] = {
            code: i for code, i in (getattr(gen, "vocoder_lang_code_to_id", None) or {}).items() if code in self.t2u_ids
        }  # speech out needs both tables (the unit model uses one, the vocoder the other)
        # v2's unit model reads characters, through two more tables; v1's needs only the language tables above
        self.can_speak = self.version == 1 or (hasattr(gen, "id_to_text") and hasattr(gen, "char_to_id"))
        self.map = LanguageMap([*self.text_ids, *self.vocoder_ids])
        self.sample_rate = int(getattr(model.config, "sampling_rate", SAMPLE_RATE))
        self._languages = self._support_table()
        self._encoded: IdentityLRU[Utterance, _Encoded] = IdentityLRU(ENCODER_CACHE)

    @classmethod
    def load(cls, settings: Settings, reason: str = "", dtype: torch.dtype | None = None) -> SeamlessEngine:
        """Load SeamlessM4T v2 or v1 from local weights only (a folder or the HF cache); `dtype` overrides the dtype."""
        import torch
        from transformers import AutoConfig, AutoProcessor, SeamlessM4TModel, SeamlessM4Tv2Model

        started = time.perf_counter()
        folder = seamless_weights(settings)
        if folder is None:
            raise FileNotFoundError(f"no local SeamlessM4T weights for {settings.seamless_model!r}")
        kind = AutoConfig.from_pretrained(str(folder), local_files_only=True).model_type
        if kind not in MODEL_TYPES:
            raise ValueError(f"{folder} holds a {kind!r} model; the seamless engine runs SeamlessM4T (v1 or v2) only")
        model_class = SeamlessM4Tv2Model if kind == "seamless_m4t_v2" else SeamlessM4TModel
        device = settings.device
        if device == "cuda" and not torch.cuda.is_available():
            log.warning("seamless: device cuda asked for but CUDA is not available; running on cpu")
            device = "cpu"
        torch.set_num_threads(settings.threads)
        if device == "cpu" and settings.inference_workers > 1:
            # The defaults suit the cascade engine (2 workers x 1 thread); a model this size wants every core per call.
            log.warning(
                "seamless on cpu with %d inference workers of %d thread(s): --inference-workers 1 --threads %d is "
                "likely faster",
                settings.inference_workers,
                settings.threads,
                settings.inference_workers * settings.threads,
            )
        dtype = dtype or pick_dtype(device)
        processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
        model = model_class.from_pretrained(str(folder), dtype=dtype, local_files_only=True)
        model = model.to(device).eval()
        model.set_modality("text")  # the decoder is fed encoder outputs we computed: no re-encoding in forward()
        dtype_name = str(dtype).removeprefix("torch.")
        engine = cls(model, processor, device, dtype)
        params = sum(p.numel() for p in model.parameters())
        engine.info = EngineInfo(
            name="seamless",
            reason=reason or f"seamless engine selected, weights at {folder}",
            details={
                "model": settings.seamless_model,
                "weights": str(folder),
                "version": f"SeamlessM4T v{engine.version}",
                "device": device,
                "dtype": dtype_name,
                "parameters": f"{params / 1e6:.0f}M",
                "languages": f"{len(engine.text_ids)} text out, {len(engine.vocoder_ids)} speech out",
                "license": "CC-BY-NC-4.0 (SeamlessM4T weights)",
            },
        )
        log.info("seamless: %s from %s, %.0fM parameters, %s on %s, %d threads, %s, in %.1f s",
                 type(model).__name__, folder, params / 1e6, dtype_name, device, settings.threads,
                 engine.info.details["languages"], time.perf_counter() - started)  # fmt: skip
        return engine

    # --- Engine protocol ---
    def languages(self) -> Sequence[LanguageSupport]:
        return self._languages

    def transcribe(self, utterance: Utterance) -> Transcript | None:
        if utterance.seconds < MIN_SECONDS:
            return None
        enc = self._encode(utterance)
        declared = self.map.seamless(utterance.language) if utterance.language else None
        # The room's languages (`candidates`) are what render will ask for: decoding them in the same batch as the
        # transcript costs little more than the transcript alone (one decoder pass, more rows), and render then only
        # has speech left to make, so translations reach listeners with the transcript.
        options = list(dict.fromkeys(c for tag in utterance.candidates if (c := self.map.seamless(tag))))
        options = [c for c in options if c in self.text_ids]
        if declared is not None and declared in self.text_ids:
            code = declared
            self._decode(enc, [code, *options])
        else:
            # Seamless has no language id: of the speaker's likely languages, keep the one the decoder is surest of
            # (transcribing speech usually scores higher than translating it). No supported candidate: assume
            # English. A declared language the model cannot write lands here too, rather than dropping the speech.
            options = options or [self._fallback()]
            self._decode(enc, options, score=len(options) > 1)
            code = max(options, key=lambda c: enc.scores.get(c, 0.0)) if len(options) > 1 else options[0]
        text = enc.texts[code].strip()
        return Transcript(text, self.map.to_canonical[code]) if text else None

    def render(
        self, utterance: Utterance, transcript: Transcript, targets: Sequence[str], speech: bool = True
    ) -> Iterator[RenderResult]:
        # The translation comes from the speech itself (S2TT), as Seamless is trained to; the transcript text is
        # only what the speaker's listeners read.
        plan: list[tuple[str, str | None]] = [(t, self.map.seamless(t)) for t in dict.fromkeys(targets)]
        wanted = [code for _, code in plan if code is not None and code in self.text_ids]
        failure: str | None = None
        enc: _Encoded | None = None
        if wanted:
            try:
                enc = self._encode(utterance)
                self._decode(enc, wanted)
            except Exception as exc:  # the listeners get a notice, the server carries on
                log.exception("seamless: decoding %s failed", ",".join(wanted))
                failure = f"translation failed: {exc}"
        texts: list[TextResult] = []
        for tgt, code in plan:
            if code is None or code not in self.text_ids:
                result = TextResult(tgt, None, notice=untranslatable(transcript.language, tgt))
            elif enc is None or failure is not None:
                result = TextResult(tgt, None, notice=failure)
            else:
                result = TextResult(tgt, enc.texts[code].strip(), via=VIA)
            texts.append(result)
            yield result
        if speech and enc is not None:
            yield from self.speak(utterance, texts)

    def speak(self, utterance: Utterance, texts: Sequence[TextResult]) -> Iterator[SpeechResult]:
        """All the targets' speech in one unit-model and vocoder batch, from the decodes `render` made (the encoder
        output is cached per utterance; evicted meanwhile, it is computed again)."""
        spoken = [(t.language, code) for t in texts if t.text and (code := self.map.seamless(t.language))]
        spoken = [(tgt, code) for tgt, code in spoken if code in self.vocoder_ids and code in self.text_ids]
        if not spoken or not self.can_speak:
            return
        codes = [code for _, code in spoken]
        try:
            enc = self._encode(utterance)
            self._decode(enc, codes)  # a no-op for what render decoded
            waves = self._speak(enc, codes)
        except Exception:  # texts are out already; speech is best effort
            log.exception("seamless: speech for %s failed", ",".join(codes))
            return
        for tgt, code in spoken:
            pcm = waves.get(code)
            if pcm is not None and len(pcm):
                yield SpeechResult(tgt, pcm.astype("<i2").tobytes(), self.sample_rate, via=VIA)

    def close(self) -> None:
        self._encoded.clear()
        on_cuda = self.device.startswith("cuda")
        self.model = None
        gc.collect()
        if on_cuda:
            import torch

            torch.cuda.empty_cache()

    # --- the three stages ---
    def _encode(self, utterance: Utterance) -> _Encoded:
        """The speech encoder's output for `utterance`, computed once per utterance object."""
        import torch

        hit = self._encoded.get(utterance)
        if hit is not None:
            return hit
        features = self.feature_extractor(
            np.asarray(utterance.audio, dtype=np.float32), sampling_rate=SAMPLE_RATE, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self.model.speech_encoder(
                input_features=features["input_features"].to(self.device, self.dtype),
                attention_mask=features["attention_mask"].to(self.device),
            ).last_hidden_state
        enc = _Encoded(hidden, utterance.seconds)
        self._encoded.put(utterance, enc)
        return enc

    def _decode(self, enc: _Encoded, codes: Sequence[str], score: bool = False) -> None:
        """Greedy-decode every language in `codes` not decoded yet, as one batch over the shared encoder output."""
        import torch
        from transformers import GenerationMixin
        from transformers.modeling_outputs import BaseModelOutput

        todo = [c for c in dict.fromkeys(codes) if c not in enc.tokens or (score and c not in enc.scores)]
        if not todo:
            return
        gen = self.model.generation_config
        start, eos, pad = gen.decoder_start_token_id, gen.eos_token_id, gen.pad_token_id
        batch = len(todo)
        hidden = enc.hidden.expand(batch, -1, -1)  # a view: the encoder output is shared, not copied
        prompt = torch.tensor([[start, self.text_ids[c]] for c in todo], device=self.device)
        seconds = enc.seconds
        cap = int(getattr(gen, "max_new_tokens", None) or 256)
        with torch.inference_mode():
            # GenerationMixin.generate, not SeamlessM4Tv2Model.generate: the latter would run the speech encoder again
            out = GenerationMixin.generate(
                self.model,
                encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                attention_mask=torch.ones(hidden.shape[:2], dtype=torch.long, device=self.device),
                decoder_input_ids=prompt,
                max_new_tokens=min(cap, 8 + int(TOKENS_PER_SECOND * seconds)),
                num_beams=1,
                do_sample=False,
                return_dict_in_generate=True,
                output_scores=score,
            )
        sequences = out.sequences
        logprobs = (
            self.model.compute_transition_scores(sequences, out.scores, normalize_logits=True).float().cpu()
            if score
            else None
        )
        for row, code in enumerate(todo):
            generated = sequences[row, prompt.shape[1] :]
            stop = ((generated == eos) | (generated == pad)).nonzero()
            n = int(stop[0, 0]) if len(stop) else len(generated)
            enc.tokens[code] = sequences[row, : prompt.shape[1] + n]
            enc.texts[code] = self.tokenizer.decode(generated[:n].tolist(), skip_special_tokens=True)
            if logprobs is not None:
                steps = logprobs[row, : n + 1]  # the text and its end of sentence
                enc.scores[code] = float(steps[torch.isfinite(steps)].mean()) if len(steps) else float("-inf")

    def _speak(self, enc: _Encoded, codes: Sequence[str]) -> dict[str, np.ndarray]:
        """Text-to-unit + vocoder for the decoded texts of `codes`, one batch; int16 PCM at `sample_rate` per code."""
        return self._speak_v1(enc, codes) if self.version == 1 else self._speak_v2(enc, codes)

    def _speak_v2(self, enc: _Encoded, codes: Sequence[str]) -> dict[str, np.ndarray]:
        import torch

        model, config = self.model, self.model.config
        pad = model.generation_config.pad_token_id
        with torch.inference_mode():
            # The unit model reads the text decoder's states for [start, lang, text...] (as transformers' own S2ST
            # does, minus the end of sentence); right padding is harmless under the causal mask.
            ids, lengths, states = self._text_states(enc, [enc.tokens[c] for c in codes])
            batch = len(codes)
            text_ids = ids[:, 2:]
            subwords = model._indices_to_subwords(text_ids)
            char_counts = model._count_character_length_in_subword(text_ids, subwords, pad_token_id=pad)
            zero = char_counts.new_zeros((batch, 1))
            char_counts = torch.cat([zero, char_counts, zero], dim=1)  # no characters for [start, lang] and the end
            char_ids = model._get_char_input_ids(text_ids, subwords, char_counts, pad_token_id=pad)
            mask = (torch.arange(ids.shape[1], device=self.device)[None, :] < lengths[:, None]).to(states.dtype)
            t2u = model.t2u_model(
                inputs_embeds=states, char_input_ids=char_ids, char_count_per_id=char_counts, attention_mask=mask
            )
            units = t2u[0].argmax(dim=-1)
            valid = t2u[1].bool()
            offset, vocab = config.vocoder_offset, config.unit_hifi_gan_vocab_size
            kept = [u[m & (u >= offset) & (u < offset + vocab)] - offset for u, m in zip(units, valid, strict=True)]
            return self._vocode(kept, codes, speaker_arg="speaker_id")

    def _speak_v1(self, enc: _Encoded, codes: Sequence[str]) -> dict[str, np.ndarray]:
        """v1: the autoregressive unit decoder, batched over the targets, then the vocoder (as transformers' own
        SeamlessM4TModel.generate does for one target, minus its second speech-encoder pass)."""
        import torch

        model, config = self.model, self.model.config
        eos = model.generation_config.eos_token_id
        with torch.inference_mode():
            # The unit model reads the text decoder's states for [start, lang, text..., eos], as transformers' v1 does.
            rows = [torch.cat([enc.tokens[c], enc.tokens[c].new_tensor([eos])]) for c in codes]
            ids, lengths, states = self._text_states(enc, rows)
            mask = (torch.arange(ids.shape[1], device=self.device)[None, :] < lengths[:, None]).long()
            # Each row starts the unit decoder with its own language: one batch serves every target language.
            prefix = torch.tensor([[config.t2u_eos_token_id, self.t2u_ids[c]] for c in codes], device=self.device)
            cap = min(int(config.t2u_max_new_tokens), 16 + UNITS_PER_TOKEN * int(lengths.max()))
            units = model.t2u_model.generate(
                inputs_embeds=states, attention_mask=mask, decoder_input_ids=prefix, max_new_tokens=cap,
                num_beams=1, do_sample=False,
            )[:, prefix.shape[1] :]  # fmt: skip
            offset, unit_pad, vocab = config.vocoder_offset, config.t2u_pad_token_id, config.unit_hifi_gan_vocab_size
            kept = []
            for row in units:
                stop = ((row == config.t2u_eos_token_id) | (row == unit_pad)).nonzero()
                row = row[: int(stop[0, 0])] if len(stop) else row
                kept.append(row[(row >= offset) & (row < offset + vocab)] - offset)
            return self._vocode(kept, codes, speaker_arg="spkr_id")

    def _text_states(self, enc: _Encoded, rows: list[Any]) -> tuple[Any, Any, Any]:
        """(ids, lengths, states): `rows` right-padded, and the text decoder's states for them, which the unit model
        reads. Under the caller's inference_mode."""
        import torch

        lengths = torch.tensor([len(r) for r in rows], device=self.device)
        pad = self.model.generation_config.pad_token_id
        ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=pad)
        hidden = enc.hidden.expand(len(rows), -1, -1)
        states = self.model.text_decoder(
            input_ids=ids,
            encoder_hidden_states=hidden,
            encoder_attention_mask=torch.ones(hidden.shape[:2], dtype=torch.long, device=self.device),
        ).last_hidden_state
        return ids, lengths, states

    def _vocode(self, kept: list[Any], codes: Sequence[str], speaker_arg: str) -> dict[str, np.ndarray]:
        """The vocoder over each target's units (vocoder ids, control symbols already dropped: they would crash its
        embedding); targets left with no unit get no speech. v1 and v2 name the speaker argument differently."""
        import torch

        voiced = [i for i, u in enumerate(kept) if len(u)]
        if not voiced:
            return {}
        unit_ids = torch.nn.utils.rnn.pad_sequence([kept[i] for i in voiced], batch_first=True,
                                                   padding_value=self.model.config.t2u_pad_token_id)  # fmt: skip
        lang = torch.tensor([[self.vocoder_ids[codes[i]]] for i in voiced], device=self.device)
        speaker = {speaker_arg: torch.zeros_like(lang)}
        wave, wave_lengths = self.model.vocoder(input_ids=unit_ids, lang_id=lang, **speaker)
        return _pcm(wave, wave_lengths, [codes[i] for i in voiced])

    # --- helpers ---
    def _fallback(self) -> str:
        return "eng" if "eng" in self.text_ids else next(iter(self.text_ids))

    def _support_table(self) -> list[LanguageSupport]:
        # Speech in: the speech encoder has no language table of its own, and a transcript needs the text decoder to
        # write the speaker's language, so speech in = text out (Seamless v2 hears ~101 languages, writes 96 of them).
        text = {self.map.to_canonical[c] for c in self.text_ids if c in self.map.to_canonical}
        voice = {self.map.to_canonical[c] for c in self.vocoder_ids if c in self.map.to_canonical}
        if not self.can_speak:
            voice = set()
        rows = []
        for code in sorted(text | voice):
            via: dict[str, str] = {}
            if code in text:
                via.update(asr=VIA, mt=VIA)
            if code in voice:
                via["tts"] = VIA
            rows.append(LanguageSupport(code, code in text, code in text, code in voice, via=via))
        return rows


def _pcm(wave: torch.Tensor, wave_lengths: torch.Tensor, codes: Sequence[str]) -> dict[str, np.ndarray]:
    """The vocoder's batch (rows in `codes` order) as int16 PCM per code, each cut to its own length."""
    samples = wave.float().clamp(-1.0, 1.0).cpu().numpy()
    lengths = wave_lengths.reshape(-1).cpu().tolist()
    out: dict[str, np.ndarray] = {}
    for row, code in enumerate(codes):
        n = min(int(lengths[row]), samples.shape[-1])
        out[code] = np.round(samples[row, :n] * 32767).astype(np.int16)
    return out
