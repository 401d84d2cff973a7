// The room's transcript as a file: GET rooms/{room}/transcript?format=… on the server we joined, proved with the
// transcript_key our welcome carried (docs/protocol.md §6). The key is ours only while we are in the room.
import { $ } from "./dom.js";

let access = null; // { server, room, key } while joined

export function transcriptUrl(server, room, format) {
  const u = new URL(`rooms/${encodeURIComponent(room)}/transcript`, server);
  u.searchParams.set("format", format);
  return u.toString();
}

// Joined (with what the welcome gave) or not (null): the download buttons show only while they can work.
export function setTranscriptAccess(a) {
  access = a && a.key ? a : null;
  $("transcript").classList.toggle("hidden", !access);
}

export async function downloadTranscript(format) {
  if (!access) throw new Error("join a room first");
  const r = await fetch(transcriptUrl(access.server, access.room, format), {
    headers: { Authorization: `Bearer ${access.key}` }, cache: "no-store",
  });
  if (!r.ok) throw new Error(r.status === 403 ? "only people in the room may download it" : `HTTP ${r.status}`);
  const name = /filename="([^"]+)"/.exec(r.headers.get("content-disposition") || "")?.[1] || `transcript.${format}`;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await r.blob());
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

export function initTranscript(onError) {
  for (const b of document.querySelectorAll("#transcript [data-format]")) {
    b.onclick = () => downloadTranscript(b.dataset.format).catch((e) => onError(`Could not download the transcript: ${e.message}`));
  }
}
