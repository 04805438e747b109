"""``appliance bench ui`` on a small store: it builds, logs in, measures every page and prints the table."""

from __future__ import annotations

import pytest

from appliance.bench.ui import bench_ui, format_ui_bench
from appliance.cli import main


def test_bench_ui_small() -> None:
    result = bench_ui(crossings=1500, requests=3)
    assert result.crossings == 1500 and 0 < result.pending < 1500
    assert len(result.pages) == 7 and all(len(m.samples_ms) == 3 for m in result.pages + result.baselines)
    table = format_ui_bench(result)
    assert "review page, 12 evidence frames" in table and "NOT INDEXED" in table and "< 300" in table


def test_bench_ui_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "ui", "--crossings", "300", "--requests", "2"]) == 0
    assert "queue, last page: /?page=7" in capsys.readouterr().out
