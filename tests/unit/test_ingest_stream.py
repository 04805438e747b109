"""StreamSource pieces that need no network: backoff schedule, URL redaction, arguments."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.errors import SourceError
from appliance.ingest.frames import Frame
from appliance.ingest.sources import StreamSource, redact_url


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    src = StreamSource("cam", "rtsp://127.0.0.1/x", backoff_initial_s=0.5, backoff_max_s=8.0, jitter=0.25)
    src._rng = random.Random(1)
    for attempt, nominal in enumerate([0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]):
        delays = [src.backoff_delay(attempt) for _ in range(200)]
        assert all(0.75 * nominal <= d <= nominal for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > 0.1 * nominal  # jitter actually spreads them
    assert src.backoff_delay(10_000) <= 8.0  # no overflow for long outages


def test_no_jitter_is_exact() -> None:
    src = StreamSource("cam", "http://127.0.0.1/x", backoff_initial_s=0.2, backoff_max_s=1.0, jitter=0.0)
    assert [src.backoff_delay(a) for a in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:hunter2@10.1.2.3:554/Streaming/101", "rtsp://admin:***@10.1.2.3:554/Streaming/101"),
        ("http://10.1.2.3/mjpg", "http://10.1.2.3/mjpg"),
        ("rtsp://user@cam/1", "rtsp://user@cam/1"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@given(
    user=st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8),
    password=st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=4, max_size=16),
)
def test_password_never_appears_in_status(user: str, password: str) -> None:
    url = f"rtsp://{user}:{password}@192.0.2.7:554/ch1?x=1"
    src = StreamSource("cam", url)
    assert redact_url(url) == f"rtsp://{user}:***@192.0.2.7:554/ch1?x=1"
    assert src.status()["target"] == redact_url(url)
    assert f":{password}@" not in repr(src.status())


@pytest.mark.parametrize(
    ("target", "kwargs", "pattern"),
    [
        ("", {}, "empty URL"),
        ("http://x", {"read_timeout_s": 0}, "timeouts"),
        ("http://x", {"backoff_initial_s": 5, "backoff_max_s": 1}, "backoff"),
        ("http://x", {"jitter": 1.0}, "jitter"),
    ],
)
def test_bad_arguments(target: str, kwargs: dict, pattern: str) -> None:
    with pytest.raises(SourceError, match=pattern):
        StreamSource("cam", target, **kwargs)


def test_device_index_and_path() -> None:
    assert StreamSource("usb", "0").target == 0
    assert StreamSource("usb", "/dev/video2").is_device
    assert StreamSource("usb", 1).status()["type"] == "usb"


def test_frame_validation() -> None:
    import numpy as np

    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError):
        Frame("", 1.0, 0, img)
    with pytest.raises(ValueError):
        Frame("a", float("nan"), 0, img)
    with pytest.raises(ValueError):
        Frame("a", 1.0, -1, img)
    with pytest.raises(ValueError):
        Frame("a", 1.0, 0, np.zeros((0, 4), np.uint8))
    assert Frame("a", 1.0, 0, img).width == 4
