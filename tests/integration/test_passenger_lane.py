"""The whole passenger lane on the simulator: kiosk scans + face video -> passages -> verdicts -> SQLite + outbox.

Real OpenCV decoding, real zxing-cpp, real dlib detection and landmarks, the real ONNX face model,
real AES-GCM face store and SQLite; nothing mocked. One passage per scenario of
appliance/sim/passengers.py, each with the verdict and reason the simulator expects.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import jsonschema
import pytest

from appliance.app import run_appliance
from appliance.cli import main
from appliance.publish.events import decode_event
from appliance.sim.passengers import SCENARIOS, read_truth, reset_document_reader, simulate_passengers
from appliance.store.passages import list_passages

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("passengers")
    simulate_passengers(out, len(SCENARIOS), seed=3, scenarios=list(SCENARIOS))
    lane = out / "lane.yaml"
    lane.write_text(lane.read_text(encoding="utf-8") + "storage: {path: gate.db, evidence_dir: evidence}\n",
                    encoding="utf-8")
    assert main(["faces", "keygen", "--config", str(lane)]) == 0
    assert main(["faces", "enrol", "--config", str(lane), "--folder", str(out / "enrol")]) == 0
    return out


@pytest.fixture(scope="module")
def run(sim_dir: Path) -> dict[str, object]:
    """Run the appliance once on the simulated lane, keeping every log record."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        for stale in sim_dir.glob("gate.db*"):
            stale.unlink()
        reset_document_reader(sim_dir)
        services = run_appliance(sim_dir / "lane.yaml", serve=False, keep_serving=False)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    return {"services": services, "records": records}


def test_every_scenario_gets_its_verdict_and_reason(sim_dir: Path, run: dict[str, object]) -> None:
    services = run["services"]
    truth = read_truth(sim_dir / "truth.json")
    passages = sorted(list_passages(services.store, 100), key=lambda p: p.started_at)  # type: ignore[attr-defined]
    assert len(passages) == len(truth) == len(SCENARIOS)
    wrong = []
    for expected, got in zip(truth, passages, strict=True):
        assert abs(got.started_at - expected.kiosk_ms / 1000) < 0.01, "passages out of step with the kiosk scans"
        codes = {r["code"] for r in got.reasons}
        if got.decision != expected.expected_decision or not set(expected.expected_reasons) <= codes:
            wrong.append(f"{expected.scenario}: expected {expected.expected_decision} {expected.expected_reasons}, "
                         f"got {got.decision} {sorted(codes)}")
    assert not wrong, "\n".join(wrong)


def test_passage_events_are_schema_valid_and_carry_no_biometrics_or_identity(sim_dir: Path,
                                                                            run: dict[str, object]) -> None:
    services = run["services"]
    schema = json.loads((ROOT / "docs/schemas/passage-verdict-event.v1.json").read_text(encoding="utf-8"))
    rows = services.store.query("SELECT payload FROM outbox ORDER BY id")  # type: ignore[attr-defined]
    truth = read_truth(sim_dir / "truth.json")
    assert len(rows) == len(truth)
    for row in rows:
        event = decode_event(row["payload"])
        jsonschema.validate(event, schema)
        text = json.dumps(event, ensure_ascii=False)
        for person in truth:
            assert person.id_number not in text and person.name not in text
        assert "descriptor" not in text and "crop" not in text
        numbers = [v for v in _walk(event) if isinstance(v, list) and len(v) >= 64]
        assert not numbers, "a long numeric array (a face descriptor?) in the event"


def test_no_identity_or_face_data_in_info_logs(sim_dir: Path, run: dict[str, object]) -> None:
    truth = read_truth(sim_dir / "truth.json")
    records: list[logging.LogRecord] = run["records"]  # type: ignore[assignment]
    assert any("passage" in r.getMessage() for r in records if r.levelno >= logging.INFO)
    for record in records:
        if record.levelno < logging.INFO:
            continue
        message = record.getMessage()
        for person in truth:
            assert person.id_number not in message, f"document number logged: {record.name}"
            assert person.name not in message, f"name logged: {record.name}"
        assert "||" not in message, f"a CCCD payload logged: {record.name}"


