"""``appliance train detector``: train a YOLO detector with ultralytics on CPU, export it to ONNX and
install it into the model store as a candidate (never activated here).

The dataset is the ultralytics layout that ``appliance training export`` writes::

    DIR/data.yaml                 path, train: images/train, val: images/val, names: {0: plate, ...}
    DIR/images/{train,val}/*.jpg
    DIR/labels/{train,val}/*.txt  YOLO boxes: class cx cy w h, normalised
    DIR/../manifest.json          provenance of the export (copied into the model's manifest when present)

Phases (one progress line each, ultralytics prints its own per-epoch lines):

1. train      from a model yaml (``yolov8n.yaml``: random initialisation, nothing downloaded) or a
              local checkpoint, with a fixed seed and deterministic algorithms;
2. validate   the best weights on the val split: mAP50, mAP50-95, precision, recall;
3. export     ONNX, opset ``ONNX_OPSET``, fixed batch 1, simplified with onnxslim when installed;
4. golden     a couple of val images through ONNX Runtime (``appliance.inference.golden``);
5. install    ``models/object-detection/<name>/<next version>/`` through ``install_package`` (validated;
              signed first when a key is given).

Nothing may leave the box: before ultralytics is imported the environment says it is offline
(``YOLO_OFFLINE=1``, ``YOLO_AUTOINSTALL=False``) and its config folder holds a local TTF under the
names of the fonts it would otherwise fetch (it checks for ``Arial.ttf`` on every run, even with
plots off). Only this module imports torch/ultralytics, and only inside ``train_detector``: the
rest of it (dataset reading, ``letterbox``) is importable on a box without the ``train`` extra.

Licence: ultralytics is AGPL-3.0, and so are models trained with it unless an Ultralytics
enterprise licence says otherwise; the manifest says so in ``licence``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shlex
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from appliance import keys, runtime_env
from appliance.errors import ApplianceError, ModelError
from appliance.inference.manifest import GoldenSpec, ModelManifest, TensorSpec, load_manifest
from appliance.inference.session import OnnxModel, sha256_file
from appliance.inference.store import ModelRef, ModelStore
from appliance.inference.validation import ValidationPolicy

TASK = "object-detection"
ONNX_OPSET = 18  # pinned: every ONNX Runtime the appliance ships runs it (ultralytics' own choice for torch 2.x)
LICENCE = (
    "AGPL-3.0 (trained with ultralytics, which is AGPL-3.0; distributing this model outside the project "
    "needs AGPL compliance or an Ultralytics enterprise licence)"
)
THRESHOLDS = {"conf": 0.25, "iou": 0.7}  # ultralytics' predict defaults; the val metrics use conf 0.001
GOLDEN = GoldenSpec(atol=1e-3, rtol=1e-3)
GOLDEN_CASES = 2
PAD_VALUE = 114  # ultralytics' letterbox grey
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# ultralytics looks for these in its config folder before it would download them.
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
FONT_SOURCES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),  # Debian fonts-dejavu-core (scripts/setup.sh)
)
# (ultralytics' label, the manifest's metric name); the labels are DetMetrics.results_dict's keys.
METRICS = (
    ("metrics/mAP50(B)", "mAP50"),
    ("metrics/mAP50-95(B)", "mAP50-95"),
    ("metrics/precision(B)", "precision"),
    ("metrics/recall(B)", "recall"),
)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class DetectionDataset:
    """A dataset in the ultralytics layout, as read (and checked) before any training starts."""

    data_yaml: Path
    root: Path
    train_dir: Path
    val_dir: Path
    names: list[str]
    train_images: int
    val_images: int
    boxes: dict[str, dict[str, int]]  # split -> class name -> boxes
    val_sha256: str  # over the val images and labels: which val set the metrics were measured on
    export: dict[str, Any] = field(default_factory=dict)  # summary of DIR/../manifest.json
    export_manifest: Path | None = None

    @property
    def name(self) -> str:
        """The export's ``name``, else the export's folder (the one holding manifest.json), else the dataset's."""
        value = self.export.get("name")
        if isinstance(value, str) and value:
            return value
        return self.export_manifest.parent.name if self.export_manifest is not None else self.root.name

    @property
    def eval_set(self) -> str:
        """``<export name>:val@<first 12 hex of the val set's hash>``: equal only for the same val images."""
        return f"{self.name}:val@{self.val_sha256[:12]}"

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "data": str(self.data_yaml),
            "name": self.name,
            "classes": list(self.names),
            "train_images": self.train_images,
            "val_images": self.val_images,
            "boxes": {split: dict(counts) for split, counts in self.boxes.items()},
            "val_sha256": self.val_sha256,
        }
        if self.export_manifest is not None:
            out["export_manifest"] = str(self.export_manifest)
            out["export_manifest_sha256"] = sha256_file(self.export_manifest)
            out["export"] = self.export
        return out


