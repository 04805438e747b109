"""Search crossings by plate, container, seal or declaration, lane, time range and verdict.

Values are found through the ``search_keys`` table (migration 5: a trigger keeps it, corrections
add theirs), whose keys are normalised like the manifest's ``plate_key``: upper case, letters and
digits only, so ``29C-123.45``, ``29c 12345`` and ``29C12345`` are the same plate. An exact search
is an index seek; a substring search scans the keys of the chosen kinds only (short rows of one
covering index, never the crossings table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.store.db import Store
from appliance.store.review_queue import QueueRow, rows_by_id
from appliance.verdicts.manifest import plate_key

KINDS: dict[str, tuple[str, ...]] = {
    "any": ("plate", "container", "seal", "declaration"),
    "plate": ("plate",),
    "container": ("container",),
    "seal": ("seal",),
    "declaration": ("declaration",),
}
VERDICTS = ("CLEAR", "REVIEW", "HOLD")


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    field: str = "any"  # a key of KINDS
    exact: bool = False
    lane: str | None = None
    verdict: str | None = None
    since: float | None = None  # ended_at >= since
    until: float | None = None  # ended_at < until

    @property
    def key(self) -> str:
        return plate_key(self.text)

    @property
    def empty(self) -> bool:
        return not (self.text.strip() or self.lane or self.verdict or self.since is not None
                    or self.until is not None)


def search(store: Store, query: SearchQuery, offset: int = 0, limit: int = 50) -> tuple[list[QueueRow], bool]:
    """One page of matching crossings, newest first, and whether another page follows."""
    where: list[str] = []
    params: list[Any] = []
    if query.text.strip():
        kinds = KINDS.get(query.field, KINDS["any"])
        if not query.key:  # nothing searchable in it (punctuation only): nothing matches
            return [], False
        marks = ",".join("?" * len(kinds))
        match = "key = ?" if query.exact else "instr(key, ?) > 0"
        where.append(f"id IN (SELECT crossing_id FROM search_keys WHERE kind IN ({marks}) AND {match})")
        params += [*kinds, query.key]
    if query.lane:
        where.append("lane_id = ?")
        params.append(query.lane)
    if query.verdict:
        where.append("decision = ?")
        params.append(query.verdict)
    if query.since is not None:
        where.append("ended_at >= ?")
        params.append(query.since)
    if query.until is not None:
        where.append("ended_at < ?")
        params.append(query.until)
    sql = "SELECT id FROM crossings"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY ended_at DESC, id DESC LIMIT ? OFFSET ?"
    ids = [r[0] for r in store.query(sql, [*params, limit + 1, offset])]
    return rows_by_id(store, ids[:limit]), len(ids) > limit


def lanes(store: Store) -> list[str]:
    """The lanes that have crossings (for the search form)."""
    return [r[0] for r in store.query("SELECT DISTINCT lane_id FROM crossings ORDER BY lane_id")]
