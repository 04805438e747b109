"""Readers for the label files of the evaluation sets (``../shared/eval``).

One small frozen dataclass per row. A malformed row raises :class:`LabelError` naming the
file and the row (1-based, counting the header as row 1 for CSV files and lines for
JSONL files). The images themselves are never read here.

Sets:

- ``qr/labels.csv``: :func:`read_qr_labels` (``expected_text`` may span several lines;
  the ``metadata`` column holds zxing's ``KEY=VALUE`` lines; a ``label_errata.csv`` next
  to it, if any, is applied like the containers' one).
- ``qr/zxing_expected_pass_counts.csv``: :func:`read_zxing_pass_counts`.
- ``plates/labels.jsonl`` (or ``labels.csv``): :func:`read_plate_labels`;
  ``plates/vn_silver/labels.csv``: :func:`read_vn_silver_labels` (another OCR's output,
  not ground truth).
- ``containers/labels.csv`` + ``label_errata.csv``: :func:`read_container_labels`, which
  applies the errata's ``suggested`` values and says so on each corrected label;
  ``containers/seals/labels.csv``: :func:`read_seal_labels`.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from appliance.errors import ApplianceError

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]


class LabelError(ApplianceError):
    """A label file is missing, unreadable, or has a malformed row."""


# -- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QrLabel:
    """One image of ``qr/`` and the text of the one symbol its label is about."""

    file: str
    group: str
    format: str  # zxing (Java) name: QR_CODE, EAN_13, CODE_128, ...
    expected_text: str
    metadata: tuple[tuple[str, str], ...] = ()
    source_repo: str = ""
    source_path: str = ""
    label_path: str = ""
    corrections: tuple[str, ...] = ()

    def meta(self, key: str) -> str | None:
        for name, value in self.metadata:
            if name == key:
                return value
        return None

    @property
    def sequence_size(self) -> int | None:
        """Symbols in the structured-append sequence the label text was merged from."""
        value = self.meta("sequenceSize")
        return int(value) if value is not None and value.lstrip("-").isdigit() else None

    @property
    def is_structured_append(self) -> bool:
        size = self.sequence_size
        return size is not None and size > 1


@dataclass(frozen=True)
class ZxingPassCount:
    """zxing's own minimum pass count for one test folder and rotation."""

    group: str
    test_class: str
    must_pass: int
    try_harder_must_pass: int
    rotation_deg: float
    images_in_zxing_folder: int


@dataclass(frozen=True)
class PlateLabel:
    """A plate scene (with a box) or a plate crop (no box)."""

    file: str
    kind: Literal["scene", "crop"]
    country: str
    plate_text: str
    bbox: Box | None = None  # x, y, w, h
    polygon: tuple[tuple[int, int], ...] | None = None
    source_repo: str = ""
    source_path: str = ""
    label_path: str = ""
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class VnSilverLabel:
    """A Vietnamese plate crop whose text is another OCR's output (smoke tests only)."""

    file: str
    subset: str
    plate_text_ocr: str
    label_quality: str
    source_repo: str = ""
    source_path: str = ""


@dataclass(frozen=True)
class TextRegion:
    cls: int  # 0 container number, 1 size/type or owner part, -1 other (source's classes)
    text: str
    bbox_xyxy: Box


@dataclass(frozen=True)
class SealBox:
    state: str
    bbox_xyxy: Box


@dataclass(frozen=True)
class ContainerLabel:
    """One gate-camera view of a container; errata already applied.

    ``corrections`` lists ``field: source -> suggested`` for every erratum applied to
    this row; ``check_digit_valid`` is recomputed (ISO 6346) after corrections.
    """

    file: str
    event_id: str
    view: str
    labelled: bool
    container_number: str
    check_digit_valid: bool
    size_type: str | None
    regions: tuple[TextRegion, ...] = ()
    seals: tuple[SealBox, ...] = ()
    corrections: tuple[str, ...] = ()


@dataclass(frozen=True)
class SealLabel:
    file: str
    state: Literal["sealed", "unsealed"]
    event_id: str
    view: str
    source_path: str = ""


# -- QR -----------------------------------------------------------------------------------

