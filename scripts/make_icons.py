"""Draw the PWA icons (static/icons/icon-192.png, icon-512.png) without any imaging library.

Run once: `python scripts/make_icons.py`; the PNGs are committed. A fish in a speech bubble on a full-bleed
teal square; everything important stays inside the central 80 % so the icon also works as "maskable".
Plain zlib PNG writing keeps the script dependency-free; shapes are signed-distance tests, 3×3 supersampled.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "static" / "icons"

TOP = (20, 140, 130)  # gradient top (teal)
BOTTOM = (11, 83, 96)  # gradient bottom
WHITE = (255, 255, 255)
FISH = (15, 118, 110)
EYE = (255, 255, 255)


def _rounded_rect(x: float, y: float, cx: float, cy: float, hw: float, hh: float, r: float) -> bool:
    dx, dy = max(abs(x - cx) - (hw - r), 0.0), max(abs(y - cy) - (hh - r), 0.0)
    return dx * dx + dy * dy <= r * r


def _triangle(x: float, y: float, a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> bool:
    def side(p: tuple[float, float], q: tuple[float, float]) -> float:
        return (q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0])

    s1, s2, s3 = side(a, b), side(b, c), side(c, a)
    return (s1 >= 0 and s2 >= 0 and s3 >= 0) or (s1 <= 0 and s2 <= 0 and s3 <= 0)


def shade(u: float, v: float) -> tuple[int, int, int]:
    """Colour at unit coordinates (u, v) in [0, 1]²."""
    # Fish: ellipse body, triangular tail, an eye; drawn inside the bubble.
    if (u - 0.30) ** 2 + (v - 0.445) ** 2 <= 0.021**2:
        return EYE
    if ((u - 0.43) / 0.19) ** 2 + ((v - 0.45) / 0.11) ** 2 <= 1.0:
        return FISH
    if _triangle(u, v, (0.58, 0.45), (0.72, 0.35), (0.72, 0.55)):
        return FISH
    # Bubble: rounded rectangle with a tail at the bottom left.
    if _rounded_rect(u, v, 0.5, 0.45, 0.33, 0.24, 0.12) or _triangle(u, v, (0.27, 0.62), (0.43, 0.62), (0.24, 0.80)):
        return WHITE
    t = v
    return tuple(round(TOP[i] + (BOTTOM[i] - TOP[i]) * t) for i in range(3))  # type: ignore[return-value]


def render(size: int, ss: int = 3) -> bytes:
    rows = bytearray()
    n = ss * ss
    for y in range(size):
        rows.append(0)  # PNG filter type 0 (none) for this row
        for x in range(size):
            acc = [0, 0, 0]
            for sy in range(ss):
                for sx in range(ss):
                    c = shade((x + (sx + 0.5) / ss) / size, (y + (sy + 0.5) / ss) / size)
                    acc[0] += c[0]
                    acc[1] += c[1]
                    acc[2] += c[2]
            rows.extend((acc[0] // n, acc[1] // n, acc[2] // n))
    return bytes(rows)


def png(size: int, raw: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB, opaque: fine for maskable icons
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        path = OUT / f"icon-{size}.png"
        path.write_bytes(png(size, render(size, 3 if size <= 192 else 2)))
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
