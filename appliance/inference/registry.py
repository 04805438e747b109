"""The model registry: which model version serves each task, kept in the appliance's SQLite store.

Per task it holds the **active** model (name, version, sha256), the **previous** one (so a rollback
is one call), an optional **shadow** candidate with its comparison stats, and a **generation**
counter that the running appliance polls (``ModelWatcher``) to hot-swap models without a
restart. Every change, and every refusal, is appended to ``model_history`` (triggers make it
append-only) and to the hash-chained audit log.

With no registry row for a task, the active model is the config's choice
(``analyzers.ocr_detector`` / ``analyzers.ocr_recognizer``, highest version in the store).

Activation validates the candidate package (``validate_package``: hash, ONNX checker, I/O
contract, signature, golden outputs) and applies a **regression gate**: when both manifests
carry ``metrics`` measured on the same ``eval_set``, no shared quality metric may be worse by more
than ``models.regression_margin`` (absolute). Metrics are higher-is-better unless their name says
otherwise: names ending in ``error``, ``error_rate``, ``cer``, ``wer`` or ``loss`` are
lower-is-better, and timings (``ms``, ``_s``, ``seconds``, ``latency`` in the name) are not gated.
``force=True`` overrides the gate (never validation) and needs a reason; both are recorded.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from appliance.errors import ModelError
from appliance.inference.manifest import ModelManifest
from appliance.inference.session import SessionOptions
from appliance.inference.store import ModelStore

if TYPE_CHECKING:
    from appliance.config import AppConfig
    from appliance.inference.validation import ValidatedModel, ValidationPolicy
    from appliance.store.db import Store

log = logging.getLogger(__name__)

# Tasks the appliance serves, and the AnalyzersConfig field that names each one's default model.
TASK_CONFIG_FIELDS: dict[str, str] = {"text-detection": "ocr_detector", "text-recognition": "ocr_recognizer"}
ACTIONS = ("activate", "rollback", "shadow-start", "shadow-stop", "refused")

_LOWER_IS_BETTER = re.compile(r"(error|error_rate|cer|wer|loss)$")
_TIMING = re.compile(r"(^|_)(ms|s|sec|seconds|latency)(_|$)|latency|_ms")


@dataclass(frozen=True)
class ModelVersion:
    """One model version: what the registry records and the slots serve."""

    name: str
    version: str
    sha256: str

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    @classmethod
    def of(cls, manifest: ModelManifest) -> ModelVersion:
        return cls(manifest.name, manifest.version, manifest.sha256)


@dataclass(frozen=True)
class TaskState:
    """The registry's view of one task."""

    task: str
    active: ModelVersion
    previous: ModelVersion | None = None
    shadow: ModelVersion | None = None
    generation: int = 0
    configured: bool = False  # no registry row: the config's choice
    shadow_stats: dict[str, Any] | None = None
    shadow_stats_at: float | None = None
    updated_at: float | None = None


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    ts: float
    task: str
    action: str
    name: str | None
    version: str | None
    sha256: str | None
    actor: str
    reason: str
    forced: bool
    generation: int | None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}" if self.name else "-"


def metric_direction(name: str) -> str | None:
    """``higher`` / ``lower`` is better, or None for metrics the gate ignores (timings)."""
    key = name.lower()
    if _TIMING.search(key):
        return None
    return "lower" if _LOWER_IS_BETTER.search(key) else "higher"


def regression_problems(active: ModelManifest, candidate: ModelManifest, margin: float) -> list[str]:
    """The shared metrics on which ``candidate`` is worse than ``active`` by more than ``margin`` (absolute).

    Empty when the manifests were not measured on the same named ``eval_set`` (nothing comparable).
    """
    if not active.eval_set or active.eval_set != candidate.eval_set:
        return []
    problems = []
    for key in sorted(set(active.metrics) & set(candidate.metrics)):
        direction = metric_direction(key)
        if direction is None:
            continue
        old, new = float(active.metrics[key]), float(candidate.metrics[key])
        worse = old - new if direction == "higher" else new - old
        if worse > margin + 1e-12:
            problems.append(f"{key} {old:g} -> {new:g} ({'-' if direction == 'higher' else '+'}{worse:.4g}, "
                            f"{direction} is better, margin {margin:g})")
    return problems