def _names(raw: Any, where: Path) -> list[str]:
    if isinstance(raw, list) and raw and all(isinstance(n, str) for n in raw):
        return list(raw)
    if isinstance(raw, dict) and raw:
        try:
            ids = sorted(int(k) for k in raw)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{where}: names must map class ids 0..N-1 to names, got keys {list(raw)}") from exc
        if ids != list(range(len(ids))):
            raise ModelError(f"{where}: names must map class ids 0..N-1 to names, got ids {ids}")
        by_id = {int(k): v for k, v in raw.items()}
        names = [by_id[i] for i in ids]
        if all(isinstance(n, str) and n for n in names):
            return names
    raise ModelError(f"{where}: names must be a list or an id->name mapping of class names, got {raw!r}")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _label_file(image: Path) -> Path:
    """Where ultralytics looks for an image's labels: the last ``/images/`` becomes ``/labels/``, suffix .txt."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _count_boxes(images: list[Path], names: list[str], where: Path) -> dict[str, int]:
    counts = dict.fromkeys(names, 0)
    for image in images:
        label = _label_file(image)
        if not label.is_file():
            continue  # an image without objects (a negative) is allowed
        for number, line in enumerate(label.read_text(encoding="utf-8").splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                cls = int(fields[0])
                box = [float(v) for v in fields[1:5]]
            except ValueError as exc:
                raise ModelError(f"{label}:{number}: not a YOLO box line (class cx cy w h): {line!r}") from exc
            if len(fields) != 5 or not 0 <= cls < len(names) or not all(0.0 <= v <= 1.0 for v in box):
                raise ModelError(
                    f"{label}:{number}: expected 'class cx cy w h' with class 0..{len(names) - 1} and "
                    f"normalised coordinates, got {line!r} ({where})"
                )
            counts[names[cls]] += 1
    return counts


def _split_hash(images: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for image in images:
        label = _label_file(image)
        digest.update(f"{image.relative_to(root).as_posix()}\0{sha256_file(image)}\0".encode())
        digest.update((sha256_file(label) if label.is_file() else "-").encode() + b"\n")
    return digest.hexdigest()


# Parts of the export's manifest.json that are not about this model's data, or long lists of ids.
_EXPORT_LEFT_OUT = frozenset({"recognizer", "unit_lists"})


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _prune(v) for k, v in value.items() if k not in _EXPORT_LEFT_OUT}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _export_summary(path: Path) -> dict[str, Any]:
    """What the export's manifest.json says about itself: its ``summary`` object when it has one, else the
    whole document less the recogniser set and the per-unit id lists."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: the dataset export's manifest is not readable JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ModelError(f"{path}: the dataset export's manifest must be a JSON object")
    summary = doc["summary"] if isinstance(doc.get("summary"), dict) else doc
    pruned: dict[str, Any] = _prune(summary)
    return pruned


