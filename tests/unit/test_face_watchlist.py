"""1:N watchlist search: exact nearest neighbours, edge cases, updates, and rebuilds under concurrent search."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from appliance.faces.crypto import FaceKey
from appliance.faces.templates import DescriptorError, TemplateStore
from appliance.faces.watchlist import FaceWatchlistIndex, bench_watchlist


def _data(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    m = np.random.default_rng(seed).standard_normal((n, 128)).astype(np.float32) * 0.1
    return [f"p{i:05d}" for i in range(n)], m


def _brute(ids: list[str], m: np.ndarray, q: np.ndarray, k: int) -> tuple[list[str], np.ndarray]:
    d = np.sqrt(((m.astype(np.float64) - q.astype(np.float64)) ** 2).sum(axis=1))
    order = np.argsort(d, kind="stable")[:k]
    return [ids[i] for i in order], d[order]


@pytest.mark.parametrize(("n", "k"), [(1, 1), (7, 3), (2000, 1), (2000, 10), (3000, 25)])
def test_search_returns_the_true_nearest_neighbours(n: int, k: int) -> None:
    ids, m = _data(n)
    index = FaceWatchlistIndex(ids, m)
    rng = np.random.default_rng(1)
    queries = np.concatenate([
        m[rng.integers(0, n, 10)] + rng.standard_normal((10, 128)).astype(np.float32) * 0.01,  # near a row
        rng.standard_normal((10, 128)).astype(np.float32) * 0.1,  # anywhere
        m[:1],  # exactly a row: distance 0
    ])
    got_ids, got_d = index.search_batch(queries, k)
    assert got_d.shape == (len(queries), min(k, n))
    for row, q in enumerate(queries):
        want_ids, want_d = _brute(ids, m, q, k)
        assert got_ids[row] == want_ids
        np.testing.assert_allclose(got_d[row], want_d, rtol=1e-6, atol=1e-6)
        one_ids, one_d = index.search(q, k)
        assert one_ids == want_ids
        np.testing.assert_allclose(one_d, want_d, rtol=1e-6, atol=1e-6)
    assert got_d[-1][0] == pytest.approx(0.0, abs=1e-6)


def test_more_queries_than_a_chunk() -> None:
    ids, m = _data(500)
    index = FaceWatchlistIndex(ids, m)
    qs = np.random.default_rng(2).standard_normal((150, 128)).astype(np.float32) * 0.1
    got_ids, _ = index.search_batch(qs, 3)
    assert [got_ids[i] for i in (0, 64, 149)] == [_brute(ids, m, qs[i], 3)[0] for i in (0, 64, 149)]


def test_empty_index() -> None:
    index = FaceWatchlistIndex()
    assert len(index) == 0
    ids, d = index.search(np.zeros(128, np.float32), 5)
    assert ids == [] and d.shape == (0,)
    ids_b, d_b = index.search_batch(np.zeros((3, 128), np.float32), 5)
    assert ids_b == [[], [], []] and d_b.shape == (3, 0)
    assert index.nearest(np.zeros(128, np.float32)) is None


def test_nearest_is_the_distance_to_the_closest_template() -> None:
    ids, m = _data(300)
    q = m[17] + 0.01
    assert FaceWatchlistIndex(ids, m).nearest(q) == pytest.approx(float(_brute(ids, m, q, 1)[1][0]), abs=1e-6)


@pytest.mark.parametrize("bad", [np.zeros(127, np.float32), np.zeros((2, 128), np.float32), np.zeros((128, 1)),
                                 np.full(128, np.nan, np.float32), np.zeros(128, np.int64), "not a vector"])
def test_bad_queries_are_refused(bad: object) -> None:
    index = FaceWatchlistIndex(*_data(10))
    with pytest.raises(DescriptorError):
        index.search(bad)


def test_bad_batches_and_k_are_refused() -> None:
    index = FaceWatchlistIndex(*_data(10))
    with pytest.raises(DescriptorError):
        index.search_batch(np.zeros((3, 64), np.float32))
    with pytest.raises(DescriptorError):
        index.search_batch(np.zeros(128, np.float32))
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            index.search(np.zeros(128, np.float32), k)  # type: ignore[arg-type]
    with pytest.raises(DescriptorError):
        FaceWatchlistIndex(["a", "b"], np.zeros((3, 128), np.float32))


def test_add_and_remove() -> None:
    ids, m = _data(20)
    index = FaceWatchlistIndex(ids[:10], m[:10])
    index.add(ids[10:19], m[10:19])
    index.add(ids[19], m[19])
    index.add("p00003", m[19] + 0.001)  # a second template of p00003
    assert len(index) == 21
    assert index.search(m[19], 2)[0] == ["p00019", "p00003"]
    assert index.remove("p00003") == 2 and index.remove("nobody") == 0
    assert len(index) == 19 and "p00003" not in index.ids
    keep = [i for i in range(20) if i != 3]
    assert index.search(m[19], 2)[0] == _brute([ids[i] for i in keep], m[keep], m[19], 2)[0]
    with pytest.raises(DescriptorError):
        index.add("x", np.zeros(64, np.float32))
    assert len(index) == 19


def test_the_index_does_not_alias_caller_arrays() -> None:
    ids, m = _data(50)
    index = FaceWatchlistIndex(ids, m)
    before = index.search(m[5], 1)
    m[:] = 0
    assert index.search(index._snap.matrix[5], 1) == (before[0], pytest.approx(before[1]))


def test_rebuild_from_the_store(tmp_path: Path) -> None:
    key = FaceKey(bytes(range(1, 33)))
    ids, m = _data(30)
    with TemplateStore(tmp_path / "faces.db", key) as store:
        for i in range(30):
            store.enroll(f"ref-{ids[i]}", m[i], "watchlist", ttl_s=3600)
        index = FaceWatchlistIndex()
        assert index.rebuild_from(store) == 30
        assert index.search(m[7], 1)[0] == ["ref-p00007"]


class _FakeStore:
    def __init__(self, n: int):
        self.n = n

    def watchlist(self) -> tuple[list[str], np.ndarray]:
        self.n = 400 if self.n == 900 else 900
        return _data(self.n, seed=self.n)


def test_rebuild_while_searching_never_raises() -> None:
    index = FaceWatchlistIndex(*_data(900, seed=900))
    source = _FakeStore(900)
    sets = {n: _data(n, seed=n)[1] for n in (400, 900)}
    errors: list[BaseException] = []
    stop = threading.Event()
    queries = np.random.default_rng(3).standard_normal((4, 128)).astype(np.float32) * 0.1
    far = np.full(128, 10.0, np.float32)  # never among the 5 nearest
    searches = [0]

    def from_one_snapshot(found: list[str], d: np.ndarray, q: np.ndarray) -> bool:
        rows = [int(i[1:]) for i in found]
        return any(max(rows) < n and np.allclose(np.linalg.norm(sets[n][rows] - q, axis=1), d, atol=1e-5)
                   for n in sets)

    def reader() -> None:
        try:
            while not stop.is_set():
                found, d = index.search_batch(queries, 5)
                assert d.shape == (4, 5) and np.all(np.diff(d, axis=1) >= 0)
                for row, q in enumerate(queries):
                    assert from_one_snapshot(found[row], d[row], q), "a search mixed two index versions"
                searches[0] += 1
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(40):
            index.rebuild_from(source)
            index.add("extra", far)
            assert index.remove("extra") == 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert not errors, errors[0]
    assert searches[0] > 0


def test_bench_runs_small() -> None:
    report = bench_watchlist(n=2000, queries=10, k=3)
    assert "exact 1:N search" in report and "naive per-row loop" in report and "BLAS threads:" in report
    assert "same 3 nearest as the naive loop on 2,000 rows: 10/10 queries" in report
