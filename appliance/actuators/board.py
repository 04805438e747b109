"""The lane's message board: one retained MQTT message per state, in Vietnamese, Chinese and English."""

from __future__ import annotations

import json

from appliance.actuators.base import Ack, ActuatorFault, Command
from appliance.actuators.config import MqttBoardConfig
from appliance.actuators.mqtt_link import MqttLink

# What the board shows; the driver (or the IGV's remote operator) reads vi or zh, staff read en too.
MESSAGES: dict[str, dict[str, str]] = {
    "pass": {"vi": "Mời qua", "zh": "请通行", "en": "Proceed"},
    "stop": {"vi": "Dừng lại - chờ kiểm tra", "zh": "请停车 等待检查", "en": "Stop - wait for inspection"},
    "wait": {"vi": "Dừng lại", "zh": "请停车", "en": "Stop"},
    "fault": {"vi": "Làn tạm dừng - chờ hướng dẫn", "zh": "车道暂停 请等待指引", "en": "Lane stopped - wait for staff"},
}


class MqttBoard:
    name = "board"

    def __init__(self, cfg: MqttBoardConfig, link: MqttLink, gate: str, lane: str):
        self.cfg = cfg
        self.link = link
        self.topic = cfg.topic.format(gate=gate, lane=lane)

    def command(self, cmd: Command) -> Ack:
        text = MESSAGES.get(cmd.action)
        if text is None:
            raise ActuatorFault("rejected", f"board: unknown message {cmd.action!r}; known: {sorted(MESSAGES)}")
        payload = json.dumps({"message": cmd.action, "seq": cmd.seq, **text}, ensure_ascii=False).encode()
        self.link.publish(self.topic, payload, self.cfg.ack_timeout_s, retain=True)
        return Ack(self.name, cmd.action, {"topic": self.topic})

    def close(self) -> None:
        pass
