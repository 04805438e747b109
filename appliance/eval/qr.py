"""``appliance eval qr``: our CodeReader against zxing-cpp, pyzbar and OpenCV on ``qr/``.

An item passes when a reader returns a code whose text equals the label's
``expected_text`` exactly (the label is about one symbol; other symbols in the image do
not matter). A misread is an item where the reader returned codes of the labelled
format and none of them equals the label. Every baseline runs on the same grayscale
image in the same run; every labelled image is evaluated.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp

from appliance.analyzers.codes import CodeReader
from appliance.eval.labels import QrLabel, ZxingPassCount, read_qr_labels, read_zxing_pass_counts
from appliance.eval.report import EvalReport, GroupResult

log = logging.getLogger(__name__)

Gray = npt.NDArray[np.uint8]

#: zxing (Java) format names used in the labels -> zxing-cpp names used by CodeRead.
LABEL_FORMATS: dict[str, str] = {
    "QR_CODE": "QRCode",
    "EAN_13": "EAN13",
    "EAN_8": "EAN8",
    "UPC_A": "UPCA",
    "UPC_E": "UPCE",
    "CODE_128": "Code128",
    "CODE_39": "Code39",
    "CODE_93": "Code93",
    "ITF": "ITF",
    "DATA_MATRIX": "DataMatrix",
    "PDF_417": "PDF417",
    "AZTEC": "Aztec",
}
_PYZBAR_FORMATS: dict[str, str] = {
    "QRCODE": "QRCode",
    "EAN13": "EAN13",
    "EAN8": "EAN8",
    "UPCA": "UPCA",
    "UPCE": "UPCE",
    "CODE128": "Code128",
    "CODE39": "Code39",
    "CODE93": "Code93",
    "I25": "ITF",
    "PDF417": "PDF417",
}

OURS = "ours"
ZXING = "zxing-cpp"
ZXING_PLAIN = "zxing-cpp (TextMode.Plain)"
PYZBAR = "pyzbar"
OPENCV = "opencv QRCodeDetector"


@dataclass(frozen=True)
class Seen:
    """One code as a reader returned it."""

    format: str
    text: str
    sequence: tuple[int, int] | None = None


@dataclass
class _Outcome:
    seen: list[Seen]
    ms: float
    passed: bool = False
    misread: bool = False
    part: bool = False
    ran: bool = True


@dataclass
class _Run:
    """All readers' outcomes on all items, plus what the readers reported on the side."""

    labels: tuple[QrLabel, ...]
    outcomes: dict[str, list[_Outcome]]
    errors: Counter[str] = field(default_factory=Counter)
    disagreements: int = 0
    rescues: Counter[str] = field(default_factory=Counter)
    unreadable: list[str] = field(default_factory=list)


ReaderFn = Callable[[Gray, QrLabel], list[Seen] | None]


def evaluate_qr(data_dir: Path, reader: CodeReader | None = None) -> EvalReport:
    """Run every reader on every image of ``data_dir`` (the ``qr/`` folder)."""
    labels = read_qr_labels(data_dir)
    run = _Run(labels=labels, outcomes={})
    ours = reader or CodeReader()
    readers: dict[str, ReaderFn] = {
        OURS: lambda gray, _label: _read_ours(ours, gray, run),
        ZXING: lambda gray, _label: _read_zxing(gray, zxingcpp.TextMode.HRI),
        ZXING_PLAIN: lambda gray, _label: _read_zxing(gray, zxingcpp.TextMode.Plain),
        PYZBAR: lambda gray, _label: _read_pyzbar(gray, run),
        OPENCV: _read_opencv,
    }
    run.outcomes = {name: [] for name in readers}
    _warm_up(readers, data_dir, labels)
    for label in labels:
        gray = _load(data_dir, label, run)
        for name, fn in readers.items():
            run.outcomes[name].append(_judge(fn, gray, label))
    return _report(run, data_dir)


# -- readers ------------------------------------------------------------------------------


def _read_ours(reader: CodeReader, gray: Gray, run: _Run) -> list[Seen]:
    scan = reader.scan(gray)
    run.disagreements += len(scan.disagreements)
    for stage in scan.stages:
        if not stage.startswith("zxing:frame"):
            run.rescues[stage] += 1
    return [Seen(c.format, c.text, c.sequence) for c in scan.codes]


def _read_zxing(gray: Gray, mode: zxingcpp.TextMode) -> list[Seen]:
    return [Seen(b.format.name, b.text) for b in zxingcpp.read_barcodes(gray, text_mode=mode)]


def _read_pyzbar(gray: Gray, run: _Run) -> list[Seen]:
    from pyzbar import pyzbar

    try:
        decoded = pyzbar.decode(gray)
    except (ValueError, RuntimeError) as exc:  # pyzbar 0.1.9: unknown orientation
        run.errors[f"pyzbar.decode raised {type(exc).__name__}"] += 1
        return []
    return [Seen(_PYZBAR_FORMATS.get(d.type, d.type), d.data.decode("utf-8", errors="replace")) for d in decoded]