_QR_COLUMNS = ("file", "group", "format", "expected_text")


def read_qr_labels(path: Path, apply_errata: bool = True) -> tuple[QrLabel, ...]:
    """``qr/labels.csv`` (or the folder holding it), with ``label_errata.csv`` applied if present.

    Only ``expected_text`` can be corrected; corrected labels list their corrections.
    """
    path = _file_in(path, "labels.csv")
    errata = _Errata.load(path, ("expected_text",)) if apply_errata else _Errata.empty(path)
    labels: list[QrLabel] = []
    for row_no, row in _csv_rows(path, _QR_COLUMNS):
        file = _required(row, "file", path, row_no)
        values, corrections = errata.apply(file, {"expected_text": row["expected_text"]})
        labels.append(
            QrLabel(
                file=file,
                group=_required(row, "group", path, row_no),
                format=_required(row, "format", path, row_no),
                expected_text=values["expected_text"],
                metadata=_parse_metadata(row.get("metadata") or ""),
                source_repo=row.get("source_repo") or "",
                source_path=row.get("source_path") or "",
                label_path=row.get("label_path") or "",
                corrections=corrections,
            )
        )
    errata.check_all_used()
    _check_unique(labels, path)
    return tuple(labels)


def _parse_metadata(text: str) -> tuple[tuple[str, str], ...]:
    """zxing's ``KEY=VALUE`` lines; ``#`` lines are comments."""
    pairs: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def read_zxing_pass_counts(path: Path) -> tuple[ZxingPassCount, ...]:
    """``qr/zxing_expected_pass_counts.csv`` (or the folder holding it)."""
    path = _file_in(path, "zxing_expected_pass_counts.csv")
    columns = ("group", "test_class", "must_pass", "try_harder_must_pass", "rotation_deg", "images_in_zxing_folder")
    counts: list[ZxingPassCount] = []
    for row_no, row in _csv_rows(path, columns):
        counts.append(
            ZxingPassCount(
                group=_required(row, "group", path, row_no),
                test_class=row["test_class"],
                must_pass=_int(row, "must_pass", path, row_no),
                try_harder_must_pass=_int(row, "try_harder_must_pass", path, row_no),
                rotation_deg=_float(row, "rotation_deg", path, row_no),
                images_in_zxing_folder=_int(row, "images_in_zxing_folder", path, row_no),
            )
        )
    return tuple(counts)


# -- plates -------------------------------------------------------------------------------


def read_plate_labels(path: Path) -> tuple[PlateLabel, ...]:
    """``plates/labels.jsonl`` (preferred) or ``plates/labels.csv``, or their folder."""
    if path.is_dir():
        jsonl = path / "labels.jsonl"
        path = jsonl if jsonl.exists() else path / "labels.csv"
    if path.suffix == ".jsonl":
        labels = [_plate_from_json(obj, path, n) for n, obj in _jsonl_rows(path)]
    else:
        labels = [_plate_from_csv(row, path, n) for n, row in _csv_rows(path, ("file", "kind", "plate_text"))]
    _check_unique(labels, path)
    return tuple(labels)


def _plate_from_json(obj: Mapping[str, object], path: Path, row_no: int) -> PlateLabel:
    kind = _kind(obj.get("kind"), path, row_no)
    bbox = obj.get("bbox")
    polygon = obj.get("polygon")
    extra = obj.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise _error(path, row_no, f"extra must be an object or null, got {type(extra).__name__}")
    return PlateLabel(
        file=_str_field(obj, "file", path, row_no),
        kind=kind,
        country=_str_field(obj, "country", path, row_no),
        plate_text=_str_field(obj, "plate_text", path, row_no),
        bbox=None if bbox is None else _box(bbox, path, row_no, "bbox"),
        polygon=None if polygon is None else _polygon(polygon, path, row_no),
        source_repo=str(obj.get("source_repo") or ""),
        source_path=str(obj.get("source_path") or ""),
        label_path=str(obj.get("label_path") or ""),
        extra=tuple(sorted((str(k), str(v)) for k, v in (extra or {}).items())),
    )


