"""Enrolment, the faces CLI, `appliance eval faces` and the face pipeline's second-face rule, on real
photos (skimage's astronaut and LFW crops) with the real ONNX model and the real encrypted store."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.cli import main
from appliance.config import FacesConfig
from appliance.eval.faces import evaluate_faces, read_face_pairs
from appliance.eval.labels import LabelError
from appliance.faces.crypto import FaceKey
from appliance.faces.embed import FaceEmbedder
from appliance.faces.enrol import EnrolError, Enroller
from appliance.faces.pipeline import DlibFacePipeline
from appliance.faces.templates import TemplateStore
from appliance.inference.store import ModelStore
from appliance.sim import faces_render as fr
from appliance.sim.passengers import OTHER_FACES, capture_frames


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder(ModelStore().open("face-embedding", "dlib-resnet-v1"))


@pytest.fixture
def enroller(tmp_path: Path, embedder: FaceEmbedder) -> Enroller:
    key = FaceKey.generate(tmp_path / "face.key")
    return Enroller(embedder, TemplateStore(tmp_path / "faces.db", key), key)


def test_enrol_refuses_photos_without_exactly_one_face(tmp_path: Path, enroller: Enroller) -> None:
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((300, 300, 3), 120, np.uint8))
    cv2.imwrite(str(tmp_path / "two.png"), np.hstack([fr.astronaut_bgr()[:, 75:375]] * 2))
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    with pytest.raises(EnrolError, match=r"wall\.png: no face found"):
        enroller.enrol(tmp_path / "wall.png", "001090012345", "reference", 3600)
    with pytest.raises(EnrolError, match=r"two\.png: 2 faces"):
        enroller.enrol(tmp_path / "two.png", "001090012345", "reference", 3600)
    with pytest.raises(EnrolError, match=r"junk\.jpg: not a readable image"):
        enroller.enrol(tmp_path / "junk.jpg", "001090012345", "reference", 3600)
    assert enroller.templates.counts()["reference"] == 0


def test_enrol_folder_keeps_going_past_a_bad_photo(tmp_path: Path, enroller: Enroller) -> None:
    folder = tmp_path / "enrol"
    (folder / "watchlist").mkdir(parents=True)
    cv2.imwrite(str(folder / "001090012345.jpg"), fr.astronaut_bgr())
    cv2.imwrite(str(folder / "022190000001.jpg"), np.full((200, 200, 3), 90, np.uint8))
    cv2.imwrite(str(folder / "watchlist" / "case-17.jpg"), fr.other_face(OTHER_FACES[0]))
    done, problems = enroller.enrol_folder(folder, 3600)
    assert sorted(d.kind for d in done) == ["reference", "watchlist"]
    assert len(problems) == 1 and "022190000001.jpg: no face found" in problems[0]
    reference = enroller.templates.reference(enroller.key.person_ref("001090012345"))
    assert reference is not None and reference.shape == (128,)
    # The stored reference is the astronaut's: a live frame of her is close, another person is not.
    pipeline = DlibFacePipeline(FacesConfig())
    frame = capture_frames("genuine", 3, seed=1)[1]
    faces = pipeline.find(frame)
    live = enroller.embedder.embed([pipeline.chip(frame, faces[0])])[0]
    assert np.linalg.norm(live - reference) < 0.45
    other = enroller.descriptor(fr.other_face(OTHER_FACES[0]), "other")
    assert np.linalg.norm(other - reference) > 0.6


def test_faces_cli_keygen_never_overwrites_and_status_shows_counts(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "box.yaml"
    config.write_text(
        "site: {gate: VNMCI, box_id: box-1}\n"
        "lanes:\n- id: p1\n  kind: passenger\n  sources:\n"
        "  - {id: face, role: face, type: usb, device: 0}\n"
        "  - {id: kiosk, role: kiosk, type: folder, path: kiosk}\n"
        f"faces: {{key_file: {tmp_path / 'k.key'}, store_path: {tmp_path / 'f.db'}}}\n", encoding="utf-8")
    assert main(["faces", "keygen", "--config", str(config)]) == 0
    assert oct((tmp_path / "k.key").stat().st_mode & 0o777) == "0o600"
    assert main(["faces", "keygen", "--config", str(config)]) == 2
    assert "already exists" in capsys.readouterr().err
    cv2.imwrite(str(tmp_path / "a.jpg"), fr.astronaut_bgr())
    assert main(["faces", "enrol", "--config", str(config), "--photo", str(tmp_path / "a.jpg"),
                 "--subject", "001090012345"]) == 0
    assert main(["faces", "status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "reference: 1" in out and "001090012345" not in out
    assert main(["faces", "forget", "--config", str(config), "--subject", "001090012345"]) == 0
    assert "forgot 1 template" in capsys.readouterr().out


def test_the_second_face_rule_ignores_weak_texture_detections_but_sees_two_people() -> None:
    pipeline = DlibFacePipeline(FacesConfig())
    one = capture_frames("genuine", 4, seed=2)
    two = capture_frames("two_faces", 4, seed=2)
    raw = [len(pipeline.finder.find(f)) for f in one]
    assert [len(pipeline.find(f)) for f in one] == [1, 1, 1, 1]
    assert [len(pipeline.find(f)) for f in two] == [2, 2, 2, 2]
    assert max(raw) >= 1


def _pairs_folder(root: Path) -> Path:
    images = root / "images"
    images.mkdir(parents=True)
    base = fr.astronaut_bgr()
    variants = {
        "astro_a.jpg": base,
        "astro_b.jpg": cv2.convertScaleAbs(base, alpha=0.85, beta=10),
        "astro_c.jpg": cv2.flip(base, 1),
        "lfw_1.jpg": fr.other_face(OTHER_FACES[1]),
        "lfw_2.jpg": fr.other_face(OTHER_FACES[2]),
    }
    for name, image in variants.items():
        cv2.imwrite(str(images / name), image)
    rows = ["img_a,img_b,same_person,source",
            "images/astro_a.jpg,images/astro_b.jpg,1,test", "images/astro_a.jpg,images/astro_c.jpg,1,test",
            "images/astro_b.jpg,images/astro_c.jpg,1,test", "images/astro_a.jpg,images/lfw_1.jpg,0,test",
            "images/astro_b.jpg,images/lfw_2.jpg,0,test", "images/lfw_1.jpg,images/lfw_2.jpg,0,test"]
    (root / "pairs.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def test_eval_faces_reports_auc_tar_eer_and_dlib_baseline(tmp_path: Path) -> None:
    folder = _pairs_folder(tmp_path / "faces")
    out = tmp_path / "faces.json"
    assert main(["eval", "faces", "--data", str(folder), "--json", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["task"] == "faces" and report["n"] == 6
    assert report["score"] == 1.0  # the astronaut variants are far closer to each other than to LFW faces
    assert set(report["baselines"]) == {"dlib"} and 0.0 <= report["baselines"]["dlib"] <= 1.0
    notes = "\n".join(report["notes"])
    assert "TAR" in notes and "EER" in notes and "match_threshold 0.55" in notes
    assert "not resolvable: 3 impostor pairs" in notes
    diff = float(notes.split("max |difference| ")[1].split(" ")[0])
    assert diff <= 1e-4  # the converted model reproduces dlib's descriptors on real chips


def test_eval_faces_label_errors_name_the_file_and_row(tmp_path: Path) -> None:
    folder = _pairs_folder(tmp_path / "faces")
    text = (folder / "pairs.csv").read_text(encoding="utf-8").replace(",0,test", ",maybe,test", 1)
    (folder / "pairs.csv").write_text(text, encoding="utf-8")
    with pytest.raises(LabelError, match=r"pairs.csv:5: same_person must be 0 or 1"):
        read_face_pairs(folder)
    (folder / "pairs.csv").write_text("img_a,img_b,same_person\nimages/nope.jpg,images/lfw_1.jpg,1\n")
    with pytest.raises(LabelError, match=r"image images/nope\.jpg not found"):
        evaluate_faces(folder)
