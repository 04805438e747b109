"""The systemd unit: `systemd-analyze verify` accepts it (and its passenger drop-in), and it keeps the
watchdog, restart, hardening and credential settings the appliance relies on.

`systemd-analyze verify` checks that ExecStart's binary exists, so the test verifies a copy whose
/opt/gate-appliance/.venv/bin/appliance points at a stub script in a temporary folder; everything else is
the unit as shipped.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "gate-appliance.service"
DROP_INS = sorted((ROOT / "systemd" / "gate-appliance.service.d").glob("*.conf"))
APPLIANCE = "/opt/gate-appliance/.venv/bin/appliance"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


def _verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    if not Path(SYSTEMD_ANALYZE).exists():
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    stub = tmp_path / "appliance"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = tmp_path / "gate-appliance.service"
    unit.write_text(text.replace(APPLIANCE, str(stub)), encoding="utf-8")
    return subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})


def _complaints(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if "gate-appliance" in line]


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    result = _verify(tmp_path, UNIT.read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stderr
    assert _complaints(result) == []  # unknown keys are only warnings: none allowed


@pytest.mark.parametrize("drop_in", DROP_INS, ids=lambda p: p.name)
def test_systemd_analyze_verifies_the_unit_with_each_drop_in(tmp_path: Path, drop_in: Path) -> None:
    extra = "".join(line + "\n" for line in drop_in.read_text(encoding="utf-8").splitlines()
                    if line and not line.startswith(("#", "[")))
    text = UNIT.read_text(encoding="utf-8").replace("[Install]", extra + "\n[Install]")
    result = _verify(tmp_path, text)
    assert result.returncode == 0 and _complaints(result) == [], result.stderr


def test_the_secrets_are_in_drop_ins() -> None:
    """A box without an event-signing key or a face key still starts: each credential is in its own drop-in."""
    assert "LoadCredential" not in UNIT.read_text(encoding="utf-8")
    loaded = {line.split("=", 1)[1].split(":", 1)[0] for p in DROP_INS
              for line in p.read_text(encoding="utf-8").splitlines() if line.startswith("LoadCredential=")}
    assert {"event-signing-key", "face-key"} <= loaded


def test_the_verification_catches_a_typo(tmp_path: Path) -> None:
    """The check can fail: a misspelt directive is reported."""
    result = _verify(tmp_path, UNIT.read_text(encoding="utf-8").replace("NoNewPrivileges=", "NoNewPrivilege="))
    assert any("NoNewPrivilege" in line for line in _complaints(result)), result.stderr


def _service() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def test_the_unit_keeps_watchdog_restart_hardening_and_credentials() -> None:
    s = _service()
    assert s["Type"] == ["notify"] and int(s["WatchdogSec"][0]) > 0
    assert s["Restart"] == ["on-failure"]
    assert s["User"] == ["gate"] and s["NoNewPrivileges"] == ["true"] and s["ProtectSystem"] == ["strict"]
    assert s["CapabilityBoundingSet"] == [""] and s["AmbientCapabilities"] == [""]
    assert s["PrivateTmp"] == ["true"] and s["ProtectHome"] == ["true"]
    assert "@system-service" in s["SystemCallFilter"]
    assert set(s["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}  # AF_UNIX: sd_notify
    assert "/var/lib/gate-appliance" in s["ReadWritePaths"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # SIGHUP: config reload (appliance/lifecycle/reload.py)
    for path in DROP_INS:  # each drop-in is a plain [Service] section systemd can read
        drop_in = configparser.ConfigParser(strict=False)
        drop_in.read_string(path.read_text(encoding="utf-8"))
        assert ":" in drop_in["Service"]["LoadCredential"]
