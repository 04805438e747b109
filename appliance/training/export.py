"""``appliance training export``: simulator runs and reviewed crossings into training datasets.

Everything is checked before OUT is touched: no source under ``../shared/eval``, every ``--sim``
folder complete (videos + per-frame annotations), the store present, something to export. The
split is decided per unit (simulated vehicle, crossing) before any file is written
(appliance/training/splits.py). A failed export removes what it wrote. Layout: package docstring
(appliance/training/__init__.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance.config import load_config
from appliance.sim.annotate import CLASSES, MIN_VISIBLE
from appliance.store.db import Store
from appliance.training import ExportError, splits
from appliance.training.dataset import CROP_MARGIN, DatasetWriter
from appliance.training.from_sim import MIN_TEXT_PX, SimStats, export_run
from appliance.training.from_store import DETECTOR_NOTE, StoreStats, export_crops, reviewed_crops, unit_of
from appliance.training.from_store import RULE as STORE_RULE
from appliance.training.guards import prepare_out, refuse_eval, remove_outputs
from appliance.training.sim_annotations import SimRun, load_sim_run

FORMAT = "appliance-training-export/1"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExportResult:
    out: Path
    manifest_path: Path
    manifest: dict[str, Any]


@dataclass
class _StoreSource:
    config: Path
    path: Path
    evidence_dir: Path
    stats: StoreStats


def _check_args(sims: Sequence[Path], config: Path | None, every: int, val_share: float) -> None:
    if not sims and config is None:
        raise ExportError(
            "nothing to export from: give --sim DIR (simulator runs) and/or --config FILE (a gate's "
            "store with reviewed crossings)"
        )
    if every < 1:
        raise ExportError(f"--every must be 1 or more, got {every}")
    if not 0.0 < val_share < 1.0:
        raise ExportError(f"--val-share must lie strictly between 0 and 1, got {val_share}")


def _tags(runs: Sequence[SimRun]) -> list[str]:
    """File-name tag of each run: ``sim<seed>``, ``sim<seed>.2`` for a second run of the same seed."""
    seen: dict[int, int] = {}
    tags = []
    for run in runs:
        seen[run.seed] = seen.get(run.seed, 0) + 1
        tags.append(f"sim{run.seed}" if seen[run.seed] == 1 else f"sim{run.seed}.{seen[run.seed]}")
    return tags


def _open_store(config: Path, say: Progress) -> _StoreSource:
    cfg = load_config(config)
    db, evidence = cfg.storage.path, cfg.storage.evidence_dir
    refuse_eval(db, f"the store named by --config {config},")
    refuse_eval(evidence, f"the evidence folder named by --config {config},")
    if not db.is_file():
        raise ExportError(f"--config {config} names the store {db}, which does not exist")
    store = Store(db, evidence)
    try:
        stats = reviewed_crops(store)
    finally:
        store.close()
    say(f"store {db}: {stats.crossings} reviewed crossings, {len(stats.crops)} labelled evidence crops")
    return _StoreSource(config, db, evidence, stats)


def export_training_data(
    out: Path,
    sims: Sequence[Path] = (),
    config: Path | None = None,
    *,
    every: int = 5,
    val_share: float = 0.2,
    seed: int = 0,
    force: bool = False,
    command: str | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Export the datasets into ``out``; ExportError (nothing written) when it cannot."""
    say: Progress = progress or (lambda _msg: None)
    sims = [Path(s) for s in sims]
    out = Path(out)
    _check_args(sims, config, every, val_share)
    for s in sims:
        refuse_eval(s, "--sim")
    if config is not None:
        refuse_eval(config, "--config")
    refuse_eval(out, "--out")
    resolved = [s.resolve() for s in sims]
    if len(set(resolved)) != len(resolved):
        raise ExportError("the same --sim folder is given twice")

    runs = []
    for s in sims:
        say(f"reading {s}")
        runs.append(load_sim_run(s))
    tags = _tags(runs)
    source = _open_store(Path(config), say) if config is not None else None

    sim_units = {run.unit(rec.vehicle) for run in runs for cam in run.annotated for rec in run.sampled(cam, every)}
    store_units = {unit_of(c.crossing_id) for c in source.stats.crops} if source else set()
    if not sim_units and not store_units:
        raise ExportError(
            "nothing to export: "
            + ("the simulator runs show no vehicle; " if runs else "")
            + (
                "the store has no reviewed crossing with an evidence crop (an inspector approves, holds or "
                "corrects a crossing on its review page)"
                if source
                else ""
            )
        )
    split_of = splits.assign(sim_units, val_share, seed) | splits.assign(store_units, val_share, seed)

    prepare_out(out, force)
    sim_stats, writer = SimStats(), DatasetWriter(out, split_of, detector=bool(runs))
    try:
        try:
            for run, tag in zip(runs, tags, strict=True):
                export_run(run, tag, writer, every, sim_stats, say)
            if source is not None:
                store = Store(source.path, source.evidence_dir)
                try:
                    export_crops(store, source.stats.crops, writer, source.stats)
                finally:
                    store.close()
        finally:
            writer.close()
        if writer.total == 0:
            raise ExportError("nothing exported: every sample was skipped (evidence files gone? see the log)")
        if runs:
            writer.write_data_yaml()
        manifest = _manifest(
            out,
            runs,
            tags,
            source,
            writer,
            sim_stats,
            split_of,
            every=every,
            val_share=val_share,
            seed=seed,
            command=command,
        )
        path = out / "manifest.json"
        path.write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    except BaseException:
        remove_outputs(out)
        raise
    say(
        f"wrote {out}: "
        + ", ".join(
            f"{s} {writer.det_counts[s]['images']} images / {writer.rec_counts[s]['crops']} crops"
            for s in splits.SPLITS
        )
    )
    return ExportResult(out, path, manifest)