def load_dataset(data_yaml: Path) -> DetectionDataset:
    """Read and check ``DIR/data.yaml`` and the files it names (no torch needed).

    A relative ``path:`` is taken relative to the data.yaml's folder (not ultralytics' ``datasets_dir``).
    """
    data_yaml = data_yaml.expanduser().resolve()
    try:
        raw = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(
            f"{data_yaml}: dataset file not found (expected DIR/data.yaml from `appliance training export`)"
        ) from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelError(f"{data_yaml}: not a readable YAML dataset file: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelError(f"{data_yaml}: a dataset file is a YAML mapping (path, train, val, names)")
    base = raw.get("path")
    root = data_yaml.parent if base in (None, "") else (data_yaml.parent / str(base)).resolve()
    names = _names(raw.get("names"), data_yaml)
    dirs: dict[str, Path] = {}
    images: dict[str, list[Path]] = {}
    for split in ("train", "val"):
        rel = raw.get(split)
        if not isinstance(rel, str) or not rel:
            raise ModelError(f"{data_yaml}: `{split}:` must name the {split} image folder (e.g. images/{split})")
        folder = (root / rel).resolve()
        if not folder.is_dir():
            raise ModelError(f"{data_yaml}: {split} folder {folder} not found")
        found = _images(folder)
        if not found:
            raise ModelError(f"{data_yaml}: no images ({', '.join(IMAGE_SUFFIXES)}) in the {split} folder {folder}")
        dirs[split], images[split] = folder, found
    boxes = {split: _count_boxes(images[split], names, data_yaml) for split in ("train", "val")}
    if not any(boxes["train"].values()):
        raise ModelError(f"{data_yaml}: the train split has no labelled boxes (labels/train/*.txt)")
    export_manifest = data_yaml.parent.parent / "manifest.json"
    export = _export_summary(export_manifest) if export_manifest.is_file() else {}
    return DetectionDataset(
        data_yaml=data_yaml,
        root=root,
        train_dir=dirs["train"],
        val_dir=dirs["val"],
        names=names,
        train_images=len(images["train"]),
        val_images=len(images["val"]),
        boxes=boxes,
        val_sha256=_split_hash(images["val"], root),
        export=export,
        export_manifest=export_manifest if export_manifest.is_file() else None,
    )


def val_images(dataset: DetectionDataset) -> list[Path]:
    return _images(dataset.val_dir)


# ------------------------------------------------------------------------------ preprocessing


def letterbox(image_bgr: np.ndarray, imgsz: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """An image as the exported detector takes it: ultralytics' letterbox for a fixed-size model.

    Resize keeping the aspect ratio so the longer side is ``imgsz``, pad to ``imgsz`` x ``imgsz``
    with grey 114 (centred), BGR -> RGB, scale 1/255, NCHW float32. Returns (input, scale, (pad_x,
    pad_y)): a box (x, y) in the input maps back to ((x - pad_x) / scale, (y - pad_y) / scale).
    """
    h, w = image_bgr.shape[:2]
    scale = min(imgsz / h, imgsz / w)
    new_w, new_h = round(w * scale), round(h * scale)
    pad_x, pad_y = (imgsz - new_w) / 2, (imgsz - new_h) / 2
    resized = (
        cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR) if (new_w, new_h) != (w, h) else image_bgr
    )
    top, bottom = round(pad_y - 0.1), round(pad_y + 0.1)
    left, right = round(pad_x - 0.1), round(pad_x + 0.1)
    padded = cv2.copyMakeBorder(
        resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE, PAD_VALUE, PAD_VALUE)
    )
    rgb = cv2.cvtColor(padded, cv2.COLOR_BGR2RGB)
    tensor = (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    return np.ascontiguousarray(tensor), scale, (pad_x, pad_y)


# ------------------------------------------------------------------------------- environment


def _font_source() -> Path:
    for path in FONT_SOURCES:
        if path.is_file():
            return path
    spec = importlib.util.find_spec("matplotlib")  # an ultralytics dependency that ships DejaVu Sans
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if bundled.is_file():
            return bundled
    raise ApplianceError(
        "no local TTF font for ultralytics (it would download Arial.ttf): install fonts-dejavu-core "
        f"({FONT_SOURCES[0]})"
    )


def _place_fonts(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    source: Path | None = None
    for name in FONT_NAMES:
        target = folder / name
        if not target.is_file():
            source = source or _font_source()
            tmp = target.with_suffix(".tmp")
            shutil.copyfile(source, tmp)
            tmp.replace(target)


def _default_config_dir() -> Path:
    candidate = PROJECT_ROOT / "var" / "ultralytics"
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        if os.access(candidate, os.W_OK):
            return candidate
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"gate-appliance-ultralytics-{os.getuid()}"


def offline_environment() -> Path:
    """Make ultralytics offline before it is imported; return its settings folder (with the fonts in it).

    ``YOLO_CONFIG_DIR`` is kept when the operator set it, else ``var/ultralytics`` of the project
    (a temp folder when that is not writable). ultralytics reads it once, at import.
    """
    runtime_env.apply()
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    config_dir = Path(os.environ.get("YOLO_CONFIG_DIR") or _default_config_dir())
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    settings = config_dir / "Ultralytics"
    _place_fonts(settings)
    return settings


def _import_ultralytics() -> Any:
    """``ultralytics`` (offline), with fonts where the imported copy looks and its event sync off."""
    offline_environment()
    try:
        import ultralytics
        from ultralytics.utils import SETTINGS, USER_CONFIG_DIR
    except ImportError as exc:
        raise ApplianceError(
            f"training needs the train extra (torch, ultralytics): pip install -e '.[train]' ({exc})"
        ) from exc
    # ultralytics may have been imported earlier with another config folder: put the fonts where it looks.
    _place_fonts(Path(USER_CONFIG_DIR))
    if SETTINGS.get("sync") is not False:
        SETTINGS.update({"sync": False})  # no usage events (they would not get out anyway)
    return ultralytics


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


# ----------------------------------------------------------------------------------- training


def _resolve_model(model: str) -> tuple[str, dict[str, Any]]:
    """A model yaml (built from scratch) or a local checkpoint; never something to download."""
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix.lower() in (".yaml", ".yml"):
            return str(path.resolve()), {
                "architecture": str(path.resolve()),
                "initial_weights": "none (random initialisation)",
            }
        return str(path.resolve()), {"derived_from": str(path.resolve()), "derived_from_sha256": sha256_file(path)}
    if path.suffix.lower() in (".yaml", ".yml") and len(path.parts) == 1:
        # An architecture that ships inside ultralytics (yolov8n.yaml, yolo11n.yaml, ...).
        return model, {"architecture": model, "initial_weights": "none (random initialisation)"}
    raise ModelError(
        f"{model}: no such local checkpoint; give a model yaml (e.g. yolov8n.yaml, trained from scratch) or the "
        "path of a .pt file on this machine (nothing is downloaded)"
    )


def _next_version(store: ModelStore, name: str) -> str:
    base = store.root / TASK / name
    numbers = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.is_dir() else []
    return str(max(numbers, default=0) + 1)


def _work_data_yaml(dataset: DetectionDataset, work: Path) -> Path:
    """The dataset file ultralytics reads: absolute paths, so its ``datasets_dir`` setting never applies."""
    path = work / "data.yaml"
    doc = {
        "path": str(dataset.root),
        "train": str(dataset.train_dir),
        "val": str(dataset.val_dir),
        "names": dict(enumerate(dataset.names)),
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _metrics(results: dict[str, Any]) -> dict[str, float]:
    missing = [key for key, _ in METRICS if key not in results]
    if missing:
        raise ModelError(f"ultralytics validation reported no {missing} (got {sorted(results)})")
    return {name: float(results[key]) for key, name in METRICS}


def _tensor_specs(args: list[Any]) -> list[TensorSpec]:
    from appliance.inference.contracts import GraphTensor

    specs = []
    for arg in args:
        tensor = GraphTensor.from_ort(arg)
        shape: list[int | str] = [d if isinstance(d, int) else (d or f"dim{i}") for i, d in enumerate(tensor.shape)]
        specs.append(TensorSpec(name=tensor.name, dtype=tensor.dtype, shape=shape))
    return specs


def _graph_specs(model_path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    return _tensor_specs(session.get_inputs()), _tensor_specs(session.get_outputs())


def _write_manifest(path: Path, manifest: ModelManifest, header: str) -> None:
    data = manifest.model_dump(exclude_none=True)
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8")


def training_command(
    data_yaml: Path, name: str, model: str, epochs: int, imgsz: int, batch: int, seed: int, device: str
) -> str:
    """The CLI line that trains the same model (what the manifest's ``training.command`` records)."""
    words = [
        "appliance",
        "train",
        "detector",
        "--data",
        str(data_yaml),
        "--name",
        name,
        "--model",
        model,
        "--epochs",
        str(epochs),
        "--imgsz",
        str(imgsz),
        "--batch",
        str(batch),
        "--seed",
        str(seed),
    ]
    if device != "cpu":
        words += ["--device", device]
    return shlex.join(words)


def _check_install_policy(policy: ValidationPolicy | None, key: Path | None) -> None:
    """Refuse before training what the install would refuse after it (hours of CPU for nothing)."""
    from appliance.inference.signing import load_trusted_keys

    kid = keys.key_id(keys.load_signing_key(key, ModelError).public_key()) if key is not None else None
    if policy is None:
        return
    if kid is None:
        if not policy.allow_unsigned:
            raise ModelError("the config refuses unsigned models (models.allow_unsigned is false): give --key "
                             "PRIVATE_PEM whose public half is in models.trusted_keys")
        return
    trusted = load_trusted_keys(policy.trusted_keys)
    if kid not in trusted:
        raise ModelError(f"{key}: key {kid} is not in the config's models.trusted_keys "
                         f"({', '.join(sorted(trusted)) or 'none'}); the install would refuse the model")


def train_detector(
    data_yaml: Path,
    store: ModelStore,
    *,
    name: str = "lane-objects",
    model_yaml: str = "yolov8n.yaml",
    epochs: int = 30,
    imgsz: int = 320,
    batch: int = 16,
    seed: int = 0,
    device: str = "cpu",
    policy: ValidationPolicy | None = None,
    key: Path | None = None,
    work_dir: Path | None = None,
    progress: Callable[[str], None] = print,
) -> ModelRef:
    """Train, validate, export and install a detector; return the installed (not activated) version.

    ``policy``: how the package is validated on install (a config's ``validation_policy``); None
    allows unsigned packages (development) and trusts ``key`` when one signs it. ``work_dir``: keep
    ultralytics' run there (weights, results.csv, the package before install); default a temp folder.
    """
    if epochs < 1 or imgsz < 32 or imgsz % 32 or batch < 1:
        raise ModelError(
            f"epochs >= 1, imgsz a multiple of 32 (>= 32) and batch >= 1 needed; got epochs {epochs}, "
            f"imgsz {imgsz}, batch {batch}"
        )
    _check_install_policy(policy, key)
    dataset = load_dataset(data_yaml)
    model_arg, origin = _resolve_model(model_yaml)
    _import_ultralytics()
    from ultralytics import YOLO

    keep = work_dir is not None
    work = work_dir.resolve() if work_dir is not None else Path(tempfile.mkdtemp(prefix="train-detector-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        data = _work_data_yaml(dataset, work)
        runs = work / "runs"
        common: dict[str, Any] = {
            "imgsz": imgsz,
            "batch": batch,
            "device": device,
            "workers": 0,
            "plots": False,
            "project": str(runs),
            "exist_ok": True,
        }

        progress(
            f"train: {model_yaml} on {dataset.data_yaml} ({dataset.train_images} train / {dataset.val_images} "
            f"val images, {len(dataset.names)} classes), {epochs} epoch(s) at {imgsz} px, batch {batch}, "
            f"seed {seed}, {device}"
        )
        started = time.perf_counter()
        model = YOLO(model_arg)
        model.train(
            data=str(data), epochs=epochs, seed=seed, deterministic=True, amp=False, cache=False, name="train", **common
        )
        train_s = time.perf_counter() - started
        trainer = model.trainer
        if trainer is None:
            raise ModelError("ultralytics returned without a trainer: training did not run")
        best = Path(trainer.best) if Path(trainer.best).is_file() else Path(trainer.last)
        progress(f"train: done in {train_s:.1f} s; weights {best}")

        progress(f"validate: {best.name} on the val split ({dataset.val_images} images)")
        trained = YOLO(str(best))
        results = trained.val(data=str(data), split="val", name="val", **common)
        metrics = _metrics(dict(results.results_dict))
        progress("validate: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) + f" on {dataset.eval_set}")

        simplify = importlib.util.find_spec("onnxslim") is not None
        progress(
            f"export: ONNX opset {ONNX_OPSET}, batch 1, {imgsz}x{imgsz}, "
            f"{'simplified with onnxslim' if simplify else 'not simplified (onnxslim not installed)'}"
        )
        with warnings.catch_warnings():
            # torch's TorchScript exporter (the one ultralytics uses) says it is deprecated, and that the head's
            # shape check is traced as a constant (it is: the graph has a fixed input size).
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean")
            exported = Path(trained.export(format="onnx", imgsz=imgsz, opset=ONNX_OPSET, simplify=simplify,
                                           dynamic=False, nms=False, device=device))
        version = _next_version(store, name)
        folder = work / "package" / TASK / name / version
        folder.mkdir(parents=True)
        model_file = folder / "model.onnx"
        shutil.copyfile(exported, model_file)
        inputs, outputs = _graph_specs(model_file)
        progress(
            f"export: {model_file.stat().st_size / 1e6:.1f} MB; "
            + ", ".join(f"{s.name} {s.shape}" for s in inputs)
            + " -> "
            + ", ".join(f"{s.name} {s.shape}" for s in outputs)
        )

        training: dict[str, Any] = {
            "command": training_command(dataset.data_yaml, name, model_yaml, epochs, imgsz, batch, seed, device),
            **origin,
            "epochs": epochs,
            "imgsz": imgsz,
            "batch": batch,
            "seed": seed,
            "device": device,
            "deterministic": True,
            "wall_time_s": round(train_s, 1),
            "torch": _version("torch"),
            "torchvision": _version("torchvision"),
            "ultralytics": _version("ultralytics"),
            "onnx": _version("onnx"),
            "onnxslim": _version("onnxslim") if simplify else None,
            "onnx_opset": ONNX_OPSET,
            "validation": "ultralytics val of the best weights on the val split (conf 0.001, iou 0.7)",
            "dataset": dataset.summary(),
        }
        manifest = ModelManifest(
            name=name,
            task=TASK,
            version=version,
            file=model_file.name,
            sha256=sha256_file(model_file),
            licence=LICENCE,
            inputs=inputs,
            outputs=outputs,
            preprocess={
                "imgsz": imgsz,
                "letterbox": True,
                "pad_value": PAD_VALUE,
                "scale": 1 / 255,
                "channel_order": "RGB",
                "layout": "NCHW",
            },
            thresholds=dict(THRESHOLDS),
            labels=list(dataset.names),
            metrics=metrics,
            eval_set=dataset.eval_set,
            golden=GOLDEN,
            training={k: v for k, v in training.items() if v is not None},
        )
        header = (
            f"# {name} v{version}: object detector trained by `appliance train detector` "
            f"({model_yaml}, {epochs} epochs, seed {seed}). Licence: AGPL-3.0 (ultralytics).\n"
        )
        _write_manifest(folder / "manifest.yaml", manifest, header)
        manifest = load_manifest(folder / "manifest.yaml")

        cases = val_images(dataset)[:GOLDEN_CASES]
        progress(f"golden: {len(cases)} case(s) from val images {', '.join(p.name for p in cases)}")
        _golden(folder, manifest, cases, imgsz)

        install_policy = policy or ValidationPolicy(allow_unsigned=True)
        if key is not None:
            from appliance.inference.signing import sign_package

            signature = sign_package(folder, key)
            progress(f"install: signed with key {json.loads(signature.read_text(encoding='utf-8'))['key_id']}")
            if policy is None:  # development: trust the key that just signed it
                public = work / "signing.pub.pem"
                public.write_bytes(keys.public_key_pem(keys.load_signing_key(key, ModelError).public_key()))
                install_policy = ValidationPolicy(trusted_keys=(public,), allow_unsigned=True)
        from appliance.inference.install import install_package

        ref = install_package(folder, store, install_policy)
        progress(
            f"install: {ref.task}/{ref.name} v{ref.version} in {ref.folder} (validated; a candidate, not activated: "
            f"no lane analyzer serves {ref.task} yet)"
        )
        return ref
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _golden(folder: Path, manifest: ModelManifest, images: list[Path], imgsz: int) -> None:
    from appliance.inference.golden import make_golden

    if not images:
        raise ModelError(f"{folder}: no val images for golden cases")
    model = OnnxModel(folder / manifest.file, manifest)
    (input_name,) = model.input_names
    cases = []
    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ModelError(f"{path}: cannot read the val image for a golden case")
        cases.append({input_name: letterbox(image, imgsz)[0]})
    make_golden(folder, model, cases)
