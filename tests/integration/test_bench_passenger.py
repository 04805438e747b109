"""`appliance bench passenger` runs end to end and prints every step, the target line and its baselines
(the figures themselves are for the command, not for a timed test)."""

from __future__ import annotations

import pytest

from appliance.bench.passenger import bench_passenger

pytestmark = pytest.mark.slow


def test_bench_passenger_prints_steps_target_and_baselines() -> None:
    out = bench_passenger(passengers=3, seed=5, watchlist_size=3000)
    assert "3 passages" in out and "face watchlist 3,000 templates" in out
    for step in ("document: CCCD QR", "find faces", "liveness", "align + embed (ONNX)", "1:N face watchlist"):
        assert step in out
    assert "target p95 < 1500" in out
    assert "dlib compute_face_descriptor" in out and "faster" in out
    assert "naive per-row loop" in out
