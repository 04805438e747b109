"""``appliance eval plates``: our PlateReader against plain PP-OCR on ``plates/``.

An item passes when the reader's *top* plate equals the label after normalising separators
(``-``, ``.``, ``·`` and spaces dropped, upper case). A misread is an item where the reader
returned a plate (or the baseline a line) and it is wrong; returning nothing is a miss, not a
misread. Every labelled image is evaluated; an unreadable image counts as a fail for everyone.

Baseline, measured in the same run on the same images with the same OCR engine and detector
size: "PP-OCR reading without grammar" - for a scene, the highest-confidence text line with 4
to 10 characters once separators are dropped; for a crop, the recognition of the whole crop.

``plates/vn_silver`` (Vietnamese crops) is reported in the notes as *agreement* with its labels,
which are another OCR's output (about 1 in 12 wrong): never part of the score, groups, n or
misreads (the report's table sums its groups).

The images are read at run time only; nothing is copied, cached or trained on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from appliance.analyzers.ocr import OcrEngine
from appliance.analyzers.plates import PlateReader
from appliance.eval.labels import read_plate_labels, read_vn_silver_labels
from appliance.eval.report import EvalReport, GroupResult

log = logging.getLogger(__name__)

OURS = "ours"
BASELINE = "PP-OCR without grammar"
SILVER_GROUP = "VN silver crops"
_SEPARATORS = str.maketrans("", "", "-.· ")


def normalise_label(text: str) -> str:
    """Upper case with ``-``, ``.``, ``·`` and spaces dropped (how plates are compared)."""
    return text.translate(_SEPARATORS).upper()


@dataclass(frozen=True)
class Item:
    """One image to read and what it should say."""

    file: Path
    kind: str  # "scene" | "crop"
    group: str
    expected: str


@dataclass
class _Outcome:
    returned: str  # '' when nothing was returned
    ms: float
    expected: str
    others: tuple[str, ...] = ()  # further plates returned (scenes)

    @property
    def passed(self) -> bool:
        return bool(self.returned) and normalise_label(self.returned) == normalise_label(self.expected)

    @property
    def misread(self) -> bool:
        return bool(self.returned) and not self.passed

    @property
    def anywhere(self) -> bool:
        wanted = normalise_label(self.expected)
        return any(normalise_label(t) == wanted for t in (self.returned, *self.others) if t)


@dataclass
class _Run:
    items: list[Item]
    outcomes: dict[str, list[_Outcome]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)


Reader = Callable[[np.ndarray, Item], tuple[str, tuple[str, ...]]]


def evaluate_plates(
    data_dir: Path, engine: OcrEngine | None = None, max_side: int = 960, include_silver: bool = True
) -> EvalReport:
    """Run our reader and the baseline on every labelled image of ``data_dir`` (``plates/``)."""
    engine = engine or OcrEngine.from_store()
    reader = PlateReader(engine, max_side=max_side, countries=("VN", "CN", "FOREIGN"))
    readers: dict[str, Reader] = {
        OURS: lambda image, item: _read_ours(reader, image, item),
        BASELINE: lambda image, item: _read_baseline(engine, image, item, max_side),
    }
    main = _run(_main_items(data_dir), readers)
    silver = _run(_silver_items(data_dir), readers) if include_silver and (data_dir / "vn_silver").is_dir() else None
    return _report(main, silver, max_side)


# -- items --------------------------------------------------------------------------------


def _main_items(data_dir: Path) -> list[Item]:
    return [
        Item(data_dir / label.file, label.kind, f"{label.country} {label.kind}", label.plate_text)
        for label in read_plate_labels(data_dir)
    ]


def _silver_items(data_dir: Path) -> list[Item]:
    folder = data_dir / "vn_silver"
    return [
        Item(folder / label.file, "crop", SILVER_GROUP, label.plate_text_ocr) for label in read_vn_silver_labels(folder)
    ]


# -- readers ------------------------------------------------------------------------------


def _read_ours(reader: PlateReader, image: np.ndarray, item: Item) -> tuple[str, tuple[str, ...]]:
    found = reader.find_crop(image) if item.kind == "crop" else reader.find(image)
    texts = tuple(f.text for f in found)
    return (texts[0] if texts else ""), texts[1:]


def _read_baseline(engine: OcrEngine, image: np.ndarray, item: Item, max_side: int) -> tuple[str, tuple[str, ...]]:
    if item.kind == "crop":
        recognised = engine.recognizer.recognize([image])
        return (recognised[0].text if recognised else ""), ()
    lines = [ln for ln in engine.read(image, max_side=max_side) if 4 <= len(normalise_label(ln.text)) <= 10]
    lines.sort(key=lambda ln: -ln.confidence)
    texts = tuple(ln.text for ln in lines)
    return (texts[0] if texts else ""), texts[1:]


# -- running ------------------------------------------------------------------------------


def _load(item: Item) -> np.ndarray | None:
    try:
        data = np.fromfile(str(item.file), dtype=np.uint8)
    except OSError as exc:
        log.warning("eval plates: cannot read %s (%s)", item.file, exc)
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        log.warning("eval plates: cannot decode %s", item.file)
    return image


def _run(items: Sequence[Item], readers: dict[str, Reader]) -> _Run:
    run = _Run(items=list(items), outcomes={name: [] for name in readers})
    _warm_up(items, readers)
    for item in items:
        image = _load(item)
        if image is None:
            run.unreadable.append(item.file.name)
        for name, read in readers.items():
            run.outcomes[name].append(_judge(read, image, item))
    return run


def _warm_up(items: Sequence[Item], readers: dict[str, Reader]) -> None:
    """One untimed pass on the first scene and crop, so session start-up is not timed."""
    for kind in ("scene", "crop"):
        first = next((it for it in items if it.kind == kind), None)
        image = _load(first) if first is not None else None
        if first is not None and image is not None:
            for read in readers.values():
                read(image, first)


def _judge(read: Reader, image: np.ndarray | None, item: Item) -> _Outcome:
    if image is None:
        return _Outcome("", 0.0, item.expected)
    start = time.perf_counter()
    returned, others = read(image, item)
    ms = (time.perf_counter() - start) * 1000.0
    log.debug("eval plates %s: expected %r, got %r", item.file.name, item.expected, returned)
    return _Outcome(returned, ms, item.expected, others)


# -- report -------------------------------------------------------------------------------


def _report(main: _Run, silver: _Run | None, max_side: int) -> EvalReport:
    n = len(main.items)
    ours = main.outcomes[OURS]
    groups = _groups(main)
    return EvalReport(
        task="plates",
        metric="share of images whose top plate equals the label (separators -.· and spaces ignored, upper case)",
        score=sum(o.passed for o in ours) / n if n else 0.0,
        n=n,
        misreads=sum(o.misread for o in ours),
        ms_per_item=sum(o.ms for o in ours) / n if n else 0.0,
        baselines={BASELINE: sum(o.passed for o in main.outcomes[BASELINE]) / n if n else 0.0},
        groups=groups,
        notes=_notes(main, silver, max_side),
    )


def _groups(run: _Run) -> list[GroupResult]:
    by_group: dict[str, list[int]] = {}
    for index, item in enumerate(run.items):
        by_group.setdefault(item.group, []).append(index)
    results: list[GroupResult] = []
    for name in sorted(by_group):
        idx = by_group[name]
        ours = [run.outcomes[OURS][i] for i in idx]
        base = [run.outcomes[BASELINE][i] for i in idx]
        results.append(
            GroupResult(
                name=name,
                n=len(idx),
                passed=sum(o.passed for o in ours),
                misreads=sum(o.misread for o in ours),
                ms_per_item=sum(o.ms for o in ours) / len(idx),
                baselines={BASELINE: sum(o.passed for o in base)},
                baseline_misreads={BASELINE: sum(o.misread for o in base)},
                baseline_ms={BASELINE: sum(o.ms for o in base) / len(idx)},
            )
        )
    return results


def _notes(main: _Run, silver: _Run | None, max_side: int) -> list[str]:
    n = len(main.items)
    text = f"{n} labelled images, all evaluated"
    if main.unreadable:
        text += f"; {len(main.unreadable)} unreadable (fails for all): {', '.join(main.unreadable)}"
    notes = [text]
    scenes = [i for i, item in enumerate(main.items) if item.kind == "scene"]
    if scenes:
        anywhere = {name: sum(outs[i].anywhere for i in scenes) for name, outs in main.outcomes.items()}
        notes.append(
            f"scenes: the label is among all returned plates/lines (any rank) for ours {anywhere[OURS]}, "
            f"baseline {anywhere[BASELINE]} of {len(scenes)}; the score counts the top one only"
        )
    notes.append(
        f"text detector max_side {max_side} for ours and the baseline; our reader runs with countries "
        "VN, CN and FOREIGN (the set holds EU/US/BR plates): foreign plates use a few national "
        "letter/digit formats and a generic 4-8 character fallback that needs a letter and a digit, "
        "so all-letter vanity plates cannot pass"
    )
    misread = [(item, o) for item, o in zip(main.items, main.outcomes[OURS], strict=True) if o.misread]
    if misread:
        notes.append("our misreads: " + "; ".join(f"{it.file.name}: {o.expected} -> {o.returned}" for it, o in misread))
    if silver is not None and silver.items:
        notes.extend(_silver_notes(silver))
    return notes


def _silver_notes(silver: _Run) -> list[str]:
    notes = []
    for group in _groups(silver):
        ours_ms = group.ms_per_item
        notes.append(
            f"{SILVER_GROUP} (NOT ground truth: labels are another OCR's output, about 1 in 12 wrong; "
            f"agreement only, excluded from score, groups, n and misreads): ours agrees on "
            f"{group.passed}/{group.n} ({ours_ms:.0f} ms/item), disagrees on {group.misreads}, returns nothing on "
            f"{group.n - group.passed - group.misreads}; the baseline (whole-crop recognition, so 2-line crops "
            f"cannot agree) on {group.baselines[BASELINE]}/{group.n}"
        )
    disagree = [(item, o) for item, o in zip(silver.items, silver.outcomes[OURS], strict=True) if not o.passed]
    if disagree:
        notes.append(
            f"{SILVER_GROUP} disagreements (label -> ours; check by eye, the label may be the wrong one): "
            + "; ".join(f"{it.file.name}: {o.expected} -> {o.returned or 'nothing'}" for it, o in disagree)
        )
    return notes
