// Sound: microphone capture (AudioWorklet, capture-worklet.js), the level meter, push-to-talk, echo gating, and
// playback of received speech through one queue. The socket is reached only through the callbacks given to it.
import { $, banner } from "./dom.js";

export const TARGET_RATE = 16000; // what we send; declared in join
const FRAME_MS = 20;
const MAX_BUFFERED = 256 * 1024; // drop mic frames rather than let latency pile up on a slow link
const WORKLET_URL = new URL("./capture-worklet.js", import.meta.url);

const SPK = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3 9h4l5-4v14l-5-4H3z" fill="currentColor"/>';
const ICON_SOUND = SPK + '<path d="M15.5 8.5a5 5 0 0 1 0 7M18 6a8.5 8.5 0 0 1 0 12" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>';
const ICON_MUTED = SPK + '<path d="M16 9l6 6M22 9l-6 6" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>';

// S: the settings (mode, gate, muted); stats: counters shown to tests; link: {joined(), bufferedAmount(),
// sendAudio(buf), endUtterance()}; wantsSound(): whether the user is in a room; onMicLost(): the device went away.
export function createAudio({ S, stats, link, wantsSound, onMicLost }) {
  let ctx = null, out = null, workletReady = null, stream = null, src = null, node = null, sink = null;
  let micOn = false; // hands-free: the user wants the mic live
  let pttDown = false, pttSent = false;
  let playEnd = 0; const playing = new Set();
  let level = 0, wakeLock = null;

  function ensureCtx() {
    if (!ctx) {
      const AC = window.AudioContext || window.webkitAudioContext;
      ctx = new AC({ latencyHint: "interactive" });
      out = ctx.createGain(); out.connect(ctx.destination);
      ctx.onstatechange = soundBanner;
    }
    if (ctx.state !== "running") ctx.resume().catch(() => {});
    return ctx;
  }
  function unlock() {
    // iOS: audio only starts inside a user gesture; play one silent sample to unlock the output.
    const c = ensureCtx();
    try { const b = c.createBuffer(1, 1, c.sampleRate); const s = c.createBufferSource(); s.buffer = b; s.connect(out); s.start(); } catch { /* ignore */ }
    soundBanner();
  }
  function soundBanner() {
    if (wantsSound() && ctx && ctx.state !== "running" && !S.muted) banner("Sound is off until you tap the page.", "Turn sound on", unlock);
    else if ($("banner-btn").textContent === "Turn sound on") banner("");
  }
  const gated = () => S.gate && ctx && ctx.currentTime < playEnd + 0.3; // + a short tail for room echo

  async function startMicStream() {
    if (stream) return;
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new Error(window.isSecureContext ? "This browser cannot record audio."
        : "The browser blocks the microphone on plain http:// pages. Open this page over https:// (see the README: Phones and HTTPS).");
    }
    const c = ensureCtx();
    workletReady ??= c.audioWorklet.addModule(WORKLET_URL);
    // No noise suppression: it turns a café's babble into bursts, which hide the crowd from the server's voice
    // detector (turns then run on, the crowd's words in them: 76% against 22% of words wrong at six voices). In a
    // quiet room Whisper does a little better without it, in steady noise about the same (docs/benchmarks.md, "The
    // browser's noise suppression"). Echo cancellation and gain stay.
    const s = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: false,
      autoGainControl: true, channelCount: 1 } });
    await workletReady;
    if (stream) { s.getTracks().forEach((t) => t.stop()); return; } // a parallel call won
    stream = s;
    src = c.createMediaStreamSource(stream);
    node = new AudioWorkletNode(c, "bf-capture", { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1,
      channelCountMode: "explicit", processorOptions: { targetRate: TARGET_RATE, frameMs: FRAME_MS } });
    node.port.onmessage = (e) => onFrame(e.data);
    sink = c.createGain(); sink.gain.value = 0; // keeps the node pulled by the graph without being heard
    src.connect(node); node.connect(sink); sink.connect(c.destination);
    stream.getAudioTracks()[0].onended = () => { stopMicStream(); micOn = false; ui(); onMicLost(); };
    try { wakeLock = await navigator.wakeLock?.request("screen"); } catch { /* optional */ }
  }
  function stopMicStream() {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    try { src?.disconnect(); node?.disconnect(); sink?.disconnect(); } catch { /* ignore */ }
    if (node) node.port.onmessage = null;
    stream = src = node = sink = null;
    wakeLock?.release?.().catch(() => {}); wakeLock = null;
    level = 0; meter(0, "mic off");
  }
  function onFrame({ pcm, rms }) {
    level = Math.max(rms, level * 0.85);
    const g = gated();
    const talking = S.mode === "ptt" ? pttDown : micOn;
    meter(level, !talking ? "idle" : g ? "muted" : "live");
    if (!talking || !link.joined()) return;
    if (link.bufferedAmount() > MAX_BUFFERED) { stats.framesDropped++; return; }
    // While our speaker plays a translation, send silence: the server must never translate its own output, and
    // silence (rather than nothing) lets its VAD close an utterance that was in progress.
    if (!link.sendAudio(g ? new ArrayBuffer(pcm.byteLength) : pcm)) return;
    if (g) stats.framesGated++;
    stats.framesSent++; stats.bytesSent += pcm.byteLength;
    if (S.mode === "ptt") pttSent = true;
    $("mic").classList.toggle("gated", g);
  }
  function meter(v, label) {
    const db = 20 * Math.log10(Math.max(v, 1e-5));
    $("meter-fill").style.width = Math.max(0, Math.min(100, (db + 60) * 100 / 60)) + "%";
    $("meter-label").textContent = label;
    $("meter-fill").dataset.s = label;
  }
  function play(h, buf) {
    if (S.muted || h.encoding !== "pcm_s16le") return;
    const c = ensureCtx();
    if (c.state !== "running") { soundBanner(); return; } // stale speech is worse than none
    const ch = Math.max(1, h.channels || 1), n = Math.floor(buf.byteLength / 2 / ch);
    if (!n) return;
    const pcm = new Int16Array(buf, 0, n * ch);
    const ab = c.createBuffer(ch, n, h.sample_rate);
    for (let k = 0; k < ch; k++) { const d = ab.getChannelData(k); for (let i = 0; i < n; i++) d[i] = pcm[i * ch + k] / 32768; }
    const s = c.createBufferSource(); s.buffer = ab; s.connect(out);
    const at = Math.max(c.currentTime + 0.03, playEnd); // one queue: utterances play in arrival order
    s.start(at); playEnd = at + ab.duration;
    playing.add(s); s.onended = () => playing.delete(s);
    stats.audioPlayed++;
  }
  function stopPlayback() { for (const s of playing) { try { s.stop(); } catch { /* ended */ } } playing.clear(); playEnd = 0; }
  async function pttStart() {
    if (!link.joined() || pttDown) return;
    pttDown = true; pttSent = false;
    stopPlayback(); // the user wants to talk now
    ui();
    try { await startMicStream(); } catch (e) { pttDown = false; ui(); throw e; }
  }
  function pttEnd() {
    if (!pttDown) return;
    pttDown = false;
    if (pttSent && link.endUtterance()) stats.endUtterances++;
    pttSent = false; ui();
  }
  function pttAbort() { pttDown = false; pttSent = false; ui(); }
  function ui() {
    const b = $("mic");
    const live = S.mode === "ptt" ? pttDown : micOn;
    b.classList.toggle("live", live);
    if (!live) b.classList.remove("gated");
    b.textContent = S.mode === "ptt" ? (pttDown ? "Talking… release to send" : "Hold to talk") : (micOn ? "Stop mic" : "Start talking");
    b.setAttribute("aria-pressed", String(live));
    $("mode-hf").setAttribute("aria-pressed", String(S.mode === "handsfree"));
    $("mode-ptt").setAttribute("aria-pressed", String(S.mode === "ptt"));
    $("sound").setAttribute("aria-pressed", String(S.muted));
    $("sound").innerHTML = S.muted ? ICON_MUTED : ICON_SOUND;
    if (!stream) meter(0, "mic off");
  }
  // Hands-free mic on (the stream starts now) / off (an utterance in progress is ended at once).
  async function startMic() { micOn = true; ui(); await startMicStream(); }
  function stopMic() {
    if (micOn && link.endUtterance()) stats.endUtterances++;
    micOn = false; ui(); pttAbort(); stopMicStream();
  }
  return {
    ensureCtx, unlock, soundBanner, play, stopPlayback, pttStart, pttEnd, pttAbort, ui, startMic, stopMic,
    micWanted: () => micOn && S.mode === "handsfree",
    micOff() { micOn = false; ui(); },
    get micOn() { return micOn; },
  };
}
