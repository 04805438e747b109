"""/metrics in the Prometheus text format, from real stage observations, a real store and outbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from appliance.errors import ConfigError
from appliance.lifecycle.stage_latency import StageLatency
from appliance.lifecycle.watchdog import Heartbeats
from appliance.store.db import Store
from appliance.web.app import WebServices, create_app
from appliance.web.health import OpsView
from appliance.web.metrics import read_token
from tests.web.conftest import JPEG, seed_store


class FakePipeline:
    """Stands in for a LanePipeline: only its queue depth is read (a real pipeline needs the OCR models)."""

    in_flight = 3


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "gate.db", tmp_path / "evidence")
    yield s
    s.close()


def _status() -> dict[str, Any]:
    return {
        "models": [{"task": "text-detection", "name": "ppocrv4-det", "version": "4.0",
                    "provider": "CPUExecutionProvider"}],
        "lanes": {"cargo-1": {"analysed_frames": 40, "crossings": 2, "sources": {
            "front": {"state": "connected", "fps": 4.5, "frames_read": 120, "dropped_by_reason": {"drops": 7}},
            "scan": {"state": "disconnected", "fps": 0.0, "frames_read": 3, "dropped_by_reason": {"rejected": 2}},
        }}},
    }


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _get(view: OpsView, token: str | None = None, header: str | None = None) -> Any:
    client = TestClient(create_app(WebServices(view.store, "VNHNG", view.status, ops=view, metrics_token=token)))
    return client.get("/metrics", headers={"Authorization": header} if header else {})


def test_metrics_report_stages_lanes_sources_outbox_disk_and_models(store: Store) -> None:
    stages = StageLatency()
    for seconds in (0.004, 0.02, 0.3):
        stages.observe("cargo-1", "analysis", seconds)
    stages.observe("cargo-1", "store", 0.002)
    beats = Heartbeats()
    beats.beat("cargo-1")
    seed_store(store)  # three crossings, one evidence file
    store.register_sink("central")
    store.enqueue_event({"id": "ev-x", "type": "test"}, "cargo-1")
    view = OpsView(store, _status(), lanes=["cargo-1"], heartbeats=beats, stages=stages,
                   pipelines={"cargo-1": FakePipeline()})
    response = _get(view)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    m = _samples(response.text)
    analysis = (("lane", "cargo-1"), ("stage", "analysis"))
    assert m[("gate_stage_latency_seconds_count", analysis)] == 3
    assert m[("gate_stage_latency_seconds_sum", analysis)] == pytest.approx(0.324)
    assert m[("gate_stage_latency_seconds_bucket", tuple(sorted((*analysis, ("le", "0.005")))))] == 1
    assert m[("gate_stage_latency_seconds_bucket", tuple(sorted((*analysis, ("le", "0.025")))))] == 2
    assert m[("gate_stage_latency_seconds_bucket", tuple(sorted((*analysis, ("le", "+Inf")))))] == 3
    assert m[("gate_stage_latency_seconds_count", (("lane", "cargo-1"), ("stage", "store")))] == 1
    assert m[("gate_lane_analysed_fps", (("lane", "cargo-1"),))] == pytest.approx(0.3)  # 3 frames in 10 s
    assert m[("gate_lane_analysed_frames_total", (("lane", "cargo-1"),))] == 40
    front = (("lane", "cargo-1"), ("source", "front"))
    assert m[("gate_source_fps", front)] == 4.5 and m[("gate_source_up", front)] == 1
    assert m[("gate_source_up", (("lane", "cargo-1"), ("source", "scan")))] == 0
    dropped = "gate_source_dropped_frames_total"
    assert m[(dropped, (("lane", "cargo-1"), ("reason", "drops"), ("source", "front")))] == 7
    assert m[(dropped, (("lane", "cargo-1"), ("reason", "rejected"), ("source", "scan")))] == 2
    assert m[("gate_queue_depth", (("queue", "analysis:cargo-1"),))] == 3
    assert m[("gate_outbox_backlog", (("sink", "central"),))] == 1  # this store has no verdict event builder
    assert m[("gate_outbox_oldest_age_seconds", (("sink", "central"),))] >= 0
    assert m[("gate_evidence_bytes", ())] == len(JPEG)
    assert m[("gate_crossings_stored", (("decision", "HOLD"),))] == 1
    assert m[("gate_disk_free_bytes", (("path", "store"),))] > 0
    assert m[("gate_store_file_bytes", (("file", "db"),))] > 0
    model = (("name", "ppocrv4-det"), ("provider", "CPUExecutionProvider"), ("task", "text-detection"),
             ("version", "4.0"))
    assert m[("gate_model_info", model)] == 1
    assert 0 <= m[("gate_lane_progress_age_seconds", (("lane", "cargo-1"),))] < 60
    assert "12C-123.45" not in response.text  # no read value ever becomes a label


def test_two_apps_keep_their_own_registries(store: Store, tmp_path: Path) -> None:
    other = Store(tmp_path / "other.db", tmp_path / "other-evidence")
    try:
        seed_store(other)
        first = _samples(_get(OpsView(store, {})).text)
        second = _samples(_get(OpsView(other, {})).text)
    finally:
        other.close()
    assert ("gate_crossings_stored", (("decision", "HOLD"),)) not in first
    assert second[("gate_crossings_stored", (("decision", "HOLD"),))] == 1


def test_metrics_token_is_required_when_configured(store: Store, tmp_path: Path) -> None:
    token_file = tmp_path / "metrics.token"
    token_file.write_text("s3cret-token-for-prometheus\n")
    token = read_token(token_file)
    view = OpsView(store, {})
    assert _get(view, token).status_code == 401
    assert _get(view, token, "Bearer wrong-token-xxxxxxxxxxxx").status_code == 401
    assert _get(view, token, f"Bearer {token}").status_code == 200


def test_a_short_or_missing_token_file_is_a_clear_config_error(tmp_path: Path) -> None:
    short = tmp_path / "short.token"
    short.write_text("abc")
    with pytest.raises(ConfigError, match="shorter than 16 characters"):
        read_token(short)
    with pytest.raises(ConfigError, match=r"health\.metrics_token_file: cannot read"):
        read_token(tmp_path / "missing.token")
