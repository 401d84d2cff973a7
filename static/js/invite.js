// The invite sheet: a join link for this room (the page's own address plus ?room=, and #passcode= when the room has
// one: after "#", so it never reaches a server log), its QR code, copy and share. Never the access token: it is personal.
import { $ } from "./dom.js";
import { S } from "./settings.js";

export function inviteLink() {
  const u = new URL(location.origin + location.pathname);
  u.searchParams.set("room", S.room);
  if (S.passcode) u.hash = new URLSearchParams({ passcode: S.passcode }).toString();
  return u.toString();
}

export function initInvite() {
  $("invite-btn").onclick = () => {
    const link = inviteLink();
    $("invite-room").textContent = `“${S.room}”`;
    $("invite-link").value = link;
    $("qr").src = new URL("qr.svg?data=" + encodeURIComponent(link), S.server).toString();
    const u = new URL(link);
    const local = ["localhost", "127.0.0.1", "[::1]"].includes(u.hostname);
    $("invite-warn").textContent = u.protocol === "http:" && !local
      ? "This link is plain http://, so phones will not allow the microphone. Start the server with --https (README: Phones and HTTPS)."
      : local ? "This link points to this computer only (localhost); open the page via the computer's network address to invite phones." : "";
    $("share-btn").classList.toggle("hidden", !navigator.share);
    $("invite").classList.remove("hidden");
  };
  $("close-invite").onclick = () => $("invite").classList.add("hidden");
  $("copy-btn").onclick = async () => {
    const link = $("invite-link").value;
    try { await navigator.clipboard.writeText(link); } catch { $("invite-link").select(); document.execCommand?.("copy"); }
    $("copy-btn").textContent = "Copied ✓";
    setTimeout(() => { $("copy-btn").textContent = "Copy link"; }, 1500);
  };
  $("share-btn").onclick = () => navigator.share({ title: "BabbleFish", text: `Join room ${S.room}`, url: $("invite-link").value }).catch(() => {});
}
