"""POST /api/scanner/xray: a scanner posts a scan; it lands in the drop folder exactly as a dropped one would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from appliance.errors import ConfigError
from appliance.sim.xray import simulate_xray
from appliance.store.db import Store
from appliance.web.app import WebServices, create_app
from appliance.web.scanner_upload import ScannerUpload
from appliance.xray.ingest import XrayDropFolder

TOKEN = "scanner-token-0123456789abcdef"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    simulate_xray(out, 1, seed=2, scale=0.25, anomaly_share=0.0, mismatch_share=0.0)
    return out / "scans"


def _client(tmp_path: Path, upload: ScannerUpload | None) -> TestClient:
    store = Store(tmp_path / "gate.db", tmp_path / "evidence")
    return TestClient(create_app(WebServices(store, "VNHNG", scanner_upload=upload)))


def _files(exported: Path) -> dict[str, tuple[str, bytes]]:
    sidecar = next(exported.glob("*.json"))
    doc = json.loads(sidecar.read_text(encoding="utf-8"))
    return {"sidecar": ("scan.json", sidecar.read_bytes()),
            "high": ("h.png", (exported / doc["images"]["high"]).read_bytes()),
            "low": ("l.png", (exported / doc["images"]["low"]).read_bytes())}


def test_a_posted_scan_is_read_by_the_drop_folder_like_a_dropped_one(exported: Path, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    client = _client(tmp_path, ScannerUpload(drop, TOKEN.encode()))
    response = client.post("/api/scanner/xray", files=_files(exported), headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 202, response.text
    name = response.json()["drop"]
    assert (drop / f"{name}.json").is_file() and not list(drop.glob(".*.tmp"))
    scans = list(XrayDropFolder(drop, settle_s=0.0))
    assert len(scans) == 1 and scans[0].dual_energy
    original = next(exported.glob("*.json"))
    assert scans[0].meta.scanner_id == json.loads(original.read_text(encoding="utf-8"))["scanner_id"]


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}"])
def test_without_the_token_nothing_is_written(exported: Path, tmp_path: Path, header: str | None) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    client = _client(tmp_path, ScannerUpload(drop, TOKEN.encode()))
    headers = {"Authorization": header} if header else {}
    response = client.post("/api/scanner/xray", files=_files(exported), headers=headers)
    assert response.status_code == 401
    assert not any(drop.iterdir())


def test_bad_uploads_get_clear_errors(exported: Path, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    client = _client(tmp_path, ScannerUpload(drop, TOKEN.encode()))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    files = _files(exported)
    bad_json = client.post("/api/scanner/xray", headers=auth, files={**files, "sidecar": ("s.json", b"{oops")})
    assert bad_json.status_code == 422 and "sidecar: not JSON" in bad_json.text
    not_image = client.post("/api/scanner/xray", headers=auth, files={**files, "high": ("h.png", b"GIF89a....")})
    assert not_image.status_code == 422 and "high: not a PNG, TIFF or DICOM file" in not_image.text
    assert not any(p for p in drop.iterdir() if p.suffix == ".json")


def test_disabled_without_a_token_file_and_no_login_wall_in_the_way(exported: Path, tmp_path: Path) -> None:
    client = _client(tmp_path, None)
    response = client.post("/api/scanner/xray", files=_files(exported), headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404 and "not enabled" in response.text


def test_a_token_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by group or others"):
        ScannerUpload.from_files(tmp_path, token)
    token.chmod(0o600)
    assert ScannerUpload.from_files(tmp_path, token).token == TOKEN.encode()
