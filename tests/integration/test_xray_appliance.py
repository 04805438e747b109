"""The appliance with an X-ray scanner configured: `appliance train xray-anomaly` makes the model, the drop
folder is processed by the running appliance, results land in the store with their events; a bad drop is
rejected with its reason and the others go on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from appliance.app import run_appliance
from appliance.cli import main
from appliance.config import load_config
from appliance.errors import ConfigError
from appliance.sim.xray import simulate_xray
from appliance.xray.calibration import build_calibration, save_calibration
from appliance.xray.ingest import read_calibration

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    project = Path(__file__).resolve().parents[2] / "models"
    for part in ("text-detection", "text-recognition", "keys"):  # the lane's own models, as in the project's store
        shutil.copytree(project / part, root / part, ignore=shutil.ignore_patterns("*.tmp"))
    assert main(["train", "xray-anomaly", "--head", "gaussian", "--scans-per-class", "1", "--root", str(root),
                 "--eval-per-class", "0", "--name", "tiny"]) == 0
    assert (root / "xray-anomaly" / "tiny" / "1" / "manifest.yaml").is_file()
    return root


def test_the_appliance_processes_its_scanner_drops(models: Path, tmp_path: Path) -> None:
    sim = tmp_path / "sim"
    simulate_xray(sim, 2, seed=4, scale=0.5, anomaly_share=0.5, mismatch_share=0.0)
    frames = read_calibration(sim / "calibration")
    save_calibration(build_calibration(frames.scanner_id, dark=frames.dark, air=frames.air), tmp_path / "cal")
    (sim / "scans" / "XR99999.json").write_text("{not json", encoding="utf-8")  # a broken drop among good ones
    (tmp_path / "kiosk").mkdir()
    config = tmp_path / "lane.yaml"
    config.write_text(
        "site: {gate: VNHNG, box_id: box-1}\n"
        "lanes:\n- id: l1\n  sources:\n  - {id: kiosk, type: folder, role: kiosk, path: kiosk, follow: false}\n"
        f"models: {{root: {models}, allow_unsigned: true}}\n"
        f"xray: {{drop_dir: {sim / 'scans'}, calibration_dir: {tmp_path / 'cal'}, model: tiny, follow: false}}\n"
        "storage: {path: gate.db, evidence_dir: evidence}\n", encoding="utf-8")
    services = run_appliance(config, serve=False, keep_serving=False)
    rows = services.store.query("SELECT scan_id, match, evidence_sha256 FROM xray_results")
    assert len(rows) == 2
    assert all(r["match"] == "none" for r in rows)  # no crossing in this store
    assert services.store.outbox_count() == 2
    assert (sim / "scans" / "rejected" / "XR99999.json.reason.txt").is_file()
    assert services.status["xray"]["processed"] == 2


def test_an_xray_section_needs_its_drop_folder_and_a_valid_model(models: Path, tmp_path: Path) -> None:
    from appliance.config import verify_paths

    (tmp_path / "kiosk").mkdir()
    config = tmp_path / "lane.yaml"
    base = ("site: {gate: VNHNG, box_id: box-1}\n"
            "lanes:\n- id: l1\n  sources:\n  - {id: kiosk, type: folder, role: kiosk, path: kiosk, follow: false}\n"
            f"models: {{root: {models}, allow_unsigned: %s}}\n"
            "xray: {drop_dir: %s, model: tiny, follow: false}\nstorage: {path: gate.db, evidence_dir: ev}\n")
    config.write_text(base % ("true", tmp_path / "nope"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"X-ray drop folder .*nope not found"):
        verify_paths(load_config(config), str(config))
    (tmp_path / "drops").mkdir()
    config.write_text(base % ("false", tmp_path / "drops"), encoding="utf-8")
    from appliance.errors import ModelError

    with pytest.raises(ModelError, match="signature"):
        run_appliance(config, serve=False, keep_serving=False)  # an unsigned model on a box that refuses them
