"""The line memory: door markings recalled from a camera's previous frame, nothing else, and a
chain of frames that stays deterministic when two threads analyse them."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from appliance.analyzers.containers import is_marking
from appliance.analyzers.line_memory import LineMemory, MemorySettings
from appliance.analyzers.ocr import Recognition

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf"


def crop(text: str, width: int = 300, height: int = 40) -> np.ndarray:
    img = Image.new("RGB", (width, height), (230, 230, 230))
    ImageDraw.Draw(img).text((6, 4), text, font=ImageFont.truetype(FONT, 28), fill=(20, 20, 20))
    return np.array(img)[:, :, ::-1].copy()


def quad(x: float, y: float, w: float = 300, h: float = 40) -> np.ndarray:
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float32)


def rec(text: str, confidence: float = 0.95) -> Recognition:
    return Recognition(text, confidence, tuple(((c, confidence),) for c in text))


MARKING = "MAX GROSS 30,480 KG"
SERIAL = "HNCU 491218 5"


def test_a_marking_is_recalled_on_the_next_frame_where_the_vehicle_moved_it() -> None:
    memory = LineMemory(keep=is_marking)
    first = memory.link(0.0)
    crops, quads = [crop(MARKING), crop(SERIAL)], [quad(100, 100), quad(100, 300)]
    assert first.recall(quads, crops) == [None, None]  # nothing before the first frame
    first.publish(quads, crops, [rec(MARKING), rec(SERIAL)], [None, None])

    second = memory.link(0.2)
    moved = [quad(100, 140), quad(100, 340)]  # 40 px further: one line height
    found = second.recall(moved, crops)
    assert found[0] is not None and found[0].recognition.text == MARKING
    assert found[1] is None  # a container number is always read, never recalled


def test_a_recalled_line_is_read_again_after_max_age_recalls() -> None:
    memory = LineMemory(keep=is_marking, settings=MemorySettings(max_age=2))
    crops, quads = [crop(MARKING)], [quad(100, 100)]
    answers = []
    for i in range(5):
        link = memory.link(0.2 * i)
        found = link.recall(quads, crops)
        answers.append(found[0] is not None)
        # What the lane publishes: the recalled recognition, or a fresh read.
        link.publish(quads, crops, [found[0].recognition if found[0] else rec(MARKING)], found)
    assert answers == [False, True, True, False, True]


@pytest.mark.parametrize(
    ("new_quad", "new_crop", "why"),
    [
        (quad(100, 100), crop(MARKING, width=420), "wider line"),
        (quad(100, 100), crop(MARKING, height=60), "taller line"),
        (quad(100, 400), crop(MARKING), "moved further than a few line heights"),
        (quad(100, 100), crop("TARE 2,200 KG  NET"), "other text at the same place"),
    ],
)
def test_a_line_that_is_not_the_same_is_read(new_quad: np.ndarray, new_crop: np.ndarray, why: str) -> None:
    memory = LineMemory(keep=is_marking, settings=MemorySettings(min_similarity=0.7))
    first = memory.link(0.0)
    first.recall([quad(100, 100)], [crop(MARKING)])
    first.publish([quad(100, 100)], [crop(MARKING)], [rec(MARKING)], [None])
    assert memory.link(0.2).recall([new_quad], [new_crop]) == [None], why


def test_uncertain_reads_and_frames_far_apart_are_not_recalled() -> None:
    memory = LineMemory(keep=is_marking)
    link = memory.link(0.0)
    link.recall([quad(0, 0)], [crop(MARKING)])
    link.publish([quad(0, 0)], [crop(MARKING)], [rec(MARKING, confidence=0.5)], [None])
    link = memory.link(0.2)
    assert link.recall([quad(0, 0)], [crop(MARKING)]) == [None]  # the read was not sure enough
    link.publish([quad(0, 0)], [crop(MARKING)], [rec(MARKING)], [None])
    assert memory.link(5.0).recall([quad(0, 0)], [crop(MARKING)]) == [None]  # another vehicle by now


def test_a_frame_waits_for_the_previous_one_and_never_for_a_failed_one() -> None:
    memory = LineMemory(keep=is_marking)
    first, second = memory.link(0.0), memory.link(0.2)
    first.recall([quad(0, 0)], [crop(MARKING)])
    result: list[object] = []
    waiter = threading.Thread(target=lambda: result.append(second.recall([quad(0, 10)], [crop(MARKING)])))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # the second frame waits for what the first one reads
    first.publish([quad(0, 0)], [crop(MARKING)], [rec(MARKING)], [None])
    waiter.join(5)
    assert not waiter.is_alive() and result[0] != [None]

    third, fourth = memory.link(0.4), memory.link(0.6)
    third.abandon()  # the frame failed: the next one reads everything, at once
    assert fourth.recall([quad(0, 20)], [crop(MARKING)]) == [None]
