"""Execution providers from the config: the provider each model really runs on, and no silent fall-back
to the CPU when the config demands an accelerator (this machine's ONNX Runtime has only the CPU one)."""

from __future__ import annotations

import logging
from typing import Any

import onnxruntime as ort
import pytest

from appliance.config import AppConfig
from appliance.errors import ModelError
from appliance.inference.inventory import model_status
from appliance.lanes.analysis import Readers


def config(**models: Any) -> AppConfig:
    return AppConfig.model_validate({
        "site": {"gate": "VNHNG", "box_id": "box-1"},
        "lanes": [{"id": "lane-1", "sources": [{"id": "rear", "type": "usb", "role": "rear", "device": 0}]}],
        "models": models,
    })


def test_cpu_by_default_and_the_provider_that_really_runs_is_reported() -> None:
    readers = Readers.from_config(config())
    status = model_status(readers)
    assert {m["task"] for m in status} == {"text-detection", "text-recognition"}
    assert all(m["provider"] == "CPUExecutionProvider" for m in status)


def test_an_accelerator_the_runtime_lacks_is_refused_when_required() -> None:
    assert "CUDAExecutionProvider" not in ort.get_available_providers()  # what this test relies on
    with pytest.raises(ModelError, match=r"CUDAExecutionProvider was requested but ONNX Runtime runs "
                                         r"\('CPUExecutionProvider',\)"):
        Readers.from_config(config(providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
                                   require_accelerator=True))


def test_without_the_requirement_it_falls_back_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        readers = Readers.from_config(config(providers=["CUDAExecutionProvider", "CPUExecutionProvider"]))
    assert all(m["provider"] == "CPUExecutionProvider" for m in model_status(readers))
    assert any("CUDAExecutionProvider unavailable, running on" in r.getMessage() for r in caplog.records)


def test_unknown_provider_names_are_config_errors() -> None:
    with pytest.raises(ValueError, match="providers"):
        config(providers=["CudaProvider"])
