"""The status page's actuator panel in a real headless Chromium, under the strict CSP (any script error or
CSP violation fails the test). The panel shows a real lane controller's status: its barrier, lights and loops
are a real pymodbus server (appliance/sim/modbus_device.py), its audit a real SQLite store; the page follows
the barrier through a CLEAR cycle and a device failure without a reload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from appliance.actuators.setup import LaneActuators, build_lane_actuators
from appliance.sim.modbus_device import SimModbusDevice
from appliance.store.db import Store
from appliance.web.app import WebServices, create_app
from tests.integration.mosquitto import free_port, wait_until
from tests.integration.test_actuators import LANE, crossing, lane_config, verdict
from tests.web.auth_helpers import add_user
from tests.web.conftest import serving
from tests.web.test_browser import sign_in


@pytest.fixture()
def device() -> Iterator[SimModbusDevice]:
    dev = SimModbusDevice(free_port(), travel_s=0.05).start()
    yield dev
    dev.stop()


@pytest.fixture()
def lane(tmp_path: Path, store: Store, device: SimModbusDevice) -> Iterator[LaneActuators]:
    cfg = lane_config(tmp_path, device.port, ack_timeout_s=1.0, pass_timeout_s=10.0)
    built = build_lane_actuators(cfg, cfg.lanes[0], store)
    built.start()  # drives the barrier closed: the first acknowledged command
    yield built
    built.stop(drain_s=0.0)


@pytest.fixture()
def base(store: Store, lane: LaneActuators) -> Iterator[str]:
    add_user(store, "engineer", "model_engineer")
    status: dict[str, Any] = {"lanes": {LANE: {"state": "running"}}, "actuators": {LANE: lane.controller.status}}
    with serving(create_app(WebServices(store, "VNLCA", status)), free_port()) as url:
        yield url


def cell(page: Page, table: str, key: str, row: str | None = None) -> Any:
    where = f'#status-{table} tr[data-id="{row}"]' if row else f"#status-{table} tbody tr"
    return page.locator(f'{where} td[data-key="{key}"]')


def test_panel_follows_the_barrier_through_a_cycle_and_a_fault(page: Page, base: str, lane: LaneActuators,
                                                               device: SimModbusDevice, tmp_path: Path) -> None:
    sign_in(page, base, "engineer", "/status")
    expect(page.locator("#actuators")).to_be_visible()
    assert page.locator("#actuators h3").inner_text() == "Barie và thiết bị làn"
    expect(cell(page, "actuators", "barrier_label", LANE)).to_have_text("Đã đóng")
    assert cell(page, "actuators", "alarms_label", LANE).inner_text() == "Không có"
    # The start-up close and red, acknowledged by the device.
    first = page.locator("#status-actuator_commands tbody tr").last
    assert first.locator('td[data-key="command_label"]').inner_text() == "Đóng"
    assert first.locator('td[data-key="result_label"]').inner_text().startswith("Đã xác nhận")

    # A CLEAR verdict: the barrier opens and the page shows it without a reload (it polls every 3 s).
    lane.controller.on_crossing(crossing("c1", 100.0), verdict("CLEAR"))
    wait_until(lambda: device.position == "open", 5, "the barrier to open")
    expect(cell(page, "actuators", "barrier_label", LANE)).to_have_text("Đang mở", timeout=10_000)
    assert page.locator(f'#status-actuators tr[data-id="{LANE}"]').get_attribute("class") == "state-barrier_open"
    newest = page.locator("#status-actuator_commands tbody tr").first
    assert newest.locator('td[data-key="crossing"]').inner_text() == "c1"
    assert newest.locator('td[data-key="device_label"]').inner_text() == "Đèn tín hiệu"
    assert newest.locator('td[data-key="command_label"]').inner_text() == "Đèn xanh"

    device.vehicle_passes()
    expect(cell(page, "actuators", "barrier_label", LANE)).to_have_text("Đã đóng", timeout=10_000)

    # The device goes away: the next CLEAR cannot even check the barrier; alarms, barrier state unknown.
    device.stop()
    lane.controller.on_crossing(crossing("c2", 200.0), verdict("CLEAR"))
    wait_until(lambda: lane.controller.status["state"] == "fault", 10, "the controller to give up")
    row = page.locator(f'#status-actuators tr[data-id="{LANE}"]')
    expect(row).to_have_class("state-alarm", timeout=10_000)
    assert cell(page, "actuators", "barrier_label", LANE).inner_text() == "Không rõ"
    alarms = cell(page, "actuators", "alarms_label", LANE).inner_text()
    assert "Không kết nối được thiết bị" in alarms and "Barie chưa xác nhận đóng" in alarms
    faults = page.locator('#status-actuator_commands tr.state-cmd_fault td[data-key="result_label"]')
    assert faults.count() >= 1 and faults.first.inner_text().startswith("Lỗi: Không kết nối được thiết bị")
    assert device.events("command:") == ["command:close", "command:open", "command:close"]  # never opened again

    # The same panel in Chinese.
    page.goto(base + "/status?lang=zh")
    expect(cell(page, "actuators", "barrier_label", LANE)).to_have_text("未知")
    assert "设备无法连接" in cell(page, "actuators", "alarms_label", LANE).inner_text()
    assert page.locator("#actuators h3").inner_text() == "道闸与车道设备"
    expect(page.locator("#live")).to_be_visible()
    page.screenshot(path=str(tmp_path / "actuators.png"), full_page=True)


def test_panel_is_hidden_without_actuators(page: Page, store: Store) -> None:
    add_user(store, "engineer", "model_engineer")
    with serving(create_app(WebServices(store, "VNLCA", {"lanes": {"cargo-1": {"state": "running"}}})),
                 free_port()) as url:
        sign_in(page, url, "engineer", "/status")
        expect(page.locator("#live")).to_be_visible()
        assert page.locator("#actuators").is_hidden()