def _read_opencv(gray: Gray, label: QrLabel) -> list[Seen] | None:
    if label.format != "QR_CODE":
        return None  # QR only: counted as a fail
    ok, texts, _points, _straight = cv2.QRCodeDetector().detectAndDecodeMulti(gray)
    if not ok:
        return []
    return [Seen("QRCode", t) for t in texts if t]


def _warm_up(readers: dict[str, ReaderFn], data_dir: Path, labels: tuple[QrLabel, ...]) -> None:
    """One untimed call each, so library start-up is not billed to the first image."""
    if not labels:
        return
    image = cv2.imread(str(data_dir / labels[0].file), cv2.IMREAD_GRAYSCALE)
    if image is None:
        return
    gray = np.ascontiguousarray(image, dtype=np.uint8)
    for fn in readers.values():
        fn(gray, labels[0])


def _load(data_dir: Path, label: QrLabel, run: _Run) -> Gray | None:
    gray = cv2.imread(str(data_dir / label.file), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        run.unreadable.append(label.file)
        log.warning("eval qr: cannot read %s: counted as a fail for every reader", label.file)
        return None
    return np.ascontiguousarray(gray)


def _judge(fn: ReaderFn, gray: Gray | None, label: QrLabel) -> _Outcome:
    if gray is None:
        return _Outcome(seen=[], ms=0.0)
    start = time.perf_counter()
    seen = fn(gray, label)
    ms = (time.perf_counter() - start) * 1000.0
    if seen is None:
        return _Outcome(seen=[], ms=0.0, ran=False)
    outcome = _Outcome(seen=seen, ms=ms)
    expected = label.expected_text
    fmt = LABEL_FORMATS.get(label.format, label.format)
    same_format = [s.text for s in seen if s.format == fmt]
    outcome.passed = any(s.text == expected for s in seen)
    if not outcome.passed and label.is_structured_append:
        outcome.part = any(t and t in expected for t in same_format)
    outcome.misread = not outcome.passed and not outcome.part and bool(same_format)
    return outcome


# -- report -------------------------------------------------------------------------------


def _report(run: _Run, data_dir: Path) -> EvalReport:
    n = len(run.labels)
    ours = run.outcomes[OURS]
    groups = _groups(run, _references(data_dir))
    baselines = {
        name: sum(o.passed for o in outs) / n if n else 0.0 for name, outs in run.outcomes.items() if name != OURS
    }
    return EvalReport(
        task="qr",
        metric="share of images where a returned code's text equals the labelled text exactly",
        score=sum(o.passed for o in ours) / n if n else 0.0,
        n=n,
        misreads=sum(o.misread for o in ours),
        ms_per_item=sum(o.ms for o in ours) / n if n else 0.0,
        baselines=baselines,
        groups=groups,
        notes=_notes(run, data_dir),
    )


def _groups(run: _Run, refs: dict[str, dict[str, float]]) -> list[GroupResult]:
    by_group: dict[str, list[int]] = {}
    for index, label in enumerate(run.labels):
        by_group.setdefault(label.group, []).append(index)
    results: list[GroupResult] = []
    for name in sorted(by_group):
        idx = by_group[name]
        ours = [run.outcomes[OURS][i] for i in idx]
        group = GroupResult(
            name=name,
            n=len(idx),
            passed=sum(o.passed for o in ours),
            misreads=sum(o.misread for o in ours),
            ms_per_item=sum(o.ms for o in ours) / len(idx),
            reference=refs.get(name, {}),
        )
        for reader, outs in run.outcomes.items():
            if reader == OURS:
                continue
            chosen = [outs[i] for i in idx]
            group.baselines[reader] = sum(o.passed for o in chosen)
            group.baseline_misreads[reader] = sum(o.misread for o in chosen)
            ran = [o for o in chosen if o.ran]
            group.baseline_ms[reader] = sum(o.ms for o in ran) / len(ran) if ran else 0.0
        results.append(group)
    return results


def _references(data_dir: Path) -> dict[str, dict[str, float]]:
    """zxing's minimum pass rates at rotation 0 on its full folders, per group."""
    path = data_dir / "zxing_expected_pass_counts.csv"
    if not path.exists():
        return {}
    refs: dict[str, dict[str, float]] = {}
    counts: tuple[ZxingPassCount, ...] = read_zxing_pass_counts(path)
    for count in counts:
        if count.rotation_deg == 0.0 and count.images_in_zxing_folder:
            size = count.images_in_zxing_folder
            refs[count.group] = {
                "zxing min (rot 0)": count.must_pass / size,
                "zxing try-harder min (rot 0)": count.try_harder_must_pass / size,
            }
    return refs


def _notes(run: _Run, data_dir: Path) -> list[str]:
    notes = [_coverage_note(run, data_dir)]
    notes.extend(
        f"label corrected for {label.file}: {'; '.join(label.corrections)}" for label in run.labels if label.corrections
    )
    notes.extend(_sequence_notes(run))
    notes.extend(_control_notes(run))
    notes.extend(_text_mode_notes(run))
    notes.append(
        f"{OPENCV} reads QR codes only: its {sum(1 for lb in run.labels if lb.format != 'QR_CODE')} "
        "non-QR items are counted as fails and its ms/item covers QR items only"
    )
    for what, count in sorted(run.errors.items()):
        notes.append(f"{what} on {count} image(s) (counted as no read); ours calls zbar's C API directly")
    notes.extend(_ours_notes(run))
    notes.append(
        "reference columns: zxing's own minimum pass rates (Java reader, rotation 0) on its full "
        "folders; this dev half holds a subset of each folder, so compare rates, not counts"
    )
    return notes


def _coverage_note(run: _Run, data_dir: Path) -> str:
    labelled = {label.file for label in run.labels}
    images = data_dir / "images"
    on_disk = {f"images/{p.name}" for p in images.iterdir() if p.is_file()} if images.is_dir() else set()
    unlabelled = len(on_disk - labelled)
    text = f"{len(run.labels)} labelled images, all evaluated"
    if run.unreadable:
        text += f"; {len(run.unreadable)} unreadable (fails for all): {', '.join(run.unreadable)}"
    if unlabelled:
        text += f"; {unlabelled} image(s) in images/ have no label and were not scored"
    return text


def _sequence_notes(run: _Run) -> list[str]:
    notes: list[str] = []
    for index, label in enumerate(run.labels):
        if not label.is_structured_append:
            continue
        seen_by = []
        for reader, outs in run.outcomes.items():
            outcome = outs[index]
            parts = [s for s in outcome.seen if s.text and s.text in label.expected_text]
            if parts:
                part = parts[0]
                where = f"part {part.sequence[0] + 1}/{part.sequence[1]}" if part.sequence else "a part"
                seen_by.append(f"{reader}: {where} ({len(part.text)} chars)")
            else:
                seen_by.append(f"{reader}: no part")
        notes.append(
            f"{label.file}: the label is the merged text of a {label.sequence_size}-symbol structured-append "
            f"sequence ({len(label.expected_text)} chars) but the image holds one symbol, so no reader can "
            f"pass; counted as 'part', not misread. Seen: {'; '.join(seen_by)}"
        )
    return notes


def _control_notes(run: _Run) -> list[str]:
    items = [i for i, lb in enumerate(run.labels) if any(ord(c) < 32 and c not in "\n" for c in lb.expected_text)]
    if not items:
        return []
    kinds = sorted({_control_name(c) for i in items for c in run.labels[i].expected_text if ord(c) < 32 and c != "\n"})
    per_reader = ", ".join(f"{name} {sum(outs[i].passed for i in items)}" for name, outs in run.outcomes.items())
    return [
        f"{len(items)} labels hold control characters ({', '.join(kinds)}); compared byte-exact with what each "
        f"reader returned. Passed: {per_reader} of {len(items)}"
    ]


def _control_name(char: str) -> str:
    return {"\r": "CR", "\t": "TAB", "\x1d": "GS (0x1D)", "\x1e": "RS", "\x04": "EOT"}.get(char, f"0x{ord(char):02X}")


def _text_mode_notes(run: _Run) -> list[str]:
    default, plain = run.outcomes[ZXING], run.outcomes[ZXING_PLAIN]
    files = [run.labels[i].file for i in range(len(run.labels)) if plain[i].passed and not default[i].passed]
    if not files:
        return []
    return [
        f"{ZXING} runs read_barcodes with its defaults (TextMode.HRI, which renders GS1 data as "
        f"'(01)...' element strings); with TextMode.Plain (as ours uses) it also passes: {', '.join(files)}"
    ]


def _ours_notes(run: _Run) -> list[str]:
    ours = run.outcomes[OURS]
    notes = []
    rescued = ", ".join(f"{stage} {count}" for stage, count in sorted(run.rescues.items()))
    notes.append(f"ours: symbols found after the whole-frame zxing-cpp pass, by stage: {rescued or 'none'}")
    notes.append(
        f"ours: {run.disagreements} disagreement(s) between two reads of the same symbol "
        "(the whole-frame zxing-cpp read, or the read covering more scan lines, was kept)"
    )
    for name in (OURS, ZXING, ZXING_PLAIN):
        for index, outcome in enumerate(run.outcomes[name]):
            if outcome.misread:
                notes.append(f"{name} misread {run.labels[index].file}: {_describe(outcome.seen)}")
    failed = [run.labels[i].file.rsplit("/", 1)[-1] for i, o in enumerate(ours) if not o.passed]
    notes.append(f"ours failed {len(failed)}: {', '.join(failed)}")
    return notes


def _describe(seen: list[Seen]) -> str:
    return "; ".join(f"{s.format} {s.text[:40]!r}" for s in seen) or "nothing"
