// AudioWorklet: microphone → 16-bit PCM frames at the target rate (20 ms each), with the frame's RMS for the meter.
// It resamples itself (two biquad low-passes, then linear interpolation): the server gets a fixed, small stream
// whatever the phone's hardware rate is, and a third of 48 kHz's bandwidth on weak Wi-Fi.
class BFCapture extends AudioWorkletProcessor {
  constructor(o) {
    super();
    const p = o.processorOptions;
    this.ratio = sampleRate / p.targetRate;
    this.frame = new Int16Array(Math.round(p.targetRate * p.frameMs / 1000));
    this.n = 0; this.t = 1; this.prev = 0; this.sq = 0;
    this.f = [];
    if (this.ratio > 1) {
      const w = 2 * Math.PI * Math.min(0.45 * p.targetRate, 0.49 * sampleRate) / sampleRate, c = Math.cos(w),
        a = Math.sin(w) / (2 * Math.SQRT1_2), a0 = 1 + a;
      for (let i = 0; i < 2; i++) this.f.push({ b0: (1 - c) / 2 / a0, b1: (1 - c) / a0, b2: (1 - c) / 2 / a0,
        a1: -2 * c / a0, a2: (1 - a) / a0, x1: 0, x2: 0, y1: 0, y2: 0 });
    }
  }
  emit(v) {
    v = v > 1 ? 1 : v < -1 ? -1 : v;
    this.frame[this.n++] = v < 0 ? v * 32768 : v * 32767;
    this.sq += v * v;
    if (this.n === this.frame.length) {
      const rms = Math.sqrt(this.sq / this.n);
      this.port.postMessage({ pcm: this.frame.buffer, rms }, [this.frame.buffer]);
      this.frame = new Int16Array(this.n); this.n = 0; this.sq = 0;
    }
  }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    for (let i = 0; i < ch.length; i++) {
      let y = ch[i];
      for (const f of this.f) {
        const out = f.b0 * y + f.b1 * f.x1 + f.b2 * f.x2 - f.a1 * f.y1 - f.a2 * f.y2;
        f.x2 = f.x1; f.x1 = y; f.y2 = f.y1; f.y1 = out; y = out;
      }
      while (this.t <= 1) { this.emit(this.prev + (y - this.prev) * this.t); this.t += this.ratio; }
      this.t -= 1; this.prev = y;
    }
    return true;
  }
}
registerProcessor("bf-capture", BFCapture);