def _manifest(
    out: Path,
    runs: Sequence[SimRun],
    tags: Sequence[str],
    source: _StoreSource | None,
    writer: DatasetWriter,
    sim_stats: SimStats,
    split_of: dict[str, str],
    *,
    every: int,
    val_share: float,
    seed: int,
    command: str | None,
) -> dict[str, Any]:
    units = {s: sorted(u for u, v in split_of.items() if v == s) for s in splits.SPLITS}
    sim_docs = []
    for run, tag in zip(runs, tags, strict=True):
        sim_docs.append(
            {
                "path": str(run.path.resolve()),
                "tag": tag,
                "seed": run.seed,
                "width": run.width,
                "height": run.height,
                "fps": run.fps,
                "frames": run.frames,
                "vehicles": len(run.vehicles),
                "sampled_frames": {cam: len(run.sampled(cam, every)) for cam in sorted(run.annotated)},
            }
        )
    store_doc = None
    if source is not None:
        st = source.stats
        store_doc = {
            "config": str(source.config.resolve()),
            "path": str(source.path.resolve()),
            "evidence_dir": str(source.evidence_dir.resolve()),
            "rule": STORE_RULE,
            "detector": DETECTOR_NOTE,
            "reviewed_crossings": st.crossings,
            "crossings_exported": st.crossings_with_crops,
            "crops_labelled": len(st.crops),
            "corrected_labels": st.corrected_labels,
        }
    detector_doc = None
    if runs:
        detector_doc = {
            "data_yaml": "detector/data.yaml",
            "format": "YOLO: one 'class cx cy w h' line per box, normalised to 0..1",
            "sources": "simulator runs only",
            "sampling": f"every {every}th frame of each vehicle's passage, per camera, from its first frame; "
            "frames of the empty lane left out",
            "boxes": f"ground truth of appliance/sim/annotate.py: clipped to the frame, dropped when under "
            f"{MIN_VISIBLE:.0%} inside it",
            "counts": writer.det_counts,
        }
    return {
        "format": FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "classes": list(CLASSES),
        "split": {
            "rule": splits.RULE,
            "val_share": val_share,
            "seed": seed,
            "units": {s: len(v) for s, v in units.items()},
            "unit_lists": units,
        },
        "sources": {"sim": sim_docs, "store": store_doc},
        "detector": detector_doc
        if detector_doc is not None
        else {"note": "no detector set: no simulator run given; " + DETECTOR_NOTE},
        "recognizer": {
            "labels": "recognizer/<split>/labels.txt: '<file name>\\t<text>' (PaddleOCR rec_gt); per-crop details "
            "in recognizer/<split>/meta.jsonl",
            "text": "canonical text as in truth.json and the store (plates 29C-123.45 / 桂A12345, container "
            "numbers without spaces, seal serials); simulator crops are one text line each (a 2-line "
            "plate gives two), store crops one read each",
            "crop": f"text box plus {CROP_MARGIN:.0%} of its height + 2 px each side; simulator lines under "
            f"{MIN_TEXT_PX:.0f} px or cut by the frame edge left out",
            "counts": writer.rec_counts,
        },
        "skipped": {
            "sim": asdict(sim_stats),
            "store": None
            if source is None
            else {
                "missing_evidence": source.stats.missing_evidence,
                "unreadable_evidence": source.stats.unreadable_evidence,
                "unusable_text": source.stats.unusable_text,
                "ambiguous_reads": source.stats.ambiguous_reads,
            },
        },
    }
