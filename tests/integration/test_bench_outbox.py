"""``appliance bench outbox`` on a tiny run: the table's structure and positive figures, not the targets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.cli import main
from tests.integration.mosquitto import MOSQUITTO, Broker

ROWS = ("durable writes (save_crossing) /s", "publish, backlog drain (PUBACK, received) /s",
        "closed -> received latency p50 ms", "closed -> received latency p95 ms", "closed -> received latency max ms")


def run_bench(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    rc = main(["--log-level", "WARNING", "bench", "outbox", "--crossings", "40", "--rate", "100",
               "--latency-seconds", "0.2", *extra])
    out = capsys.readouterr().out
    assert rc == 0, out
    return out


def check_table(out: str) -> None:
    assert "synchronous=FULL" in out and "QoS 1" in out
    for name in ROWS:
        line = next((row for row in out.splitlines() if row.startswith(name)), None)
        assert line is not None, f"no {name!r} row in\n{out}"
        cells = line[len(name):].split()  # figure [target ok|MISSED] baseline ratio
        figure, baseline, ratio = float(cells[0].replace(",", "")), float(cells[-2].replace(",", "")), cells[-1]
        assert figure > 0 and baseline > 0 and re.fullmatch(r"\d+\.\d\dx", ratio), line
    for target in (">= 1,000", ">= 500", "< 200"):
        assert re.search(rf"{target}\s+(ok|MISSED)", out), target


@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto is not installed")
def test_bench_outbox_with_its_own_broker(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_bench(capsys)
    check_table(out)
    assert "own mosquitto" in out and "40 crossings" in out


def test_bench_outbox_on_a_given_broker(capsys: pytest.CaptureFixture[str], broker: Broker) -> None:
    out = run_bench(capsys, "--broker-port", str(broker.port))
    check_table(out)
    assert f"127.0.0.1:{broker.port} (given broker)" in out


def test_bench_outbox_without_mosquitto_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import appliance.bench.outbox as bench

    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    monkeypatch.setattr(bench, "MOSQUITTO_FALLBACK", tmp_path / "no-mosquitto")
    assert main(["bench", "outbox", "--crossings", "5"]) == 2
    assert "mosquitto binary was not found" in capsys.readouterr().err