def test_face_data_is_encrypted_at_rest(sim_dir: Path, run: dict[str, object]) -> None:
    services = run["services"]
    raw = b"".join(p.read_bytes() for p in sim_dir.glob("faces.db*"))
    assert b"JFIF" not in raw and b"\xff\xd8\xff" not in raw, "a plaintext JPEG in the face store"
    crops = [p.crop_sha256 for p in list_passages(services.store, 100) if p.crop_sha256]  # type: ignore[attr-defined]
    assert len(crops) >= 6
    # The crops are readable with the key (what a supervisor's view does), and only with it.
    conn = sqlite3.connect(sim_dir / "faces.db")
    assert conn.execute("SELECT count(*) FROM face_crops").fetchone()[0] == len(crops)
    conn.close()


def test_a_tampered_reference_template_gives_reference_unusable_not_a_crash(sim_dir: Path, tmp_path: Path) -> None:
    """Flip a byte of every enrolled template: the lane must say the reference is unusable."""
    import shutil

    work = tmp_path / "lane"
    shutil.copytree(sim_dir, work, ignore=shutil.ignore_patterns("gate.db*"))
    conn = sqlite3.connect(work / "faces.db")
    rows = conn.execute("SELECT id, ciphertext FROM face_templates WHERE kind = 'reference'").fetchall()
    for template_id, blob in rows:
        bad = bytearray(blob)
        bad[20] ^= 0x01
        conn.execute("UPDATE face_templates SET ciphertext = ? WHERE id = ?", (bytes(bad), template_id))
    conn.commit()
    conn.close()
    reset_document_reader(work)
    services = run_appliance(work / "lane.yaml", serve=False, keep_serving=False)
    truth = {t.kiosk_ms / 1000: t for t in read_truth(work / "truth.json")}
    checked = 0
    for passage in list_passages(services.store, 100):
        expected = min(truth.items(), key=lambda kv: abs(kv[0] - passage.started_at))[1]
        if expected.scenario == "genuine":
            assert passage.decision == "MANUAL"
            assert "reference_unusable" in {r["code"] for r in passage.reasons}
            checked += 1
    assert checked == 1


def test_a_missing_face_key_stops_the_boot_with_a_clear_error(sim_dir: Path, tmp_path: Path) -> None:
    from appliance.faces.crypto import FaceKeyError

    config = tmp_path / "lane.yaml"
    text = (sim_dir / "lane.yaml").read_text(encoding="utf-8")
    text = text.replace("key_file: face.key", f"key_file: {tmp_path / 'nope.key'}")
    text = text.replace("path: cameras", f"path: {sim_dir}/cameras").replace("path: kiosk", f"path: {sim_dir}/kiosk")
    config.write_text(text, encoding="utf-8")
    with pytest.raises(FaceKeyError, match=r"nope\.key"):
        run_appliance(config, serve=False, keep_serving=False)


def _walk(value: object) -> list[object]:
    out = [value]
    if isinstance(value, dict):
        for v in value.values():
            out += _walk(v)
    elif isinstance(value, list):
        for v in value:
            out += _walk(v)
    return out


def test_a_lane_failure_gives_manual_processing_error_and_the_next_passage_is_judged(sim_dir: Path,
                                                                                     tmp_path: Path) -> None:
    """The face pipeline blows up on one passage: that passage is MANUAL (processing_error), never lost,
    and the lane goes on with the next one."""
    import shutil

    import appliance.faces.pipeline as pipeline_module

    work = tmp_path / "lane"
    shutil.copytree(sim_dir, work, ignore=shutil.ignore_patterns("gate.db*"))
    reset_document_reader(work)
    calls = {"n": 0}
    real_find = pipeline_module.DlibFacePipeline.find

    def flaky_find(self: object, image: object) -> list:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("dlib fell over")
        return real_find(self, image)  # type: ignore[arg-type]

    pipeline_module.DlibFacePipeline.find = flaky_find  # type: ignore[method-assign]
    try:
        services = run_appliance(work / "lane.yaml", serve=False, keep_serving=False)
    finally:
        pipeline_module.DlibFacePipeline.find = real_find  # type: ignore[method-assign]
    passages = sorted(list_passages(services.store, 100), key=lambda p: p.started_at)
    assert len(passages) == len(SCENARIOS)
    assert passages[0].decision == "MANUAL"  # the first passage is the one whose face search failed
    assert [r["code"] for r in passages[0].reasons] == ["processing_error"]
    truth = read_truth(work / "truth.json")
    assert [p.decision for p in passages[1:]] == [t.expected_decision for t in truth[1:]]  # the rest as usual
    schema = json.loads((ROOT / "docs/schemas/passage-verdict-event.v1.json").read_text(encoding="utf-8"))
    for row in services.store.query("SELECT payload FROM outbox ORDER BY id"):
        jsonschema.validate(decode_event(row["payload"]), schema)  # the fail-safe verdict is published like any
