from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import load_config, parse_config
from appliance.errors import ConfigError

GOOD = """\
site:
  gate: VNHNG
  box_id: lane1-box
lanes:
  - id: cargo-1
    sources:
      - {id: front, type: video_file, role: front, path: cams/front.avi}
      - {id: rear, type: stream, role: rear, url: "rtsp://127.0.0.1:8554/rear"}
      - {id: kiosk, type: folder, role: kiosk, path: kiosk}
manifest:
  file: manifest.json
"""


def test_good_config_resolves_paths_relative_to_file(tmp_path: Path) -> None:
    path = tmp_path / "lane.yaml"
    path.write_text(GOOD)
    cfg = load_config(path)
    front = cfg.lanes[0].sources[0]
    assert front.type == "video_file"
    assert front.path == tmp_path / "cams/front.avi"
    assert cfg.manifest.file == tmp_path / "manifest.json"
    assert cfg.storage.path == tmp_path / "var/appliance.db"


@pytest.mark.parametrize(
    ("mutation", "line", "fragment"),
    [
        (("      - {id: front, type: video_file, role: front, path: cams/front.avi}",
          "      - {id: front, type: video_file, role: front, path: cams/front.avi, fps: 5}"), 7, "unknown key"),
        (("role: rear", "role: back"), 8, "role"),
        (("gate: VNHNG", "gate: hữu nghị"), 2, "site.gate"),
        (("  - id: cargo-1", "  - id: Cargo 1"), 5, "lanes.0.id"),
    ],
)
def test_errors_name_the_yaml_line(mutation: tuple[str, str], line: int, fragment: str) -> None:
    text = GOOD.replace(*mutation)
    assert text != GOOD
    with pytest.raises(ConfigError) as err:
        parse_config(text, "lane.yaml")
    message = str(err.value)
    assert f"lane.yaml:{line}:" in message
    assert fragment in message


def test_every_error_is_reported_at_once() -> None:
    text = GOOD.replace("box_id: lane1-box", "box_id: lane1-box\n  colour: red").replace("role: rear", "role: x")
    with pytest.raises(ConfigError) as err:
        parse_config(text, "c.yaml")
    assert str(err.value).count("c.yaml:") == 2


def test_duplicate_source_ids_rejected() -> None:
    text = GOOD.replace("id: rear", "id: front")
    with pytest.raises(ConfigError, match="unique"):
        parse_config(text, "c.yaml")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "site: [unclosed\n"])
def test_not_a_mapping_or_bad_yaml(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_config(text, "c.yaml")


def make_files(base: Path) -> None:
    (base / "cams").mkdir()
    (base / "cams/front.avi").write_bytes(b"")
    (base / "kiosk").mkdir()
    (base / "manifest.json").write_text('{"entries": []}')


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert main(["check-config", str(good)]) == 2
    err = capsys.readouterr().err
    assert "video file" in err and "scanner folder" in err and "manifest.file" in err
    make_files(tmp_path)
    assert main(["check-config", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD + "unknown_section: 1\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:12: unknown_section: unknown key" in err
    assert main(["check-config", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_absolute_paths_stay_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "lane.yaml"
    path.write_text(GOOD.replace("path: cams/front.avi", "path: /srv/cams/front.avi"))
    assert load_config(path).lanes[0].sources[0].path == Path("/srv/cams/front.avi")  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["demo.yaml", "site-example.yaml", "passenger-example.yaml"])
def test_shipped_configs_parse(name: str) -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / name)
    assert config.lanes


def test_passenger_example_is_a_passenger_lane_with_face_privacy_settings() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "passenger-example.yaml")
    assert [lane.kind for lane in config.lanes] == ["passenger"]
    assert config.faces.key_file is None  # the key comes from systemd credentials
    assert config.faces.crop_retention_days == 30


def test_a_cargo_lane_cannot_have_a_face_camera_nor_a_passenger_lane_lack_one() -> None:
    base = ("site: {gate: G, box_id: b}\nlanes:\n- id: l\n  kind: %s\n  sources:\n"
            "  - {id: k, type: folder, role: kiosk, path: k}\n%s")
    with pytest.raises(ConfigError, match="face"):
        parse_config(base % ("cargo", "  - {id: f, type: usb, role: face, device: 0}\n"))
    with pytest.raises(ConfigError, match="face"):
        parse_config(base % ("passenger", ""))