def _plate_from_csv(row: Mapping[str, str], path: Path, row_no: int) -> PlateLabel:
    xywh = [row.get(k, "") for k in ("x", "y", "w", "h")]
    if all(v == "" for v in xywh):
        bbox: Box | None = None
    else:
        bbox = _box([_int(row, k, path, row_no) for k in ("x", "y", "w", "h")], path, row_no, "bbox")
    polygon_text = row.get("polygon") or ""
    polygon = _polygon(_json_field(polygon_text, path, row_no, "polygon"), path, row_no) if polygon_text else None
    return PlateLabel(
        file=_required(row, "file", path, row_no),
        kind=_kind(row.get("kind"), path, row_no),
        country=row.get("country") or "",
        plate_text=_required(row, "plate_text", path, row_no),
        bbox=bbox,
        polygon=polygon,
        source_repo=row.get("source_repo") or "",
        source_path=row.get("source_path") or "",
    )


def read_vn_silver_labels(path: Path) -> tuple[VnSilverLabel, ...]:
    """``plates/vn_silver/labels.csv``: OCR output, about 1 in 12 wrong; smoke tests only."""
    path = _file_in(path, "labels.csv")
    labels = [
        VnSilverLabel(
            file=_required(row, "file", path, n),
            subset=row.get("subset") or "",
            plate_text_ocr=_required(row, "plate_text_ocr", path, n),
            label_quality=row.get("label_quality") or "",
            source_repo=row.get("source_repo") or "",
            source_path=row.get("source_path") or "",
        )
        for n, row in _csv_rows(path, ("file", "plate_text_ocr"))
    ]
    _check_unique(labels, path)
    return tuple(labels)


# -- containers ---------------------------------------------------------------------------

_CONTAINER_ERRATA_FIELDS = ("container_number", "size_type")


def read_container_labels(path: Path, apply_errata: bool = True) -> tuple[ContainerLabel, ...]:
    """``containers/labels.csv`` with ``label_errata.csv`` (next to it) applied.

    Every corrected label lists its corrections; an erratum whose ``source_label`` does
    not match the row, or that names no row, raises :class:`LabelError`.
    """
    path = _file_in(path, "labels.csv")
    errata = _Errata.load(path, _CONTAINER_ERRATA_FIELDS) if apply_errata else _Errata.empty(path)
    labels: list[ContainerLabel] = []
    for row_no, row in _csv_rows(path, ("file", "container_number", "regions_json")):
        file = _required(row, "file", path, row_no)
        values, corrections = errata.apply(file, {name: row.get(name) or "" for name in _CONTAINER_ERRATA_FIELDS})
        labels.append(_container(row, values, corrections, path, row_no))
    errata.check_all_used()
    _check_unique(labels, path)
    return tuple(labels)


