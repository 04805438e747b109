"""A short soak of the simulated gate in a real process: the report's shape, and that open file descriptors
and threads do not grow while the lane is replayed again and again (a leak climbs with every replay).

The RSS bar (growth under 5 %) is for the 2-hour run (docs/OPERATIONS_SOAK.md): 30 s are mostly warm-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_short_soak_reports_flat_fds_and_threads(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "--log-level", "WARNING", "soak", "--minutes", "0.5", "--sample-s", "1",
         "--vehicles", "1", "--width", "640", "--height", "360", "--no-realtime", "--workdir", str(tmp_path / "w"),
         "--json", str(out)],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RSS median, first quarter" in done.stdout and "growth" in done.stdout
    report = json.loads(out.read_text())
    samples, summary = report["samples"], report["summary"]
    assert set(samples[0]) == {"t_s", "rss_kb", "fds", "threads", "py_threads", "crossings"}
    assert len(samples) >= 20 and samples[-1]["t_s"] >= 29
    assert [s["t_s"] for s in samples] == sorted(s["t_s"] for s in samples)
    assert summary["passes"] >= 2, "the lane was not replayed: nothing shows a leak per replay"
    assert summary["crossings"] >= summary["passes"] - 1 > 0, "the simulated gate made no crossings"
    assert all(s["rss_kb"] > 50_000 for s in samples)  # the models are loaded: a real RSS, not a stub
    growth = summary["rss_last_quarter_median_kb"] / summary["rss_first_quarter_median_kb"] - 1
    assert abs(summary["rss_growth"] - growth) < 1e-3
    # bounded: the last quarter holds no more fds or threads than the first (a replay's lane thread and video
    # files come and go), and the peaks stay within one replay's worth of the first quarter
    n = max(1, len(samples) // 4)
    last = samples[-n - 1:-1]  # the very last sample is taken after the lanes stopped
    assert max(s["fds"] for s in last) <= summary["fds_first_quarter_median"] + 2
    assert max(s["threads"] for s in last) <= summary["threads_first_quarter_median"] + 2
    assert summary["fds_max"] <= summary["fds_first_quarter_median"] + 6
    assert summary["threads_max"] <= summary["threads_first_quarter_median"] + 8
