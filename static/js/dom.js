// Small DOM helpers shared by the page's modules: element lookup, the banner, the status pill.
export const $ = (id) => document.getElementById(id);

export function banner(text, btnText, onClick) {
  $("banner").classList.toggle("hidden", !text);
  $("banner-text").textContent = text || "";
  $("banner-btn").classList.toggle("hidden", !btnText);
  $("banner-btn").textContent = btnText || "";
  $("banner-btn").onclick = onClick || null;
}

// The status pill shows the connection state (its dot's colour comes from data-s) and a short text.
export function showStatus(state, text) {
  $("status").dataset.s = state;
  $("status-text").textContent = text;
  document.body.dataset.state = state;
  $("mic").disabled = state !== "joined";
}

export const fmtMs = (ms) => (ms >= 1000 ? (ms / 1000).toFixed(1) + " s" : Math.round(ms) + " ms");
