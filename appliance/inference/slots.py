"""Model slots: what the analyzers hold instead of a bare ``OnnxModel``, so models can change while lanes run.

A ``ModelSlot`` serves one task (``text-detection``, ``text-recognition``) and has the duck interface
of ``OnnxModel`` (``run``, ``input_names``, ``output_names``, ``manifest``, ``metadata``, ``providers``,
``path``). Swapping its active model is one reference replacement under a small lock; inference
runs outside the lock, so a swap never waits for a frame and a frame never waits for a swap.

Each analysed frame uses one model per slot: inside ``with slots.frame() as used:`` the first use
of a slot pins the model it serves at that moment for the rest of the frame (thread-local, so the
lane's worker threads each pin their own frame), and ``used`` maps task -> ``name@version`` of the
models that made the frame's reads. A swap during the frame takes effect on the next frame.

A slot may also have a *shadow* candidate: every Nth call's inputs are copied into a small
bounded queue and run through the candidate on a background thread (a full queue drops the
sample and counts it). The active outputs are returned before, and independently of, anything the
shadow does: the shadow never delays or changes what the lane sees. ``ShadowStats`` compares
outputs per task (text detection: share of pixels on the same side of the manifest's
``thresholds.binarize``; text recognition: greedy CTC decodes equal) and latencies.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from appliance.errors import ModelError
from appliance.inference.manifest import ModelManifest
from appliance.inference.session import OnnxModel

log = logging.getLogger(__name__)

DEFAULT_BINARIZE = 0.3  # text-detection threshold when a manifest has no thresholds.binarize
LATENCY_WINDOW = 256  # latency samples kept per side for the percentiles (and persisted)


class InferenceModel(Protocol):
    """What an analyzer needs of a model: an ``OnnxModel`` or a ``ModelSlot`` serving one."""

    @property
    def path(self) -> Path: ...
    @property
    def manifest(self) -> ModelManifest: ...
    @property
    def providers(self) -> tuple[str, ...]: ...
    @property
    def input_names(self) -> list[str]: ...
    @property
    def output_names(self) -> list[str]: ...
    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]: ...
    def metadata(self) -> dict[str, str]: ...


def version_label(manifest: ModelManifest) -> str:
    """``name@version`` of a model."""
    return f"{manifest.name}@{manifest.version}"


# --- shadow comparison ------------------------------------------------------------------------


def _charset(model: OnnxModel | None, manifest: ModelManifest) -> list[str] | None:
    if model is None:
        return None
    chars = model.metadata().get(manifest.charset_metadata_key or "character")
    return ["blank", *chars.splitlines(), " "] if chars else None


def greedy_decode(probs: np.ndarray, charset: list[str] | None = None) -> tuple[Any, ...]:
    """CTC greedy decode of one [steps, classes] output: argmax, repeats collapsed, blanks (0) dropped.
    Class ids, or characters when ``charset`` is given (so recognisers with other charsets compare)."""
    best = probs.argmax(axis=-1)
    out: list[Any] = []
    previous = -1
    for cls in best.tolist():
        if cls != 0 and cls != previous:
            out.append(charset[cls] if charset is not None and cls < len(charset) else cls)
        previous = cls
    return tuple(out)


def agreement(
    task: str,
    active: ModelManifest,
    active_out: list[np.ndarray],
    candidate: ModelManifest,
    candidate_out: list[np.ndarray],
    charsets: tuple[list[str] | None, list[str] | None] = (None, None),
) -> float:
    """How far the candidate's outputs agree with the active model's on the same inputs, 0..1."""
    a, c = np.asarray(active_out[0]), np.asarray(candidate_out[0])
    if a.shape != c.shape and task != "text-recognition":
        return 0.0
    if task == "text-detection":
        ta = active.thresholds.get("binarize", DEFAULT_BINARIZE)
        tc = candidate.thresholds.get("binarize", DEFAULT_BINARIZE)
        return float(np.mean((a > ta) == (c > tc))) if a.size else 1.0
    if task == "text-recognition":
        if a.ndim != 3 or c.ndim != 3 or a.shape[0] != c.shape[0]:
            return 0.0
        cs_a, cs_c = charsets if charsets[0] is not None and charsets[1] is not None else (None, None)
        same = [greedy_decode(a[i], cs_a) == greedy_decode(c[i], cs_c) for i in range(a.shape[0])]
        return float(np.mean(same)) if same else 1.0
    equal = [x.shape == y.shape and bool(np.allclose(x, y, atol=1e-3)) for x, y in
             zip(active_out, candidate_out, strict=False)]
    return float(np.mean(equal)) if equal else 0.0


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


@dataclass
class ShadowStats:
    """Running comparison of a shadow candidate with the active model."""

    candidate: str  # name@version
    samples: int = 0  # inputs the candidate ran and compared
    dropped: int = 0  # sampled inputs dropped because the shadow was busy
    errors: int = 0  # candidate runs that raised
    agreement_sum: float = 0.0
    active_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    candidate_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def as_dict(self) -> dict[str, Any]:
        active, cand = list(self.active_ms), list(self.candidate_ms)
        return {
            "candidate": self.candidate,
            "samples": self.samples,
            "dropped": self.dropped,
            "errors": self.errors,
            "agreement": round(self.agreement_sum / self.samples, 6) if self.samples else None,
            "agreement_sum": self.agreement_sum,
            "active_ms": {"p50": _percentile(active, 50), "p95": _percentile(active, 95)},
            "candidate_ms": {"p50": _percentile(cand, 50), "p95": _percentile(cand, 95)},
            "active_ms_window": [round(v, 3) for v in active],
            "candidate_ms_window": [round(v, 3) for v in cand],
        }

    @classmethod
    def from_dict(cls, candidate: str, data: dict[str, Any] | None) -> ShadowStats:
        """Stats persisted earlier for the same candidate (after a restart), or fresh ones."""
        stats = cls(candidate)
        if not data or data.get("candidate") != candidate:
            return stats
        stats.samples = int(data.get("samples", 0))
        stats.dropped = int(data.get("dropped", 0))
        stats.errors = int(data.get("errors", 0))
        stats.agreement_sum = float(data.get("agreement_sum", 0.0))
        stats.active_ms.extend(float(v) for v in data.get("active_ms_window", []))
        stats.candidate_ms.extend(float(v) for v in data.get("candidate_ms_window", []))
        return stats


@dataclass
class _Sample:
    active: OnnxModel
    inputs: dict[str, np.ndarray]
    outputs: list[np.ndarray]
    active_ms: float


class ShadowRunner:
    """Runs a candidate on a sample of a slot's live inputs, on its own thread, and compares."""

    def __init__(self, task: str, candidate: OnnxModel, every: int = 10, queue_size: int = 4,
                 stats: ShadowStats | None = None):
        if every < 1 or queue_size < 1:
            raise ValueError("shadow: every and queue_size must be at least 1")
        self.task = task
        self.candidate = candidate
        self.every = every
        self.stats = stats or ShadowStats(version_label(candidate.manifest))
        self._queue: queue.Queue[_Sample] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._calls = 0
        self._charsets: dict[str, list[str] | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"shadow-{task}", daemon=True)
        self._thread.start()

    @property
    def label(self) -> str:
        return version_label(self.candidate.manifest)

    def offer(self, active: OnnxModel, inputs: dict[str, np.ndarray], outputs: list[np.ndarray],
              active_ms: float) -> None:
        """Called by the slot after each active run; never blocks (a busy shadow drops the sample)."""
        with self._lock:
            self._calls += 1
            if (self._calls - 1) % self.every or self._stop.is_set():
                return
        sample = _Sample(active, {k: np.array(v, copy=True) for k, v in inputs.items()},
                         [np.array(o, copy=True) for o in outputs], active_ms)
        try:
            self._queue.put_nowait(sample)
        except queue.Full:
            with self._lock:
                self.stats.dropped += 1

    def _charset_of(self, model: OnnxModel) -> list[str] | None:
        key = model.manifest.sha256
        if key not in self._charsets:
            self._charsets[key] = _charset(model, model.manifest) if self.task == "text-recognition" else None
        return self._charsets[key]

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                sample = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._compare(sample)
            finally:
                self._queue.task_done()

    def _compare(self, sample: _Sample) -> None:
        try:
            started = time.perf_counter()
            out = self.candidate.run(sample.inputs)
            ms = (time.perf_counter() - started) * 1000.0
            score = agreement(self.task, sample.active.manifest, sample.outputs, self.candidate.manifest, out,
                              (self._charset_of(sample.active), self._charset_of(self.candidate)))
        except Exception:
            log.warning("shadow %s %s: candidate run failed", self.task, self.label, exc_info=True)
            with self._lock:
                self.stats.errors += 1
            return
        with self._lock:
            self.stats.samples += 1
            self.stats.agreement_sum += score
            self.stats.active_ms.append(sample.active_ms)
            self.stats.candidate_ms.append(ms)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued sample was compared (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return False
            time.sleep(0.01)
        return True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self.stats.as_dict()

    def stop(self, timeout: float = 5.0) -> dict[str, Any]:
        """Stop the thread (samples still queued are dropped) and return the final stats."""
        self._stop.set()
        self._thread.join(timeout)
        return self.snapshot()


# --- slots ------------------------------------------------------------------------------------


class ModelSlot:
    """The model a task is served by, replaceable at run time; see the module doc."""

    def __init__(self, task: str, model: OnnxModel):
        if model.manifest.task != task:
            raise ModelError(f"slot {task}: model {version_label(model.manifest)} is a {model.manifest.task} model")
        self.task = task
        self._lock = threading.Lock()
        self._active = model
        self._shadow: ShadowRunner | None = None
        self._owner: ModelSlots | None = None
        self.swaps = 0

    # what is served
    @property
    def active(self) -> OnnxModel:
        """The model new frames get (ignores any frame pin)."""
        return self._active

    @property
    def label(self) -> str:
        return version_label(self._active.manifest)

    def _model(self) -> OnnxModel:
        owner = self._owner
        return owner._pinned(self) if owner is not None else self._active

    # the OnnxModel duck interface (the pinned model inside a frame, else the active one)
    @property
    def path(self) -> Path:
        return self._model().path

    @property
    def manifest(self) -> ModelManifest:
        return self._model().manifest

    @property
    def providers(self) -> tuple[str, ...]:
        return self._model().providers

    @property
    def input_names(self) -> list[str]:
        return self._model().input_names

    @property
    def output_names(self) -> list[str]:
        return self._model().output_names

    def metadata(self) -> dict[str, str]:
        return self._model().metadata()

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        model = self._model()
        shadow = self._shadow
        started = time.perf_counter()
        outputs = model.run(inputs)
        if shadow is not None:
            shadow.offer(model, inputs, outputs, (time.perf_counter() - started) * 1000.0)
        return outputs

    # changes
    def swap(self, model: OnnxModel) -> OnnxModel:
        """Serve ``model`` from the next frame on; returns the model it replaces."""
        if model.manifest.task != self.task:
            raise ModelError(f"slot {self.task}: cannot serve {version_label(model.manifest)}, a "
                             f"{model.manifest.task} model")
        with self._lock:
            old, self._active = self._active, model
            self.swaps += 1
        log.info("model %s: now serving %s (was %s)", self.task, version_label(model.manifest),
                 version_label(old.manifest))
        return old

    @property
    def shadow(self) -> ShadowRunner | None:
        return self._shadow

    def start_shadow(self, candidate: OnnxModel, every: int = 10, queue_size: int = 4,
                     stats: ShadowStats | None = None) -> ShadowRunner:
        if candidate.manifest.task != self.task:
            raise ModelError(f"slot {self.task}: shadow {version_label(candidate.manifest)} is a "
                             f"{candidate.manifest.task} model")
        runner = ShadowRunner(self.task, candidate, every=every, queue_size=queue_size, stats=stats)
        with self._lock:
            old, self._shadow = self._shadow, runner
        if old is not None:
            old.stop()
        log.info("model %s: shadowing %s (every %d call(s))", self.task, runner.label, every)
        return runner

    def stop_shadow(self) -> dict[str, Any] | None:
        """Stop the shadow candidate; its final stats, or None when there was none."""
        with self._lock:
            runner, self._shadow = self._shadow, None
        if runner is None:
            return None
        stats = runner.stop()
        log.info("model %s: shadow %s stopped after %d sample(s)", self.task, runner.label, stats["samples"])
        return stats


@dataclass
class _FramePins:
    models: dict[str, OnnxModel] = field(default_factory=dict)
    used: dict[str, str] = field(default_factory=dict)


class ModelSlots:
    """The slots of one appliance (one per task), and the frame-scoped pins of their models."""

    def __init__(self, slots: list[ModelSlot]):
        self._slots: dict[str, ModelSlot] = {}
        for slot in slots:
            if slot.task in self._slots:
                raise ModelError(f"two model slots for task {slot.task}")
            if slot._owner is not None and slot._owner is not self:
                raise ModelError(f"model slot {slot.task} already belongs to another set of slots")
            slot._owner = self
            self._slots[slot.task] = slot
        self._local = threading.local()

    def __getitem__(self, task: str) -> ModelSlot:
        return self._slots[task]

    def __contains__(self, task: object) -> bool:
        return task in self._slots

    def __iter__(self) -> Iterator[ModelSlot]:
        return iter(list(self._slots.values()))

    def versions(self) -> dict[str, str]:
        """task -> ``name@version`` served to new frames now."""
        return {task: slot.label for task, slot in self._slots.items()}

    @contextmanager
    def frame(self) -> Iterator[dict[str, str]]:
        """Pin one model per slot for the frame analysed on this thread; yields task -> ``name@version`` of
        the models the frame used (filled as slots are used). Nested calls share the outer frame."""
        current: _FramePins | None = getattr(self._local, "frame", None)
        if current is not None:
            yield current.used
            return
        pins = _FramePins()
        self._local.frame = pins
        try:
            yield pins.used
        finally:
            self._local.frame = None

    def _pinned(self, slot: ModelSlot) -> OnnxModel:
        pins: _FramePins | None = getattr(self._local, "frame", None)
        if pins is None:
            return slot.active
        model = pins.models.get(slot.task)
        if model is None:
            model = slot.active
            pins.models[slot.task] = model
            pins.used[slot.task] = version_label(model.manifest)
        return model

    def stop(self) -> None:
        """Stop every shadow (shutdown)."""
        for slot in self:
            slot.stop_shadow()
