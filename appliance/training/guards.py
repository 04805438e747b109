"""What the exporter refuses: evaluation data as a source, and an output folder it would mix into.

The evaluation sets under ``../shared/eval`` (next to the repository) measure the models; a
model trained on them would score well there and mean nothing. Every path the exporter would
read (``--sim`` folders, ``--config``, the store it names) or write is resolved (symlinks
followed) and refused when it lies under that folder, or under any folder ``eval`` whose
parent is named ``shared`` (another checkout, a copy). The check runs before anything under
the path is opened.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from appliance.training import ExportError

#: ``../shared/eval`` of this checkout (the repository root is two levels above this package).
SHARED_EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "eval"
#: What an export writes into OUT (and ``--force`` replaces there).
OUTPUTS = ("detector", "recognizer", "manifest.json")


def eval_folder(path: Path) -> Path | None:
    """The evaluation folder ``path`` lies in (after resolving it), or None."""
    resolved = Path(path).expanduser().resolve()
    shared_eval = SHARED_EVAL.resolve()
    if resolved == shared_eval or shared_eval in resolved.parents:
        return shared_eval
    for folder in (resolved, *resolved.parents):
        if folder.name == "eval" and folder.parent.name == "shared":
            return folder
    return None


def refuse_eval(path: Path, what: str) -> None:
    """ExportError when ``path`` lies under an evaluation folder (``../shared/eval``)."""
    folder = eval_folder(path)
    if folder is not None:
        raise ExportError(
            f"{what} {path} lies under {folder} (../shared/eval): that is evaluation data, and nothing "
            "from it may be trained on, or the accuracy measured on it stops meaning anything; "
            "export simulator runs or a gate's store instead"
        )


def prepare_out(out: Path, force: bool) -> None:
    """Make ``out`` ready: refuse a non-empty folder unless ``force`` (which replaces ``OUTPUTS``)."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ExportError(
                f"--out {out} is not empty; choose an empty or new folder, or pass --force to replace "
                f"{', '.join(OUTPUTS)} there"
            )
        remove_outputs(out)
    out.mkdir(parents=True, exist_ok=True)


def remove_outputs(out: Path) -> None:
    """Remove what an export writes into ``out`` (nothing else)."""
    for name in OUTPUTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