def _version(row: sqlite3.Row, prefix: str) -> ModelVersion | None:
    if row[f"{prefix}_name"] is None:
        return None
    return ModelVersion(row[f"{prefix}_name"], row[f"{prefix}_version"], row[f"{prefix}_sha256"])


def _columns(version: ModelVersion | None) -> tuple[str | None, str | None, str | None]:
    return (version.name, version.version, version.sha256) if version is not None else (None, None, None)


def _before(state: TaskState) -> dict[str, Any]:
    """What a change replaced, recorded in its history row (so a refused load can undo it)."""
    return {"active": state.active.as_dict(), "previous": state.previous.as_dict() if state.previous else None}


class ModelRegistry:
    """Activate, roll back and shadow model versions; see the module doc."""

    def __init__(self, store: Store, config: AppConfig, models: ModelStore | None = None,
                 policy: ValidationPolicy | None = None):
        self.store = store
        self.config = config
        self.models = models or (ModelStore(config.models.root) if config.models.root else ModelStore())
        self._policy = policy

    # --- reading ------------------------------------------------------------------------------

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(TASK_CONFIG_FIELDS)

    def policy(self) -> ValidationPolicy:
        if self._policy is None:
            from appliance.inference.validation import validation_policy

            self._policy = validation_policy(self.config)
        return self._policy

    def configured(self, task: str) -> ModelVersion:
        """The config's model for ``task`` (highest version in the store; empty version when missing)."""
        self._check_task(task)
        name = str(getattr(self.config.analyzers, TASK_CONFIG_FIELDS[task]))
        try:
            ref = self.models.get(task, name)
        except ModelError:
            return ModelVersion(name, "", "")
        return ModelVersion(name, ref.version, ref.manifest.sha256)

    def task_state(self, task: str) -> TaskState:
        self._check_task(task)
        rows = self.store.query("SELECT * FROM model_registry WHERE task = ?", (task,))
        return self._state(task, rows[0] if rows else None)

    def state(self) -> dict[str, TaskState]:
        """Every task's state (tasks with no row: the config's choice)."""
        rows = {r["task"]: r for r in self.store.query("SELECT * FROM model_registry")}
        return {task: self._state(task, rows.get(task)) for task in self.tasks}

    def generations(self) -> dict[str, int]:
        """task -> generation (bumped by every change; what the running appliance polls)."""
        rows = self.store.query("SELECT task, generation FROM model_registry")
        return {r["task"]: int(r["generation"]) for r in rows}

    def history(self, task: str | None = None, limit: int = 50) -> list[HistoryEntry]:
        """Newest first."""
        sql = "SELECT * FROM model_history" + (" WHERE task = ?" if task else "") + " ORDER BY id DESC LIMIT ?"
        params: tuple[Any, ...] = (task, limit) if task else (limit,)
        return [
            HistoryEntry(r["id"], r["ts"], r["task"], r["action"], r["name"], r["version"], r["sha256"], r["actor"],
                         r["reason"], bool(r["forced"]), r["generation"], json.loads(r["details_json"] or "{}"))
            for r in self.store.query(sql, params)
        ]

    def _state(self, task: str, row: sqlite3.Row | None) -> TaskState:
        if row is None:
            return TaskState(task, self.configured(task), configured=True)
        stats = json.loads(row["shadow_stats_json"]) if row["shadow_stats_json"] else None
        active = _version(row, "active")
        assert active is not None
        return TaskState(task, active, _version(row, "previous"), _version(row, "shadow"), int(row["generation"]),
                         False, stats, row["shadow_stats_at"], row["updated_at"])

    def _check_task(self, task: str) -> None:
        if task not in TASK_CONFIG_FIELDS:
            raise ModelError(f"unknown task {task!r}; the appliance serves {', '.join(TASK_CONFIG_FIELDS)}")

    # --- validation ---------------------------------------------------------------------------

    def load(self, task: str, version: ModelVersion, options: SessionOptions | None = None) -> ValidatedModel:
        """Validate the package of ``version`` and load it (ModelError naming the failed check).

        The package must still be the one the registry recorded (same sha256)."""
        from appliance.inference.validation import validate_package

        ref = self.models.get(task, version.name, version.version)
        policy = self.policy() if options is None else replace(self.policy(), options=options)
        validated = validate_package(ref.folder, policy, store_root=self.models.root)
        if validated.manifest.task != task:
            raise ModelError(f"{ref.folder}: a {validated.manifest.task} model cannot serve {task}")
        if version.sha256 and validated.manifest.sha256 != version.sha256:
            raise ModelError(
                f"{ref.folder}: the package's model sha256 {validated.manifest.sha256[:12]}... is not the "
                f"{version.sha256[:12]}... the registry recorded for {task}/{version.label}; it was replaced after "
                "activation"
            )
        return validated

    def _candidate(self, task: str, name: str, version: str) -> ValidatedModel:
        ref = self.models.get(task, name, version)
        return self.load(task, ModelVersion(name, version, ref.manifest.sha256))

    def _gate(self, task: str, active: ModelVersion, candidate: ModelManifest) -> tuple[list[str], str | None]:
        """(regression problems, why the gate could not compare) against the active model's manifest."""
        try:
            current = self.models.get(task, active.name, active.version).manifest
        except ModelError as exc:
            return [], f"active model's manifest not in the store ({exc}): no regression gate"
        if not current.eval_set or current.eval_set != candidate.eval_set:
            return [], (f"no shared eval_set (active {current.eval_set!r}, candidate {candidate.eval_set!r}): "
                        "metrics not compared")
        return regression_problems(current, candidate, self.config.models.regression_margin), None

    # --- changes ------------------------------------------------------------------------------

    def activate(self, task: str, name: str, version: str, actor: str, reason: str = "",
                 force: bool = False) -> TaskState:
        """Make ``name@version`` the active model of ``task`` (the running appliance swaps it in).

        Raises ModelError (recorded as ``refused``) when the package fails validation or, without
        ``force``, the regression gate."""
        self._check_task(task)
        reason = reason.strip()
        if force and not reason:
            raise ModelError("a forced activation needs a reason (--reason TEXT); it is recorded in the history")
        current = self.task_state(task)
        if (current.active.name, current.active.version) == (name, version):
            raise ModelError(f"{task}: {name}@{version} is already the active model")
        try:
            validated = self._candidate(task, name, version)
            problems, note = self._gate(task, current.active, validated.manifest)
            if problems and not force:
                raise ModelError(
                    f"{task}: {name}@{version} refused by the regression gate against {current.active.label} on "
                    f"eval_set {validated.manifest.eval_set!r}: " + "; ".join(problems)
                    + " (override with --force --reason TEXT)"
                )
        except ModelError as exc:
            self.record_refusal(task, name, version, actor, str(exc))
            raise
        new = ModelVersion.of(validated.manifest)
        details: dict[str, Any] = {"checks": validated.checks, "key_id": validated.key_id}
        if problems:
            details["regressions_overridden"] = problems
        if note:
            details["gate"] = note
        with self.store.transaction() as conn:
            row = self._row(conn, task)
            state = self._state(task, row)
            if state.shadow is not None and state.shadow == new:
                details["shadow_stats"] = state.shadow_stats
            details["before"] = _before(state)
            generation = self._write(conn, task, row, active=new, previous=state.active,
                                     shadow=None if state.shadow == new else state.shadow,
                                     keep_stats=state.shadow != new)
            self._history(conn, task, "activate", new, actor, reason, generation, details, forced=force)
        log.info("model registry: %s activated %s/%s (was %s)%s", actor, task, new.label, state.active.label,
                 " FORCED past the regression gate" if problems else "")
        return self.task_state(task)

    def rollback(self, task: str, actor: str, reason: str = "") -> TaskState:
        """Make the previous model active again (and the active one previous): one call."""
        current = self.task_state(task)
        if current.previous is None:
            raise ModelError(f"{task}: no previous model to roll back to (active {current.active.label})")
        target = current.previous
        try:
            validated = self.load(task, target)
        except ModelError as exc:
            self.record_refusal(task, target.name, target.version, actor, f"rollback: {exc}")
            raise
        with self.store.transaction() as conn:
            row = self._row(conn, task)
            state = self._state(task, row)
            if state.previous != target:
                raise ModelError(f"{task}: the registry changed during the rollback; try again")
            generation = self._write(conn, task, row, active=target, previous=state.active,
                                     shadow=None if state.shadow == target else state.shadow,
                                     keep_stats=state.shadow != target)
            self._history(conn, task, "rollback", target, actor, reason.strip(), generation,
                          {"checks": validated.checks, "key_id": validated.key_id, "before": _before(state)})
        log.info("model registry: %s rolled %s back to %s (from %s)", actor, task, target.label, state.active.label)
        return self.task_state(task)

    def shadow(self, task: str, name: str | None, version: str | None, actor: str) -> TaskState:
        """Start shadowing ``name@version`` on ``task`` (``name=None``: stop the shadow)."""
        current = self.task_state(task)
        if name is None:
            if current.shadow is None:
                raise ModelError(f"{task}: no shadow candidate to stop")
            with self.store.transaction() as conn:
                row = self._row(conn, task)
                state = self._state(task, row)
                if state.shadow is None:
                    raise ModelError(f"{task}: no shadow candidate to stop")
                generation = self._write(conn, task, row, active=state.active, previous=state.previous, shadow=None)
                self._history(conn, task, "shadow-stop", state.shadow, actor, "", generation,
                              {"shadow_stats": state.shadow_stats})
            return self.task_state(task)
        if version is None:
            raise ModelError(f"{task}: shadow needs the candidate's version")
        if (current.active.name, current.active.version) == (name, version):
            raise ModelError(f"{task}: {name}@{version} is the active model; shadow another version")
        try:
            validated = self._candidate(task, name, version)
        except ModelError as exc:
            self.record_refusal(task, name, version, actor, f"shadow: {exc}")
            raise
        candidate = ModelVersion.of(validated.manifest)
        with self.store.transaction() as conn:
            row = self._row(conn, task)
            state = self._state(task, row)
            generation = self._write(conn, task, row, active=state.active, previous=state.previous, shadow=candidate)
            self._history(conn, task, "shadow-start", candidate, actor, "", generation,
                          {"checks": validated.checks, "key_id": validated.key_id, "active": state.active.as_dict()})
        return self.task_state(task)

    def record_refusal(self, task: str, name: str, version: str, actor: str, reason: str,
                       sha256: str | None = None) -> None:
        """Append a ``refused`` history row (and audit entry); the registry state does not change."""
        with self.store.transaction() as conn:
            row = self._row(conn, task)
            generation = int(row["generation"]) if row is not None else None
            self._history(conn, task, "refused", ModelVersion(name, version, sha256 or ""), actor, reason, generation,
                          {})
        log.warning("model registry: %s/%s@%s refused: %s", task, name, version, reason)

    def refused_at_load(self, task: str, candidate: ModelVersion, serving: ModelVersion, actor: str,
                        reason: str) -> None:
        """The running appliance could not load ``candidate``: record it and point the registry back at the
        model that keeps serving (so the registry never claims a model the lanes do not run)."""
        with self.store.transaction() as conn:
            row = self._row(conn, task)
            state = self._state(task, row)
            generation = state.generation
            details: dict[str, Any] = {"serving": serving.as_dict(), "stage": "load"}
            if row is not None and state.active == candidate:
                previous = self._previous_before(conn, task, candidate, serving)
                if previous == serving:
                    previous = None
                generation = self._write(conn, task, row, active=serving, previous=previous, shadow=state.shadow)
                details["reverted_to"] = serving.as_dict()
            elif row is not None and state.shadow == candidate:
                generation = self._write(conn, task, row, active=state.active, previous=state.previous, shadow=None)
                details["shadow_cleared"] = True
            self._history(conn, task, "refused", candidate, actor, reason, generation, details)

    def save_shadow_stats(self, task: str, candidate: ModelVersion, stats: Mapping[str, Any]) -> bool:
        """Persist the running shadow's stats (only while ``candidate`` is still the task's shadow)."""
        with self.store.transaction() as conn:
            cur = conn.execute(
                "UPDATE model_registry SET shadow_stats_json = ?, shadow_stats_at = ? WHERE task = ? AND "
                "shadow_name = ? AND shadow_version = ? AND shadow_sha256 = ?",
                (json.dumps(dict(stats)), time.time(), task, candidate.name, candidate.version, candidate.sha256),
            )
            return cur.rowcount > 0

    # --- rows ---------------------------------------------------------------------------------

    @staticmethod
    def _row(conn: sqlite3.Connection, task: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = conn.execute("SELECT * FROM model_registry WHERE task = ?", (task,)).fetchone()
        return row

    @staticmethod
    def _previous_before(conn: sqlite3.Connection, task: str, candidate: ModelVersion,
                         serving: ModelVersion) -> ModelVersion | None:
        """The previous model as it was before ``candidate`` replaced ``serving`` (to undo that change)."""
        row = conn.execute("SELECT name, version, details_json FROM model_history WHERE task = ? AND action IN "
                           "('activate', 'rollback') ORDER BY id DESC LIMIT 1", (task,)).fetchone()
        if row is None or (row[0], row[1]) != (candidate.name, candidate.version):
            return None
        before = json.loads(row[2]).get("before") or {}
        active, previous = before.get("active"), before.get("previous")
        if not active or (active["name"], active["version"]) != (serving.name, serving.version) or not previous:
            return None
        return ModelVersion(previous["name"], previous["version"], previous["sha256"])

    def _write(self, conn: sqlite3.Connection, task: str, row: sqlite3.Row | None, *, active: ModelVersion,
               previous: ModelVersion | None, shadow: ModelVersion | None, keep_stats: bool = True) -> int:
        generation = (int(row["generation"]) if row is not None else 0) + 1
        old_shadow = _version(row, "shadow") if row is not None else None
        same_shadow = keep_stats and shadow is not None and shadow == old_shadow
        stats = row["shadow_stats_json"] if same_shadow and row is not None else None
        stats_at = row["shadow_stats_at"] if same_shadow and row is not None else None
        conn.execute(
            "INSERT INTO model_registry (task, active_name, active_version, active_sha256, previous_name, "
            "previous_version, previous_sha256, shadow_name, shadow_version, shadow_sha256, shadow_stats_json, "
            "shadow_stats_at, generation, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (task) DO UPDATE SET active_name = excluded.active_name, "
            "active_version = excluded.active_version, active_sha256 = excluded.active_sha256, "
            "previous_name = excluded.previous_name, previous_version = excluded.previous_version, "
            "previous_sha256 = excluded.previous_sha256, shadow_name = excluded.shadow_name, "
            "shadow_version = excluded.shadow_version, shadow_sha256 = excluded.shadow_sha256, "
            "shadow_stats_json = excluded.shadow_stats_json, shadow_stats_at = excluded.shadow_stats_at, "
            "generation = excluded.generation, updated_at = excluded.updated_at",
            (task, active.name, active.version, active.sha256, *_columns(previous), *_columns(shadow), stats,
             stats_at, generation, time.time()),
        )
        return generation

    @staticmethod
    def _history(conn: sqlite3.Connection, task: str, action: str, model: ModelVersion, actor: str, reason: str,
                 generation: int | None, details: Mapping[str, Any], forced: bool = False) -> None:
        from appliance.store import audit

        conn.execute(
            "INSERT INTO model_history (ts, task, action, name, version, sha256, actor, reason, forced, generation, "
            "details_json) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (time.time(), task, action, model.name, model.version, model.sha256 or None, actor, reason,
             int(forced), generation, json.dumps(dict(details), ensure_ascii=False, default=str)),
        )
        audit.append(conn, actor, f"model.{action}", f"{task}/{model.label}",
                     {"reason": reason, "forced": forced, "generation": generation})