@dataclass
class _Errata:
    """``label_errata.csv`` rows (file, field, source_label, suggested) for one label file."""

    labels: Path
    path: Path
    fixes: dict[tuple[str, str], tuple[str, str, int]]
    used: set[tuple[str, str]]

    @classmethod
    def empty(cls, labels: Path) -> _Errata:
        return cls(labels, labels.parent / "label_errata.csv", {}, set())

    @classmethod
    def load(cls, labels: Path, fields: tuple[str, ...]) -> _Errata:
        errata = cls.empty(labels)
        if not errata.path.exists():
            return errata
        for row_no, row in _csv_rows(errata.path, ("file", "field", "source_label", "suggested")):
            name = _required(row, "field", errata.path, row_no)
            if name not in fields:
                raise _error(errata.path, row_no, f"field {name!r} cannot be corrected (known: {', '.join(fields)})")
            key = (_required(row, "file", errata.path, row_no), name)
            if key in errata.fixes:
                raise _error(errata.path, row_no, f"a second erratum for {key[0]} {name}")
            errata.fixes[key] = (row["source_label"], _required(row, "suggested", errata.path, row_no), row_no)
        return errata

    def apply(self, file: str, values: dict[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
        """``values`` with this file's errata applied, and a line per correction."""
        corrections: list[str] = []
        for name in list(values):
            fix = self.fixes.get((file, name))
            if fix is None:
                continue
            source, suggested, row_no = fix
            if values[name] != source:
                raise _error(
                    self.path,
                    row_no,
                    f"erratum for {file} {name} expects {source!r} but the label says {values[name]!r}",
                )
            values[name] = suggested
            corrections.append(f"{name}: {_short(source)} -> {_short(suggested)} (label_errata.csv row {row_no})")
            self.used.add((file, name))
        return values, tuple(corrections)

    def check_all_used(self) -> None:
        for (file, name), (_, _, row_no) in self.fixes.items():
            if (file, name) not in self.used:
                raise _error(self.path, row_no, f"erratum names {file} {name}, not in {self.labels.name}")
        if self.used:
            log.info("labels: applied %d erratum/errata from %s to %s", len(self.used), self.path, self.labels)


def _short(text: str, limit: int = 80) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _container(
    row: Mapping[str, str], values: Mapping[str, str], corrections: tuple[str, ...], path: Path, row_no: int
) -> ContainerLabel:
    number = values["container_number"].strip()
    # A corrected number is judged again; otherwise the source's own flag stands.
    valid = iso6346_check_digit_ok(number) if corrections else _bool(row, "check_digit_valid", path, row_no)
    return ContainerLabel(
        file=row["file"],
        event_id=row.get("event_id") or "",
        view=row.get("view") or "",
        labelled=_bool(row, "labelled", path, row_no) if row.get("labelled") else bool(number),
        container_number=number,
        check_digit_valid=valid,
        size_type=values["size_type"].strip() or None,
        regions=_regions(row.get("regions_json") or "", path, row_no),
        seals=_seals(row.get("seals_json") or "", path, row_no),
        corrections=corrections,
    )


def _regions(text: str, path: Path, row_no: int) -> tuple[TextRegion, ...]:
    if not text:
        return ()
    items = _json_field(text, path, row_no, "regions_json")
    if not isinstance(items, list):
        raise _error(path, row_no, "regions_json must be a JSON list")
    regions: list[TextRegion] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("cls"), int) or not isinstance(item.get("text"), str):
            raise _error(path, row_no, "each region needs an integer cls, a text and a bbox_xyxy")
        regions.append(TextRegion(item["cls"], item["text"], _box(item.get("bbox_xyxy"), path, row_no, "bbox_xyxy")))
    return tuple(regions)


def _seals(text: str, path: Path, row_no: int) -> tuple[SealBox, ...]:
    if not text:
        return ()
    items = _json_field(text, path, row_no, "seals_json")
    if not isinstance(items, list):
        raise _error(path, row_no, "seals_json must be a JSON list")
    seals: list[SealBox] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("state"), str):
            raise _error(path, row_no, "each seal needs a state and a bbox_xyxy")
        seals.append(SealBox(item["state"], _box(item.get("bbox_xyxy"), path, row_no, "bbox_xyxy")))
    return tuple(seals)


def read_seal_labels(path: Path) -> tuple[SealLabel, ...]:
    """``containers/seals/labels.csv`` (or its folder)."""
    path = _file_in(path, "labels.csv")
    labels: list[SealLabel] = []
    for row_no, row in _csv_rows(path, ("file", "state")):
        state = row["state"]
        if state not in ("sealed", "unsealed"):
            raise _error(path, row_no, f"state must be sealed or unsealed, got {state!r}")
        labels.append(
            SealLabel(
                file=_required(row, "file", path, row_no),
                state="sealed" if state == "sealed" else "unsealed",
                event_id=row.get("event_id") or "",
                view=row.get("view") or "",
                source_path=row.get("source_path") or "",
            )
        )
    _check_unique(labels, path)
    return tuple(labels)


_ISO6346_LETTERS = {
    ch: value
    for ch, value in zip(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        [v for v in range(10, 39) if v % 11],
        strict=True,
    )
}


def iso6346_check_digit_ok(number: str) -> bool:
    """True when ``number`` is 4 letters, 7 digits and its ISO 6346 check digit holds."""
    if len(number) != 11 or not number[:4].isalpha() or not number[4:].isdigit() or not number.isascii():
        return False
    values = [_ISO6346_LETTERS[ch] for ch in number[:4].upper()] + [int(ch) for ch in number[4:10]]
    total = sum(value << i for i, value in enumerate(values))
    return total % 11 % 10 == int(number[10])


