"""Golden outputs: inputs and the outputs a model version must reproduce, shipped in its package.

``golden/case-000.npz``, ``golden/case-001.npz`` ... each hold the arrays ``input:<name>`` for every
model input and ``output:<name>`` for every output. The tools that produce a model write them with
``make_golden`` from the model's own outputs; ``check_golden`` runs the model on each case when the
package is installed or loaded and refuses it when an output drifts beyond the manifest's
``golden`` tolerances (a file that was corrupted but still parses, a wrong ONNX Runtime build, a
quantized model that lost too much). The files are read with ``allow_pickle=False``: data, never code.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from appliance.errors import ModelError
from appliance.inference.manifest import GoldenSpec
from appliance.inference.session import OnnxModel

GOLDEN_DIR = "golden"
_CASE = re.compile(r"^case-(\d{3,})\.npz$")


def case_files(folder: Path) -> list[Path]:
    """The golden case files of a model version folder, in order (empty when there are none)."""
    golden = folder / GOLDEN_DIR
    if not golden.is_dir():
        return []
    numbered = []
    for path in golden.iterdir():
        match = _CASE.match(path.name)
        if match is not None and path.is_file():
            numbered.append((int(match[1]), path))
    return [path for _, path in sorted(numbered)]


def make_golden(folder: Path, model: OnnxModel, inputs: list[dict[str, np.ndarray]]) -> list[Path]:
    """Run ``model`` on each input dict and write ``folder/golden/case-NNN.npz``; return the files.

    Replaces any cases already there, so the folder holds exactly these.
    """
    if not inputs:
        raise ModelError(f"{folder}: make_golden needs at least one input case")
    golden = folder / GOLDEN_DIR
    golden.mkdir(parents=True, exist_ok=True)
    for old in case_files(folder):
        old.unlink()
    written = []
    for index, case in enumerate(inputs):
        if sorted(case) != sorted(model.input_names):
            raise ModelError(
                f"{folder}: golden case {index}: inputs {sorted(case)} differ from the model's {model.input_names}"
            )
        outputs = model.run(case)
        arrays = {f"input:{name}": np.asarray(value) for name, value in case.items()}
        arrays.update({f"output:{name}": out for name, out in zip(model.output_names, outputs, strict=True)})
        path = golden / f"case-{index:03d}.npz"
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]  # keys are prefixed, never a keyword
        written.append(path)
    return written


def _load_case(path: Path, model: OnnxModel) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    case = path.stem
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelError(f"golden case {case}: {path.name} is not a readable .npz file: {exc}") from exc
    inputs = {k[len("input:"):]: v for k, v in arrays.items() if k.startswith("input:")}
    outputs = {k[len("output:"):]: v for k, v in arrays.items() if k.startswith("output:")}
    unknown = sorted(k for k in arrays if not k.startswith(("input:", "output:")))
    if unknown:
        raise ModelError(f"golden case {case}: unexpected arrays {unknown} (only input:<name> and output:<name>)")
    if sorted(inputs) != sorted(model.input_names):
        raise ModelError(f"golden case {case}: inputs {sorted(inputs)} differ from the model's {model.input_names}")
    if not outputs or not set(outputs) <= set(model.output_names):
        raise ModelError(
            f"golden case {case}: outputs {sorted(outputs)} are not among the model's {model.output_names}"
        )
    return inputs, outputs


def check_golden(model: OnnxModel, folder: Path, spec: GoldenSpec | None) -> int:
    """Run every golden case of ``folder`` and compare; return the number of cases checked.

    ``spec`` is the manifest's ``golden`` entry: when it is set, ``golden/`` must exist and hold at
    least one case. When it is None, cases that are present are still checked (default tolerances)
    and a package without them passes with 0.
    """
    golden = folder / GOLDEN_DIR
    if spec is None and not golden.exists():
        return 0
    tolerance = spec or GoldenSpec()
    if not golden.is_dir():
        raise ModelError(f"{folder}: the manifest declares golden: but there is no {GOLDEN_DIR}/ folder")
    cases = case_files(folder)
    if not cases:
        raise ModelError(f"{folder}: {GOLDEN_DIR}/ holds no golden cases (case-000.npz, case-001.npz, ...)")
    for path in cases:
        try:
            _run_case(model, path, tolerance)
        except ModelError as exc:
            raise ModelError(f"{folder}: {exc}") from exc
    return len(cases)


def _run_case(model: OnnxModel, path: Path, tolerance: GoldenSpec) -> None:
    """Run one case; raise ModelError (without the folder) when an output is off."""
    inputs, expected = _load_case(path, model)
    try:
        actual = dict(zip(model.output_names, model.run(inputs), strict=True))
    except Exception as exc:  # ORT raises its own exception types for bad inputs
        raise ModelError(f"golden case {path.stem}: the model cannot run on the case's inputs: {exc}") from exc
    for name, want in expected.items():
        got = actual[name]
        if got.shape != want.shape:
            raise ModelError(
                f"golden case {path.stem}: output {name!r} has shape {list(got.shape)}, expected {list(want.shape)}"
            )
        got64 = got.astype(np.float64)
        want64 = want.astype(np.float64)
        close = np.isclose(got64, want64, rtol=tolerance.rtol, atol=tolerance.atol, equal_nan=True)
        if not close.all():
            diff = np.abs(got64 - want64)[~close]
            worst = float(np.nanmax(diff)) if np.isfinite(diff).any() else float("nan")
            raise ModelError(
                f"golden case {path.stem}: output {name!r} differs by up to {worst:.3g} "
                f"(allowed atol {tolerance.atol:g} + rtol {tolerance.rtol:g}·|expected|; "
                f"{int((~close).sum())} of {close.size} values out of tolerance)"
            )
