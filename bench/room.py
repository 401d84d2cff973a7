"""A table in a room: what each phone on it hears of everyone talking (bench_fidelity's `--room`).

The speakers sit around a round table in a furnished meeting room, each with a phone on the table in front of them.
Every phone hears every speaker through the room (pyroomacoustics' image-source model, reverberation time 0.4 s): its
own speaker from about 0.6 m away, each other speaker from 1-1.4 m, later, quieter (4-7 dB down by the direct path,
about 3 dB with the room's echo) and with more of the room in it. That is the open microphone people really use: a
phone never hears only its owner. Every phone also hears the room's own quiet noise (ventilation, its microphone's
hiss), its own draw of it: a real phone's pauses are never digital silence.
"""

from __future__ import annotations

import zlib

import numpy as np

ROOM = (5.0, 4.0, 2.7)  # metres
RT60 = 0.4  # seconds: a furnished room
TABLE = (2.5, 2.0)  # the table's centre
SEAT, PHONE = 0.9, 0.45  # each speaker's mouth, and their phone, from the table's centre (m)
MOUTH, TABLE_TOP = 1.2, 0.75  # heights (m)
NOISE_DBFS = -50.0  # the room's noise at each phone, RMS


def places(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Where `n` speakers' mouths and their phones are: evenly around the table, each phone in front of its speaker.
    Two arrays of shape (n, 3)."""
    angles = 2 * np.pi * np.arange(n) / n + 0.3  # off the room's axes: no speaker exactly mirrors another
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    mouths = np.column_stack([TABLE + SEAT * ring, np.full(n, MOUTH)])
    phones = np.column_stack([TABLE + PHONE * ring, np.full(n, TABLE_TOP)])
    return mouths, phones


def impulses(n: int, sr: int) -> list[list[np.ndarray]]:
    """`h[s][p]`: the room's impulse response from speaker `s`'s mouth to phone `p`."""
    import pyroomacoustics as pra  # only the benches need it

    absorption, order = pra.inverse_sabine(RT60, ROOM)
    room = pra.ShoeBox(ROOM, fs=sr, materials=pra.Material(absorption), max_order=order)
    mouths, phones = places(n)
    for mouth in mouths:
        room.add_source(mouth)
    room.add_microphone_array(phones.T)
    room.compute_rir()
    return [[np.asarray(room.rir[p][s], np.float64) for p in range(n)] for s in range(n)]


def at_table(
    tracks: dict[str, np.ndarray], sr: int, others: bool = True, noise_dbfs: float | None = NOISE_DBFS
) -> dict[str, np.ndarray]:
    """Each phone's microphone track: its own speaker through the room and, with `others`, every other speaker too
    (without: the room's reverberation alone, to tell the two effects apart), over the room's noise at `noise_dbfs`
    (pink, seeded by the phone's name; None: none). Tracks keep their length; each phone's is scaled by its own
    speaker's path so that the room neither adds nor takes away that speaker's energy (a phone's gain control)."""
    from scipy.signal import fftconvolve

    from tests.engines.conversation_audio import SR, pink

    names = sorted(tracks)
    h = impulses(len(names), sr)
    out = {}
    for p, name in enumerate(names):
        dry = tracks[name].astype(np.float64)
        mix = fftconvolve(dry, h[p][p])[: len(dry)]
        if others:
            for s, other in enumerate(names):
                if s != p:
                    mix += fftconvolve(tracks[other].astype(np.float64), h[s][p])[: len(dry)]
        mix /= np.linalg.norm(h[p][p])
        if noise_dbfs is not None:
            hiss = pink(len(mix) / SR + 0.01, 0.5, np.random.default_rng(zlib.crc32(f"room/{name}".encode())))
            mix += hiss[: len(mix)] * 10 ** (noise_dbfs / 20) / np.sqrt(np.mean(hiss**2))
        out[name] = np.clip(mix, -1.0, 1.0).astype(np.float32)
    return out