# -- helpers ------------------------------------------------------------------------------


def _file_in(path: Path, name: str) -> Path:
    path = path / name if path.is_dir() else path
    if not path.is_file():
        raise LabelError(f"label file not found: {path}")
    return path


def _error(path: Path, row_no: int, what: str) -> LabelError:
    return LabelError(f"{path}, row {row_no}: {what}")


def _csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number, row) pairs; the header is row 1, and rows count records, not lines."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle, strict=True)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise _error(path, 1, f"missing column(s) {', '.join(missing)}")
            index = 1
            try:
                for index, row in enumerate(reader, start=2):
                    if None in row or any(v is None for v in row.values()):
                        raise _error(path, index, f"expected {len(header)} fields, got a different number")
                    yield index, row
            except csv.Error as exc:
                raise _error(path, index + 1, f"malformed CSV ({exc}) near line {reader.line_num}") from exc
    except UnicodeDecodeError as exc:
        raise LabelError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise LabelError(f"{path}: cannot read ({exc})") from exc


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    try:
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise _error(path, line_no, f"not JSON ({exc.msg})") from exc
                if not isinstance(obj, dict):
                    raise _error(path, line_no, "each line must be a JSON object")
                yield line_no, obj
    except UnicodeDecodeError as exc:
        raise LabelError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise LabelError(f"{path}: cannot read ({exc})") from exc


def _required(row: Mapping[str, str | None], key: str, path: Path, row_no: int) -> str:
    value = row.get(key)
    if value is None or not value.strip():
        raise _error(path, row_no, f"{key} is empty")
    return value


def _str_field(obj: Mapping[str, object], key: str, path: Path, row_no: int) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise _error(path, row_no, f"{key} must be a non-empty string")
    return value


def _int(row: Mapping[str, str], key: str, path: Path, row_no: int) -> int:
    try:
        return int(row[key])
    except (KeyError, ValueError) as exc:
        raise _error(path, row_no, f"{key} must be an integer, got {row.get(key)!r}") from exc


def _float(row: Mapping[str, str], key: str, path: Path, row_no: int) -> float:
    try:
        return float(row[key])
    except (KeyError, ValueError) as exc:
        raise _error(path, row_no, f"{key} must be a number, got {row.get(key)!r}") from exc


def _bool(row: Mapping[str, str], key: str, path: Path, row_no: int) -> bool:
    value = (row.get(key) or "").strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise _error(path, row_no, f"{key} must be True or False, got {row.get(key)!r}")


def _kind(value: object, path: Path, row_no: int) -> Literal["scene", "crop"]:
    if value == "scene":
        return "scene"
    if value == "crop":
        return "crop"
    raise _error(path, row_no, f"kind must be scene or crop, got {value!r}")


def _json_field(text: str, path: Path, row_no: int, key: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _error(path, row_no, f"{key} is not JSON ({exc.msg})") from exc


def _box(value: object, path: Path, row_no: int, key: str) -> Box:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise _error(path, row_no, f"{key} must be 4 integers, got {value!r}")
    return int(value[0]), int(value[1]), int(value[2]), int(value[3])


def _polygon(value: object, path: Path, row_no: int) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list) or not value:
        raise _error(path, row_no, f"polygon must be a list of [x, y] points, got {value!r}")
    points: list[tuple[int, int]] = []
    for point in value:
        if not isinstance(point, list) or len(point) != 2 or not all(isinstance(v, int) for v in point):
            raise _error(path, row_no, f"polygon point must be [x, y] integers, got {point!r}")
        points.append((point[0], point[1]))
    return tuple(points)


class _HasFile(Protocol):
    @property
    def file(self) -> str: ...


def _check_unique(labels: Iterable[_HasFile], path: Path) -> None:
    seen: set[str] = set()
    for label in labels:
        if label.file in seen:
            raise LabelError(f"{path}: file {label.file} is labelled twice")
        seen.add(label.file)
