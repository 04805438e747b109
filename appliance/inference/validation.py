"""Validation of a model package, on install and on load: everything a model must pass before it serves.

``validate_package`` runs the checks in order and stops at the first failure, with a ModelError
whose message starts with the package folder and names the check::

    models/text-detection/x/2: signature: signed by key 3f2a... which is not in models.trusted_keys

1. manifest    manifest.yaml is valid (schema, dtypes, plain task/name/version/file names)
2. layout      in a store (``<task>/<name>/<version>/``) the folder matches the manifest
3. model file  the file the manifest names is present
4. sha256      the file's sha256 is the manifest's
5. signature   signed by a trusted key (``signing.py``); unsigned only where the policy allows it
               (before any parser reads the file)
6. onnx.checker  the file parses as ONNX and passes ``onnx.checker.check_model(full_check=True)``
7. onnxruntime ONNX Runtime loads it; input/output names, dtypes and ranks are the manifest's
8. contract    the task's I/O contract (``contracts.py``) and the manifest's fixed dims hold
9. golden      the golden cases (``golden.py``) are reproduced within the manifest's tolerances

A package that has a signature must verify even when unsigned packages are allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import onnx

from appliance.errors import ModelError
from appliance.inference.contracts import CONTRACTS, check_contract, session_tensors
from appliance.inference.golden import check_golden
from appliance.inference.manifest import ModelManifest, load_manifest
from appliance.inference.session import OnnxModel, SessionOptions, sha256_file
from appliance.inference.signing import MANIFEST_FILE, is_signed, verify_package

if TYPE_CHECKING:
    from appliance.config import AppConfig

UNSIGNED_ALLOWED = "unsigned: allowed by config (development)"
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class ValidationPolicy:
    """What a package must satisfy beyond its own consistency: who may sign it, how to run it."""

    trusted_keys: tuple[Path, ...] = ()
    allow_unsigned: bool = False
    options: SessionOptions = field(default_factory=SessionOptions)


@dataclass
class ValidatedModel:
    """A package that passed every check, with its ONNX Runtime session ready to serve."""

    folder: Path
    manifest: ModelManifest
    model: OnnxModel
    key_id: str | None
    checks: list[str]


def session_options(config: AppConfig) -> SessionOptions:
    """How the appliance runs its models: ``models.providers`` in order, ``models.require_accelerator``
    (no silent fall-back), ``analyzers.ocr_threads`` CPU threads per model."""
    return SessionOptions(
        providers=tuple(config.models.providers),
        intra_op_threads=config.analyzers.ocr_threads,
        allow_cpu_fallback=not config.models.require_accelerator,
    )


def validation_policy(config: AppConfig) -> ValidationPolicy:
    """The policy of a running appliance: ``models.trusted_keys`` / ``models.allow_unsigned``, and
    the session options of ``session_options``."""
    return ValidationPolicy(
        trusted_keys=tuple(config.models.trusted_keys),
        allow_unsigned=config.models.allow_unsigned,
        options=session_options(config),
    )


def _error(folder: Path, check: str, exc: Exception | str) -> ModelError:
    """``<folder>: <check>: <what>``, dropping a leading ``<folder>`` the inner message already has."""
    message = str(exc)
    prefix = str(folder)
    if message.startswith(prefix + ": "):
        message = message[len(prefix) + 2:]
    elif message.startswith(prefix + "/"):
        message = message[len(prefix) + 1:]
    return ModelError(f"{folder}: {check}: {message}")


def _check_names(manifest: ModelManifest) -> None:
    for label, value in (("task", manifest.task), ("name", manifest.name), ("version", manifest.version),
                         ("file", manifest.file)):
        if not _PLAIN.match(value) or ".." in value:
            raise ModelError(
                f"{label} {value!r} must be a plain folder/file name (letters, digits, '.', '_', '-', '+'; "
                "no '/' and no '..')"
            )


def in_store_layout(folder: Path, manifest: ModelManifest, store_root: Path | None) -> bool:
    """Whether ``folder`` sits where a store keeps versions (``<root>/<task>/<name>/<version>``)."""
    if store_root is not None:
        return True
    task_dir = folder.resolve().parent.parent.name
    return task_dir in CONTRACTS or task_dir == manifest.task


def _check_layout(folder: Path, manifest: ModelManifest, store_root: Path | None) -> str:
    expected = f"{manifest.task}/{manifest.name}/{manifest.version}"
    resolved = folder.resolve()
    actual = "/".join(resolved.parts[-3:])
    if store_root is not None and resolved.parent.parent.parent != store_root.resolve():
        raise ModelError(f"the folder is not a version folder of the store {store_root} (expected {expected} in it)")
    if actual != expected:
        raise ModelError(
            f"the folder is {actual} but the manifest says task {manifest.task!r}, name {manifest.name!r}, "
            f"version {manifest.version!r}: a store keeps each version in <task>/<name>/<version>/ "
            f"(move it, or fix the manifest and bump the version)"
        )
    return f"layout: folder matches {expected}"


def _check_onnx(path: Path) -> str:
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelError(
            f"{path.name} is not an ONNX model: it cannot be parsed as an ONNX ModelProto "
            f"(corrupt, truncated, or another kind of file): {exc}"
        ) from exc
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # onnx.checker.ValidationError, shape_inference.InferenceError
        detail = " ".join(str(exc).split()) or type(exc).__name__
        if len(detail) > 400:
            detail = detail[:400] + "..."
        raise ModelError(f"{path.name} fails the ONNX checker (full check): {detail}") from exc
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
    return f"onnx.checker: full check passed (IR version {proto.ir_version}; opsets {opsets})"


def validate_package(folder: Path, policy: ValidationPolicy, *, store_root: Path | None = None) -> ValidatedModel:
    """Run every check on the package in ``folder``; return it loaded, or raise ModelError naming the check.

    ``store_root``: the package must be the version folder ``<store_root>/<task>/<name>/<version>``
    (install passes its store). Without it, the layout is checked when the folder looks like a store's.
    """
    checks: list[str] = []
    if not folder.is_dir():
        raise ModelError(f"{folder}: package: not a folder")
    try:
        manifest = load_manifest(folder / MANIFEST_FILE)
        _check_names(manifest)
    except ModelError as exc:
        raise _error(folder, "manifest", exc) from exc
    checks.append(f"manifest: {manifest.task}/{manifest.name} v{manifest.version}, schema valid")

    if in_store_layout(folder, manifest, store_root):
        try:
            checks.append(_check_layout(folder, manifest, store_root))
        except ModelError as exc:
            raise _error(folder, "layout", exc) from exc
    else:
        checks.append("layout: not inside a store (<task>/<name>/<version>/), checked again on install")

    path = folder / manifest.file
    if not path.is_file():
        raise _error(folder, "model file", f"{manifest.file} not found (the manifest names it in `file:`)")
    checks.append(f"model file: {manifest.file} present ({path.stat().st_size} bytes)")

    actual = sha256_file(path)
    if actual != manifest.sha256:
        raise _error(
            folder, "sha256",
            f"{manifest.file} has sha256 {actual[:12]}... but the manifest says {manifest.sha256[:12]}...; "
            "the file is corrupt or not the model the manifest describes",
        )
    checks.append(f"sha256: {actual[:12]}... matches the manifest")

    # The signature is checked before any parser sees the bytes: an untrusted file never reaches
    # the ONNX checker or ONNX Runtime.
    kid: str | None = None
    if policy.allow_unsigned and not is_signed(folder):
        checks.append(UNSIGNED_ALLOWED)
    else:
        try:
            kid = verify_package(folder, policy.trusted_keys)
        except ModelError as exc:
            raise _error(folder, "signature", exc) from exc
        checks.append(f"signature: ed25519, trusted key {kid}")

    try:
        checks.append(_check_onnx(path))
    except ModelError as exc:
        raise _error(folder, "onnx.checker", exc) from exc

    try:
        model = OnnxModel(path, manifest, policy.options)
    except ModelError as exc:
        raise _error(folder, "onnxruntime", exc) from exc
    checks.append(
        f"onnxruntime: loaded on {model.providers[0]}; inputs {model.input_names} and outputs "
        f"{model.output_names} match the manifest (names, dtypes, ranks)"
    )

    try:
        contract = check_contract(manifest, *session_tensors(model.session), where=manifest.file)
    except ModelError as exc:
        raise _error(folder, "contract", exc) from exc
    checks.append(f"contract: {contract.describe()}")

    try:
        cases = check_golden(model, folder, manifest.golden)
    except ModelError as exc:
        raise _error(folder, "golden", exc) from exc
    if cases:
        spec = manifest.golden
        tol = f"atol {spec.atol:g} + rtol {spec.rtol:g}" if spec is not None else "default tolerances"
        checks.append(f"golden: {cases} case(s) reproduced within {tol}")
    else:
        checks.append("golden: none shipped (the manifest declares no golden:)")
    return ValidatedModel(folder=folder, manifest=manifest, model=model, key_id=kid, checks=checks)
