"""Microphone tracks as the page sends them: each WAV played into headless Chromium's fake capture device and
recorded after the browser's own audio processing (getUserMedia's echo cancellation, noise suppression, automatic gain),
so a bench can feed the server what a phone's browser would.

    process({"A": Path("a.wav")}, {"noiseSuppression": True}, out_dir, server_url) -> {"A": Path(".../a-….wav")}

Every track runs at once in its own browser (the fake device's file is a browser-wide flag), in real time. The
recording is aligned to the original by the lag of best correlation of their envelopes, and cut to its length.
Needs Debian's chromium and Playwright (scripts/setup.sh --test).
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from tests.audio import read_wav, write_wav
from tests.browser.chromium import CHROMIUM, chromium_args

SR = 16_000
# Records the default microphone with `constraints` for `seconds` at 16 kHz; returns PCM16 as base64.
RECORD = """async ([constraints, seconds]) => {
  const hung = new Promise((_, no) => setTimeout(() => no(new Error("getUserMedia did not answer in 30 s")), 30000));
  const stream = await Promise.race([
    navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, ...constraints } }), hung]);
  const ctx = new AudioContext({ sampleRate: 16000 });
  const src = ctx.createMediaStreamSource(stream);
  const node = ctx.createScriptProcessor(4096, 1, 1);
  const parts = [];
  node.onaudioprocess = (e) => parts.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  src.connect(node); node.connect(ctx.destination);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  node.disconnect(); stream.getTracks().forEach((t) => t.stop()); await ctx.close();
  const n = parts.reduce((a, p) => a + p.length, 0), pcm = new Int16Array(n);
  let i = 0;
  for (const p of parts) for (const v of p) pcm[i++] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
  let s = ""; const bytes = new Uint8Array(pcm.buffer);
  for (let k = 0; k < bytes.length; k += 0x8000) s += String.fromCharCode(...bytes.subarray(k, k + 0x8000));
  return btoa(s);
}"""


def align(recorded: np.ndarray, original: np.ndarray, max_lag_s: float = 1.0) -> tuple[np.ndarray, float]:
    """`recorded` shifted to line up with `original` (10 ms envelopes, best correlation within ±`max_lag_s`) and cut
    or padded to its length; and the lag (s; negative: the recording began after the file did)."""
    hop, most = SR // 100, int(max_lag_s * 100)
    if len(recorded) < len(original) // 2 or np.sqrt(np.mean(recorded**2)) < 1e-4:
        raise RuntimeError(f"the browser recorded {len(recorded) / SR:.1f} s, nearly silent: no microphone?")

    def env(x: np.ndarray) -> np.ndarray:
        n = len(x) // hop
        e = np.log10(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-8)
        return e - e.mean()

    a, b = env(original), env(recorded)

    def fit(k: int) -> float:  # recorded[t + k] against original[t]
        lo, hi = max(0, -k), min(len(a), len(b) - k)
        return float(np.dot(a[lo:hi], b[lo + k : hi + k]) / max(1, hi - lo))

    best = max(range(-most, most + 1), key=fit)
    if abs(best) == most:
        raise RuntimeError(f"the browser's recording lines up at the edge of ±{max_lag_s} s: not found")
    shifted = recorded[best * hop :] if best >= 0 else np.concatenate([np.zeros(-best * hop, np.float32), recorded])
    out = shifted[: len(original)]
    return np.pad(out, (0, len(original) - len(out))), best / 100


def _one(pw_sync: Any, wav: Path, constraints: dict[str, bool], url: str, out: Path) -> None:
    original = read_wav(wav)
    browser = pw_sync.chromium.launch(executable_path=CHROMIUM, args=chromium_args(wav))
    try:
        page = browser.new_context(permissions=["microphone"]).new_page()
        page.goto(url)
        data = page.evaluate(RECORD, [constraints, len(original) / SR + 1.5])
    finally:
        browser.close()
    recorded = np.frombuffer(base64.b64decode(data), "<i2").astype(np.float32) / 32768
    aligned, lag = align(recorded, original)
    print(f"  {wav.name}: through the browser, recording lag {lag * 1000:+.0f} ms", flush=True)
    write_wav(out, aligned, SR)


def process(wavs: dict[str, Path], constraints: dict[str, bool], out_dir: Path, url: str) -> dict[str, Path]:
    """Each track through its own Chromium at once; `url`: any page of a secure origin (the server's)."""
    from playwright import sync_api as playwright_sync

    tag = "-".join(f"{k}{int(v)}" for k, v in sorted(constraints.items())) or "default"
    outs = {name: out_dir / f"{wav.stem}-{tag}.wav" for name, wav in wavs.items()}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            with playwright_sync.sync_playwright() as p:
                _one(p, wavs[name], constraints, url, outs[name])
        except BaseException as exc:  # reported below, after every thread ends
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in wavs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:  # each thread records its whole track first, even when another one failed
        for exc in errors[1:]:
            print(f"  also failed: {exc!r}", flush=True)
        raise errors[0]
    return outs


if __name__ == "__main__":  # one file through the browser, for a listen: python -m bench.browser_mic IN OUT '{...}'
    import sys

    from tests.serverproc import ServerProcess

    srv = ServerProcess(Path(sys.argv[2]).parent / "browser-mic-data").start()
    try:
        done = process({"x": Path(sys.argv[1])}, json.loads(sys.argv[3]) if len(sys.argv) > 3 else {},
                       Path(sys.argv[2]).parent, srv.url)  # fmt: skip
        Path(sys.argv[2]).write_bytes(done["x"].read_bytes())
    finally:
        srv.kill()
