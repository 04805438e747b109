"""Train/val split by unit (a simulated vehicle, a crossing): every sample of a unit in one split.

A unit goes to val when ``H(seed:unit) < val_share``, ``H`` the first 8 bytes of its SHA-256
as a fraction of 2**64: the same unit lands in the same split in every export with the same
seed, however many other units come and go. Within a group of units (simulated vehicles;
crossings) of at least two, a split that would stay empty takes the unit whose hash lies
nearest the threshold, so that both splits have data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

SPLITS = ("train", "val")
RULE = (
    "unit to val when int(sha256(f'{seed}:{unit}')[:8 bytes]) / 2**64 < val_share, else train; "
    "units: simulated vehicles ('sim<seed>-<vehicle id>', the same vehicles for the same simulator seed) "
    "and store crossings (crossing id); in a group (simulated vehicles, crossings) of 2 or more units, "
    "an empty split takes the unit whose hash lies nearest the threshold"
)


def unit_score(unit: str, seed: int) -> float:
    """The unit's hash as a number in [0, 1)."""
    digest = hashlib.sha256(f"{seed}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(units: Iterable[str], val_share: float, seed: int) -> dict[str, str]:
    """Split of each unit of one group (``train`` or ``val``)."""
    scores = {u: unit_score(u, seed) for u in sorted(set(units))}
    split = {u: ("val" if s < val_share else "train") for u, s in scores.items()}
    if len(split) >= 2 and 0.0 < val_share < 1.0:
        if "val" not in split.values():
            split[min(scores, key=lambda u: (scores[u], u))] = "val"
        if "train" not in split.values():
            split[max(scores, key=lambda u: (scores[u], u))] = "train"
    return split
