"""The model registry on real SQLite and real ONNX Runtime: activation with validation and the regression
gate, refusals, rollback, shadow mode and the CLI handlers. Nothing is mocked: the watcher is polled by
hand so each step is deterministic."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from appliance.cli import build_parser
from appliance.errors import ModelError
from appliance.inference.registry import ModelRegistry
from appliance.inference.watcher import ModelWatcher
from appliance.lanes.analysis import Readers
from appliance.store.db import Store
from tests.integration.model_packages import build_store, config_of, install_version, write_config

LATIN = "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf"
DET = "text-detection"
REC = "text-recognition"


def scene() -> np.ndarray:
    img = Image.new("RGB", (960, 540), (90, 90, 90))
    d = ImageDraw.Draw(img)
    d.rectangle((100, 100, 420, 170), fill=(250, 220, 40))
    d.text((110, 108), "29C-123.45", font=ImageFont.truetype(LATIN, 48), fill=(0, 0, 0))
    d.text((500, 300), "MSCU 123456 5", font=ImageFont.truetype(LATIN, 40), fill=(255, 255, 255))
    return np.array(img)[:, :, ::-1].copy()


@dataclass
class Env:
    root: Path
    config_path: Path
    store: Store
    registry: ModelRegistry
    readers: Readers
    watcher: ModelWatcher

    def read(self) -> tuple[list[str], dict[str, str]]:
        """OCR one frame the way the lane does (one pinned model per task); texts and the versions used."""
        assert self.readers.models is not None
        with self.readers.models.frame() as used:
            texts = [line.text for line in self.readers.ocr.read(scene(), max_side=960)]
        return texts, dict(used)


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[Env]:
    root = tmp_path / "models"
    build_store(root)
    install_version(root, DET, "ppocrv4-det", "1", "2")
    config_path = write_config(tmp_path, root)
    config = config_of(config_path)
    store = Store(config.storage.path, config.storage.evidence_dir)
    registry = ModelRegistry(store, config)
    readers = Readers.from_config(config, registry)
    assert readers.models is not None
    watcher = ModelWatcher(registry, readers.models, interval_s=0.1, shadow_every=1, shadow_queue=64)
    yield Env(root, config_path, store, registry, readers, watcher)
    watcher.stop()
    store.close()


def test_without_a_registry_row_the_config_model_serves(env: Env) -> None:
    states = env.registry.state()
    assert states[DET].configured and states[DET].active.label == "ppocrv4-det-int8@1"
    assert states[REC].active.label == "ppocrv4-rec@1" and states[DET].previous is None
    texts, used = env.read()
    assert "29C-123.45" in texts
    assert used == {DET: "ppocrv4-det-int8@1", REC: "ppocrv4-rec@1"}
    assert env.watcher.poll() is False  # nothing to change
    install_version(env.root, DET, "ppocrv4-det-int8", "1", "2")
    assert env.registry.task_state(DET).active.label == "ppocrv4-det-int8@2"  # the config's choice: highest version
    assert env.watcher.poll() is False and env.read()[1][DET] == "ppocrv4-det-int8@1"  # installing never activates


def test_activate_then_rollback_in_one_call(env: Env) -> None:
    state = env.registry.activate(DET, "ppocrv4-det", "2", actor="eng", reason="float detector")
    assert state.active.label == "ppocrv4-det@2" and state.previous is not None
    assert state.previous.label == "ppocrv4-det-int8@1" and state.generation == 1
    assert env.read()[1][DET] == "ppocrv4-det-int8@1"  # not before the appliance picks it up
    assert env.watcher.poll() is True
    texts, used = env.read()
    assert used[DET] == "ppocrv4-det@2" and "29C-123.45" in texts

    state = env.registry.rollback(DET, actor="eng")
    assert state.active.label == "ppocrv4-det-int8@1" and state.previous is not None
    assert state.previous.label == "ppocrv4-det@2" and state.generation == 2
    env.watcher.poll()
    assert env.read()[1][DET] == "ppocrv4-det-int8@1"
    history = env.registry.history(DET)
    assert [(h.action, h.label, h.actor) for h in history] == [
        ("rollback", "ppocrv4-det-int8@1", "eng"), ("activate", "ppocrv4-det@2", "eng")]
    assert history[1].reason == "float detector" and any("sha256" in c for c in history[1].details["checks"])
    assert env.store.verify_audit_chain() is None
    actions = [r["action"] for r in env.store.query("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["model.activate", "model.rollback"]
    with pytest.raises(ModelError, match="already the active model"):
        env.registry.activate(DET, "ppocrv4-det-int8", "1", actor="eng")


def test_refused_activation_leaves_the_active_model_serving(env: Env) -> None:
    install_version(env.root, DET, "ppocrv4-det", "1", "3", corrupt=True)
    with pytest.raises(ModelError, match=r"ppocrv4-det/3: sha256: .*manifest says"):
        env.registry.activate(DET, "ppocrv4-det", "3", actor="eng")
    state = env.registry.task_state(DET)
    assert state.configured and state.active.label == "ppocrv4-det-int8@1"
    env.watcher.poll()
    texts, used = env.read()
    assert used[DET] == "ppocrv4-det-int8@1" and "29C-123.45" in texts
    (refusal,) = env.registry.history(DET)
    assert refusal.action == "refused" and refusal.label == "ppocrv4-det@3" and "sha256" in refusal.reason
    with pytest.raises(ModelError, match="no model"):
        env.registry.activate(DET, "nothing-here", "1", actor="eng")
    assert env.registry.history(DET)[0].action == "refused"


def test_a_package_broken_after_activation_is_refused_at_load(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.registry.activate(DET, "ppocrv4-det", "2", actor="eng")
    model = env.root / DET / "ppocrv4-det" / "2" / "model.onnx"
    raw = bytearray(model.read_bytes())
    raw[4000] ^= 0xFF
    model.write_bytes(bytes(raw))  # replaced on disk between the command and the appliance's load
    with caplog.at_level("ERROR", logger="appliance.inference.watcher"):
        env.watcher.poll()
    assert any("refused at load" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    texts, used = env.read()
    assert used[DET] == "ppocrv4-det-int8@1" and "29C-123.45" in texts  # the old model keeps serving
    state = env.registry.task_state(DET)
    assert state.active.label == "ppocrv4-det-int8@1" and state.previous is None  # the registry says what serves
    history = env.registry.history(DET)
    assert [h.action for h in history] == ["refused", "activate"]
    assert history[0].actor == "appliance" and "sha256" in history[0].reason
    assert history[0].details["reverted_to"]["name"] == "ppocrv4-det-int8"
    assert env.watcher.refusals == 1 and env.watcher.poll() is False  # not retried


def test_regression_gate_refuses_force_overrides_with_a_reason(env: Env) -> None:
    common = {"eval_set": "sim-2026-200"}
    install_version(env.root, DET, "ppocrv4-det", "1", "3", metrics={"plate_accuracy": 0.90, "cer": 0.05,
                                                                     "ms_per_frame": 140.0}, **common)
    install_version(env.root, DET, "ppocrv4-det", "1", "4", metrics={"plate_accuracy": 0.87, "cer": 0.05,
                                                                     "ms_per_frame": 400.0}, **common)
    install_version(env.root, DET, "ppocrv4-det", "1", "5", metrics={"plate_accuracy": 0.895, "cer": 0.058,
                                                                     "ms_per_frame": 90.0}, **common)
    install_version(env.root, DET, "ppocrv4-det", "1", "6", eval_set="other-set", metrics={"plate_accuracy": 0.5})
    env.registry.activate(DET, "ppocrv4-det", "3", actor="eng")  # the int8 build has no eval_set: no gate
    with pytest.raises(ModelError, match=r"regression gate.*plate_accuracy 0.9 -> 0.87"):
        env.registry.activate(DET, "ppocrv4-det", "4", actor="eng")
    refusal = env.registry.history(DET)[0]
    assert refusal.action == "refused" and "plate_accuracy" in refusal.reason and "ms_per_frame" not in refusal.reason
    assert env.registry.task_state(DET).active.label == "ppocrv4-det@3"
    with pytest.raises(ModelError, match="needs a reason"):
        env.registry.activate(DET, "ppocrv4-det", "4", actor="eng", force=True)
    state = env.registry.activate(DET, "ppocrv4-det", "4", actor="lead", reason="latency measured elsewhere",
                                  force=True)
    assert state.active.label == "ppocrv4-det@4"
    forced = env.registry.history(DET)[0]
    assert forced.action == "activate" and forced.forced and forced.reason == "latency measured elsewhere"
    assert forced.details["regressions_overridden"]
    env.registry.activate(DET, "ppocrv4-det", "3", actor="eng")  # better again: passes
    env.registry.activate(DET, "ppocrv4-det", "5", actor="eng")  # within the margin (0.005 < 0.01)
    env.registry.activate(DET, "ppocrv4-det", "6", actor="eng")  # another eval_set: nothing to compare
    assert env.registry.history(DET)[0].details["gate"].startswith("no shared eval_set")
    assert [h.action for h in env.registry.history(DET)] == ["activate"] * 4 + ["refused", "activate"]


def test_history_is_append_only(env: Env) -> None:
    env.registry.shadow(DET, "ppocrv4-det", "2", actor="eng")
    env.registry.shadow(DET, None, None, actor="eng")
    assert [h.action for h in env.registry.history()] == ["shadow-stop", "shadow-start"]
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        env.store.query("UPDATE model_history SET actor = 'someone else'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        env.store.query("DELETE FROM model_history")
    assert len(env.registry.history()) == 2


def test_shadow_stats_accumulate_without_changing_outputs(env: Env) -> None:
    slot = env.readers.models[DET] if env.readers.models else None
    assert slot is not None
    x = (np.random.default_rng(3).random((1, 3, 544, 960), dtype=np.float32) - 0.5) * 2
    img = scene()
    without = [slot.run({"x": x})[0] for _ in range(3)]
    quads_without = env.readers.ocr.detector.detect(img)
    texts_without, _ = env.read()

    env.registry.shadow(DET, "ppocrv4-det", "2", actor="eng")
    assert env.watcher.poll() is True and slot.shadow is not None
    with_shadow = [slot.run({"x": x})[0] for _ in range(3)]
    quads_with = env.readers.ocr.detector.detect(img)
    texts_with, used = env.read()
    assert slot.shadow.wait_idle(30)
    for a, b in zip(without, with_shadow, strict=True):
        assert np.array_equal(a, b)  # the active outputs are untouched
    assert len(quads_with) == len(quads_without) and all(
        np.array_equal(a, b) for a, b in zip(quads_with, quads_without, strict=True))
    assert texts_with == texts_without and used[DET] == "ppocrv4-det-int8@1"  # the shadow never serves

    stats = slot.shadow.snapshot()
    assert stats["candidate"] == "ppocrv4-det@2" and stats["samples"] == 5 and stats["errors"] == 0
    assert stats["samples"] + stats["dropped"] == 5
    assert 0.99 < stats["agreement"] <= 1.0  # int8 vs float: nearly every pixel on the same side
    assert stats["active_ms"]["p50"] > 0 and stats["candidate_ms"]["p95"] >= stats["candidate_ms"]["p50"] > 0

    env.watcher.save_shadow_stats()
    saved = env.registry.task_state(DET).shadow_stats
    assert saved is not None and saved["samples"] == 5
    # A restarted appliance goes on counting from what was saved.
    readers = Readers.from_config(config_of(env.config_path), env.registry)
    assert readers.models is not None
    again = ModelWatcher(env.registry, readers.models, shadow_every=1)
    again.poll()
    runner = readers.models[DET].shadow
    assert runner is not None and runner.snapshot()["samples"] == 5
    again.stop()

    env.registry.shadow(DET, None, None, actor="eng")
    env.watcher.poll()
    assert slot.shadow is None
    stop = env.registry.history(DET)[0]
    assert stop.action == "shadow-stop" and stop.details["shadow_stats"]["samples"] == 5


def test_recognizer_shadow_compares_decoded_text(env: Env) -> None:
    install_version(env.root, REC, "ppocrv4-rec", "1", "1", as_name="ppocrv4-rec-retrained")
    env.registry.shadow(REC, "ppocrv4-rec-retrained", "1", actor="eng")
    env.watcher.poll()
    assert env.readers.models is not None
    runner = env.readers.models[REC].shadow
    assert runner is not None
    texts, _ = env.read()
    assert runner.wait_idle(30)
    stats = runner.snapshot()
    assert stats["samples"] == len(texts) >= 1 and stats["agreement"] == 1.0  # the same network


def test_a_busy_shadow_drops_samples_and_counts_them(env: Env) -> None:
    from appliance.inference.slots import ShadowRunner

    slot = env.readers.models[DET] if env.readers.models else None
    assert slot is not None
    x = np.zeros((1, 3, 320, 320), np.float32)
    out = slot.run({"x": x})
    runner = ShadowRunner(DET, env.registry.load(DET, env.registry.task_state(DET).active).model, every=1,
                          queue_size=1)
    for _ in range(40):
        runner.offer(slot.active, {"x": x}, out, 1.0)
    assert runner.wait_idle(30)
    stats = runner.stop()
    assert stats["samples"] + stats["dropped"] == 40 and stats["dropped"] > 0 and stats["agreement"] == 1.0


def test_unknown_task_and_shadow_of_the_active_model(env: Env) -> None:
    with pytest.raises(ModelError, match="unknown task"):
        env.registry.activate("faces", "x", "1", actor="eng")
    with pytest.raises(ModelError, match="is the active model"):
        env.registry.shadow(DET, "ppocrv4-det-int8", "1", actor="eng")
    with pytest.raises(ModelError, match="no previous model"):
        env.registry.rollback(DET, actor="eng")
    with pytest.raises(ModelError, match="no shadow"):
        env.registry.shadow(DET, None, None, actor="eng")


def test_cli_handlers(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    cfg = str(env.config_path)

    def run(*argv: str) -> str:
        args = parser.parse_args(["models", *argv])
        assert args.func(args) == 0
        return capsys.readouterr().out

    assert "activated text-detection ppocrv4-det@2" in run("activate", DET, "ppocrv4-det", "2", "--config", cfg,
                                                           "--actor", "eng", "--reason", "try float")
    assert "shadowing" in run("shadow", DET, "ppocrv4-det-int8", "1", "--config", cfg, "--actor", "eng")
    env.watcher.poll()
    env.read()
    runner = env.readers.models[DET].shadow if env.readers.models else None
    assert runner is not None and runner.wait_idle(30)
    env.watcher.save_shadow_stats()
    out = run("status", "--config", cfg)
    assert "active    ppocrv4-det@2" in out and "previous  ppocrv4-det-int8@1" in out
    assert "shadow    ppocrv4-det-int8@1" in out and "samples 1," in out and "latency active p50" in out
    assert "reason: try float" in out and "shadow-start" in out
    assert "rolled text-detection back to ppocrv4-det-int8@1" in run("rollback", DET, "--config", cfg)
    assert "shadow    -" in run("status", "--config", cfg)
    with pytest.raises(ModelError, match="no shadow"):
        run("shadow", DET, "--stop", "--config", cfg)  # the rollback promoted the shadow candidate
    args = parser.parse_args(["models", "activate", DET, "ppocrv4-det", "2", "--force", "--config", cfg])
    with pytest.raises(Exception, match="needs --reason"):
        args.func(args)
