"""bench/room.py: phones on a table in a room, each hearing every speaker."""

from __future__ import annotations

import numpy as np

from bench.room import at_table, places

SR = 16000


def _tracks() -> dict[str, np.ndarray]:
    """A speaks (a burst of noise, 0.5 s) while B is quiet."""
    rng = np.random.default_rng(0)
    a, b = np.zeros(2 * SR, np.float32), np.zeros(2 * SR, np.float32)
    a[SR // 4 : 3 * SR // 4] = 0.1 * rng.standard_normal(SR // 2)
    return {"A": a, "B": b}


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20))


def _onset(x: np.ndarray) -> int:
    return int(np.flatnonzero(np.abs(x) > 0.05 * np.abs(x).max())[0])


def test_every_phone_hears_a_speaker_its_own_loudest_and_first() -> None:
    dry = _tracks()
    out = at_table(dry, SR, noise_dbfs=None)
    assert set(out) == {"A", "B"}
    assert all(out[k].dtype == np.float32 and len(out[k]) == len(dry[k]) for k in out)
    # A's own phone keeps A as loud as the dry track (the phone's gain)...
    assert abs(_db(out["A"]) - _db(dry["A"])) < 0.5
    # ...and B's phone, across the table, hears A too: quieter, and later.
    down = _db(out["A"]) - _db(out["B"])
    assert 1.0 < down < 15.0, down
    assert _onset(out["B"]) > _onset(out["A"])


def test_reverb_alone_keeps_each_phone_to_its_own_speaker() -> None:
    out = at_table(_tracks(), SR, others=False, noise_dbfs=None)
    assert not np.any(out["B"])
    assert _db(out["A"]) > -30


def test_every_phone_hears_the_rooms_own_noise_its_own_draw():
    out = at_table(_tracks(), SR, others=False)
    quiet = slice(int(1.7 * SR), 2 * SR)  # after A's burst and the room's echo of it (0.9 s)
    assert all(abs(_db(out[k][quiet]) + 50) < 3 for k in out)  # pink: a short stretch wanders a dB or two
    assert not np.allclose(out["A"][quiet], out["B"][quiet])


def test_each_phone_lies_nearer_its_own_speaker_than_any_other() -> None:
    for n in (2, 4, 5):
        mouths, phones = places(n)
        dist = np.linalg.norm(mouths[:, None, :] - phones[None, :, :], axis=2)  # [speaker, phone]
        assert all(np.argmin(dist[:, p]) == p for p in range(n))
