"""Hot swap in the running appliance: a background thread that follows the model registry.

``ModelWatcher`` polls the registry's generation counters (``models.watch_interval_s``). When a
task's generation moves, it validates and loads the newly active model (or shadow candidate) on
its own thread, off the lane threads, then swaps it into the task's ``ModelSlot``: frames keep
flowing while it loads, frames already analysing finish on the model they pinned, and the next
frame gets the new one. A candidate that fails validation at load leaves the active model
serving: an ERROR in the log, a ``refused`` history row, and the registry pointed back at the
model that serves. Shadow stats are written to the registry every ``stats_interval_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.errors import ModelError
from appliance.inference.registry import TASK_CONFIG_FIELDS, ModelRegistry, ModelVersion, TaskState
from appliance.inference.session import OnnxModel, SessionOptions
from appliance.inference.slots import ModelSlot, ModelSlots, ShadowStats, version_label
from appliance.inference.store import ModelStore
from appliance.inference.validation import ValidationPolicy, validate_package, validation_policy

if TYPE_CHECKING:
    from appliance.config import AppConfig

log = logging.getLogger(__name__)

ACTOR = "appliance"  # who the history names for refusals found by the running appliance


class ModelWatcher:
    def __init__(
        self,
        registry: ModelRegistry,
        slots: ModelSlots,
        *,
        interval_s: float = 1.0,
        stats_interval_s: float = 10.0,
        shadow_every: int = 10,
        shadow_queue: int = 4,
        options: SessionOptions | None = None,
        on_change: Callable[[], None] | None = None,
    ):
        self.registry = registry
        self.slots = slots
        self.interval_s = interval_s
        self.stats_interval_s = stats_interval_s
        self.shadow_every = shadow_every
        self.shadow_queue = shadow_queue
        self.options = options
        self.on_change = on_change
        self._seen: dict[str, int] = {}
        self._shadows: dict[str, ModelVersion] = {}
        self._stats_due = time.monotonic() + stats_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.swaps = 0
        self.refusals = 0

    # --- thread -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="model-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling, persist the shadow stats and stop the shadows."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.save_shadow_stats()
        self.slots.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # the watcher must outlive a locked database or a bad package
                log.exception("model watcher: poll failed")
            self._stop.wait(self.interval_s)

    # --- one round ----------------------------------------------------------------------------

    def poll(self) -> bool:
        """Apply what changed in the registry since the last poll; True when a slot changed."""
        generations = self.registry.generations()
        changed = False
        for slot in self.slots:
            if slot.task not in self.registry.tasks:
                continue
            generation = generations.get(slot.task, 0)
            if self._seen.get(slot.task) == generation:
                continue
            self._seen[slot.task] = generation
            changed |= self._apply(slot, self.registry.task_state(slot.task))
        if time.monotonic() >= self._stats_due:
            self.save_shadow_stats()
        if changed and self.on_change is not None:
            self.on_change()
        return changed

    def _apply(self, slot: ModelSlot, state: TaskState) -> bool:
        changed = False
        serving = ModelVersion.of(slot.active.manifest)
        want = state.active
        # No registry row: the model chosen at start-up keeps serving (installing a version never activates it).
        if not state.configured and (want.name, want.version, want.sha256) != (
                serving.name, serving.version, serving.sha256):
            try:
                validated = self.registry.load(slot.task, want, self.options)
            except ModelError as exc:
                self.refusals += 1
                log.error("model %s: %s refused at load, %s keeps serving: %s", slot.task, want.label,
                          serving.label, exc)
                self.registry.refused_at_load(slot.task, want, serving, ACTOR, str(exc))
                self._seen[slot.task] = self.registry.generations().get(slot.task, 0)
            else:
                slot.swap(validated.model)
                self.swaps += 1
                changed = True
        current = self._shadows.get(slot.task)
        if state.shadow != current:
            if current is not None:
                final = slot.stop_shadow()
                if final is not None:
                    self.registry.save_shadow_stats(slot.task, current, final)
                del self._shadows[slot.task]
                changed = True
            if state.shadow is not None:
                changed |= self._start_shadow(slot, state.shadow, state)
        return changed

    def _start_shadow(self, slot: ModelSlot, candidate: ModelVersion, state: TaskState) -> bool:
        try:
            validated = self.registry.load(slot.task, candidate, self.options)
        except ModelError as exc:
            self.refusals += 1
            log.error("model %s: shadow candidate %s refused at load: %s", slot.task, candidate.label, exc)
            self.registry.refused_at_load(slot.task, candidate, ModelVersion.of(slot.active.manifest), ACTOR,
                                          f"shadow: {exc}")
            self._seen[slot.task] = self.registry.generations().get(slot.task, 0)
            return False
        stats = ShadowStats.from_dict(candidate.label, state.shadow_stats)  # go on counting after a restart
        slot.start_shadow(validated.model, every=self.shadow_every, queue_size=self.shadow_queue, stats=stats)
        self._shadows[slot.task] = candidate
        return True

    def save_shadow_stats(self) -> None:
        """Write each running shadow's stats into the registry."""
        self._stats_due = time.monotonic() + self.stats_interval_s
        for task, candidate in list(self._shadows.items()):
            runner = self.slots[task].shadow if task in self.slots else None
            if runner is not None:
                try:
                    self.registry.save_shadow_stats(task, candidate, runner.snapshot())
                except Exception:
                    log.exception("model watcher: cannot save the shadow stats of %s", task)


def open_model_slots(config: AppConfig, registry: ModelRegistry | None = None,
                     store: ModelStore | None = None) -> ModelSlots:
    """One slot per task, serving the registry's active model (validated), or the config's choice where the
    registry has no row. An active model that fails validation at start-up is refused (ERROR, history) and
    the config's choice serves instead."""
    store = store or (registry.models if registry is not None else
                      ModelStore(config.models.root) if config.models.root else ModelStore())
    policy = validation_policy(config)
    options = policy.options
    slots = []
    for task, field in TASK_CONFIG_FIELDS.items():
        name = str(getattr(config.analyzers, field))
        model: OnnxModel | None = None
        state = registry.task_state(task) if registry is not None else None
        if registry is not None and state is not None and not state.configured:
            try:
                model = registry.load(task, state.active, options).model
            except ModelError as exc:
                fallback = _configured_model(store, task, name, policy)
                log.error("model %s: registry's active %s refused at start-up, serving the config's %s: %s", task,
                          state.active.label, version_label(fallback.manifest), exc)
                registry.refused_at_load(task, state.active, ModelVersion.of(fallback.manifest), ACTOR, str(exc))
                model = fallback
        if model is None:
            model = _configured_model(store, task, name, policy)
        slots.append(ModelSlot(task, model))
    return ModelSlots(slots)


def _configured_model(store: ModelStore, task: str, name: str, policy: ValidationPolicy) -> OnnxModel:
    """The config's model for ``task``, through every validation check (signature included): a model
    that fails one stops the start-up with the check's message, rather than serving unchecked."""
    ref = store.get(task, name)
    if not ref.file.is_file() and ref.manifest.source is not None:
        store.prepare(ref)  # copied from its installed wheel (no download), then checked like any other
    return validate_package(ref.folder, policy, store_root=store.root).model
